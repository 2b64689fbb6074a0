//! The migrations directory: which entries count (not recursively, following the symlinks of a
//! ConfigMap mount, skipping its `..data` entries), and each file read by its tool's rules into
//! what runs, in the tool's order.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::formats::{Body, Checksum, Context, Format, Named, Record};
use super::version::Version;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};

/// A regular file in the directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    /// Its text, once read: `--format auto` looks at it, then the format's rules read it.
    text: OnceCell<String>,
}

impl Entry {
    /// The file's text, read on first use only.
    pub fn text(&self) -> anyhow::Result<&str> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let bytes = std::fs::read(&self.path).map_err(|error| {
            exit::usage(format!("cannot read {}: {error}", self.path.display()))
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| exit::usage(format!("{} is not UTF-8 text", self.name)))?;
        Ok(self.text.get_or_init(|| text))
    }
}

/// One migration, read and checked.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The file name, as shown in messages (and sql-migrate's ledger id).
    pub name: String,
    /// None for a Flyway repeatable, or an unnumbered sql-migrate file.
    pub version: Option<Version>,
    pub description: String,
    /// What matches it to its ledger row.
    pub id: String,
    pub repeatable: bool,
    pub body: Body,
    pub checksum: Option<Checksum>,
    /// Another checksum accepted for it (a Flyway repeatable's raw text).
    pub also_accepted: Option<Checksum>,
    /// Why it cannot run: a goose Go migration, or a body the tool's rules refuse (a missing
    /// semicolon, an unknown placeholder). Only a problem if it is pending: a file applied long
    /// ago must not stop every restart.
    pub unusable: Option<String>,
}

impl Migration {
    /// What the ledger records of it, after `elapsed_ms`.
    pub fn record(&self, elapsed_ms: i64) -> Record<'_> {
        Record {
            name: &self.name,
            version: self.version.as_ref(),
            description: &self.description,
            checksum: self.checksum.as_ref(),
            elapsed_ms,
        }
    }
}

/// The directory's regular files, by name.
pub fn list(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        exit::usage(format!(
            "cannot read migrations directory {}: {error}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|error| exit::usage(format!("reading {}: {error}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A ConfigMap mount's `..data` link and `..2026_...` directory; editors' dotfiles.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // metadata() follows symlinks: a ConfigMap's files are links into ..data.
        if std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            files.push(Entry {
                name,
                path,
                text: OnceCell::new(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads every migration of `format` from the entries (as [`list`] gives them, sorted by name),
/// in the order the tool applies them: versioned files by version, then (Flyway) repeatables by
/// description.
/// The entry named `name`, found by its place in the sorted list: one search per file, not a
/// scan of the whole directory.
fn companion<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    let at = entries
        .binary_search_by(|entry| entry.name.as_str().cmp(name))
        .ok()?;
    Some(&entries[at])
}

pub fn read(
    entries: &[Entry],
    format: Format,
    context: &Context,
) -> anyhow::Result<Vec<Migration>> {
    let mut migrations = Vec::new();
    let mut invalid = Vec::new();
    for entry in entries {
        let (version, description, foreign) = match format.classify(&entry.name) {
            Named::Migration {
                version,
                description,
            } => (version, description, None),
            Named::Foreign { version, why } => (Some(version), String::new(), Some(why)),
            Named::Skipped(why) => {
                logging::emit(
                    Level::Debug,
                    &format!("skipping {}: {why}", entry.name),
                    &[],
                );
                continue;
            }
            Named::Invalid(why) => {
                invalid.push((entry.name.clone(), why));
                continue;
            }
        };
        let repeatable = format == Format::Flyway && version.is_none();
        let id = format.id(&entry.name, version.as_ref(), &description);
        let (body, checksum, also_accepted, unusable) = match foreign {
            Some(why) => (
                Body::empty(),
                None,
                None,
                Some(format!("{} is {why}", entry.name)),
            ),
            None => {
                let text = entry.text()?;
                let companion = match format {
                    Format::Flyway => companion(entries, &format!("{}.conf", entry.name))
                        .map(Entry::text)
                        .transpose()?,
                    _ => None,
                };
                let mut file_context = context.clone();
                file_context.file_name = entry.name.clone();
                let (body, unusable) = match format.body(text, companion, &file_context) {
                    Ok(body) => (body, None),
                    Err(why) => (Body::empty(), Some(format!("{}: {why}", entry.name))),
                };
                let raw = format.checksum(text);
                let (checksum, also_accepted) = match format.replaced_checksum(text, &file_context)
                {
                    Some(replaced) if repeatable => (Some(replaced), raw),
                    _ => (raw, None),
                };
                (body, checksum, also_accepted, unusable)
            }
        };
        migrations.push(Migration {
            name: entry.name.clone(),
            version,
            description,
            id,
            repeatable,
            body,
            checksum,
            also_accepted,
            unusable,
        });
    }
    if !invalid.is_empty() {
        let (_, why) = &invalid[0];
        let names: Vec<&str> = invalid.iter().map(|(name, _)| name.as_str()).collect();
        return Err(exit::usage(format!("{why}: {}", names.join(", "))));
    }
    let mut by_id: BTreeMap<&str, Vec<&Migration>> = BTreeMap::new();
    for migration in &migrations {
        by_id.entry(&migration.id).or_default().push(migration);
    }
    let duplicates: Vec<String> = by_id
        .values()
        .filter(|same| same.len() > 1)
        .map(|same| {
            let names: Vec<&str> = same.iter().map(|m| m.name.as_str()).collect();
            match &same[0].version {
                Some(version) => {
                    format!("version {} in {}", version.canonical(), names.join(" and "))
                }
                None => format!(
                    "description '{}' in {}",
                    same[0].description,
                    names.join(" and ")
                ),
            }
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(exit::usage(format!(
            "duplicate migration versions: {}",
            duplicates.join("; ")
        )));
    }
    migrations.sort_by(|a, b| {
        (
            a.repeatable,
            a.version.is_none(),
            &a.version,
            &a.description,
            &a.name,
        )
            .cmp(&(
                b.repeatable,
                b.version.is_none(),
                &b.version,
                &b.description,
                &b.name,
            ))
    });
    Ok(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    fn context() -> Context {
        Context {
            flyway_placeholders: true,
            ..Context::default()
        }
    }

    #[test]
    fn reads_a_configmap_layout_and_rejects_bad_names_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_21_23_00_00.123");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("001_init.sql"), "CREATE TABLE a ();").unwrap();
        std::fs::write(data.join("002_more.up.sql"), "CREATE TABLE b ();").unwrap();
        std::fs::write(data.join("002_more.down.sql"), "DROP TABLE b;").unwrap();
        std::os::unix::fs::symlink(data.file_name().unwrap(), dir.path().join("..data")).unwrap();
        for name in ["001_init.sql", "002_more.up.sql", "002_more.down.sql"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), dir.path().join(name))
                .unwrap();
        }
        std::fs::write(dir.path().join("README.md"), "not sql").unwrap();
        let entries = list(dir.path()).unwrap();
        let migrations = read(&entries, Format::Initbox, &context()).unwrap();
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["001_init.sql", "002_more.up.sql"]);

        std::fs::write(dir.path().join("002_again.sql"), "SELECT 1;").unwrap();
        std::fs::write(dir.path().join("notes.sql"), "SELECT 1;").unwrap();
        let error = read(&list(dir.path()).unwrap(), Format::Initbox, &context()).unwrap_err();
        assert!(error.to_string().contains("notes.sql"), "{error}");
        std::fs::remove_file(dir.path().join("notes.sql")).unwrap();
        let error = read(&list(dir.path()).unwrap(), Format::Initbox, &context())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("002_again.sql and 002_more.up.sql"),
            "{error}"
        );
    }

    #[test]
    fn a_flyway_file_is_read_with_its_own_sql_conf() {
        let dir = tempfile::tempdir().unwrap();
        for version in 1..=20 {
            std::fs::write(
                dir.path().join(format!("V{version}__step.sql")),
                "SELECT 1;",
            )
            .unwrap();
        }
        std::fs::write(
            dir.path().join("V5__step.sql.conf"),
            "executeInTransaction=false\n",
        )
        .unwrap();
        let migrations = read(&list(dir.path()).unwrap(), Format::Flyway, &context()).unwrap();
        assert_eq!(migrations.len(), 20);
        for migration in &migrations {
            let expected = match migration.name.as_str() {
                "V5__step.sql" => Transaction::None,
                _ => Transaction::Wrapped,
            };
            assert_eq!(migration.body.transaction, expected, "{}", migration.name);
        }
    }

    #[test]
    fn flyway_orders_versions_as_numbers_then_repeatables() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "V10__c.sql",
            "V2__a.sql",
            "V2.1__b.sql",
            "V17.1__d.sql",
            "R__views.sql",
            "R__a_first.sql",
        ] {
            std::fs::write(dir.path().join(name), "SELECT 1;").unwrap();
        }
        let migrations = read(&list(dir.path()).unwrap(), Format::Flyway, &context()).unwrap();
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "V2__a.sql",
                "V2.1__b.sql",
                "V10__c.sql",
                "V17.1__d.sql",
                "R__a_first.sql",
                "R__views.sql"
            ]
        );
    }

    #[test]
    fn sql_migrate_orders_numbered_names_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["10_c.sql", "2_b.sql", "2_a.sql", "zeta.sql", "alpha.sql"] {
            std::fs::write(dir.path().join(name), "-- +migrate Up\nSELECT 1;\n").unwrap();
        }
        let migrations = read(&list(dir.path()).unwrap(), Format::SqlMigrate, &context()).unwrap();
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["2_a.sql", "2_b.sql", "10_c.sql", "alpha.sql", "zeta.sql"]
        );
    }
}
