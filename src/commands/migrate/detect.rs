//! `--format auto`: which tool a directory and a database belong to, decided from the file names,
//! the directives inside the files, and the ledger tables that exist, with the evidence logged.

use std::collections::BTreeMap;

use anyhow::anyhow;
use tokio_postgres::Client;

use super::formats::Format;
use super::source::Entry;
use super::table::{TableName, quote, quote_if_needed};
use crate::runtime::exit;

/// Evidence for each format: what in the files or the database points at it.
#[derive(Debug, Default)]
pub struct Evidence {
    files: BTreeMap<Format, Vec<String>>,
    /// `.up.sql` / `.down.sql` names, which golang-migrate and sqlx share.
    reversible: Option<String>,
    /// Plain `N_name.sql` names, which initbox and sqlx share.
    numbered: Option<String>,
    ledgers: BTreeMap<Format, String>,
}

impl Evidence {
    fn file(&mut self, format: Format, what: String) {
        let list = self.files.entry(format).or_default();
        if list.len() < 3 {
            list.push(what);
        }
    }
}

/// What the files say.
pub fn from_files(entries: &[Entry]) -> anyhow::Result<Evidence> {
    let mut evidence = Evidence::default();
    for entry in entries {
        let name = entry.name.as_str();
        let lower = name.to_ascii_lowercase();
        if !lower.ends_with(".sql") {
            continue;
        }
        let digits = super::formats::leading_digits(name).len();
        if digits > 0 && name[digits..].starts_with('_') {
            if lower.ends_with(".up.sql") || lower.ends_with(".down.sql") {
                evidence.reversible.get_or_insert_with(|| name.to_string());
            } else {
                evidence.numbered.get_or_insert_with(|| name.to_string());
            }
        }
        let text = entry.text()?;
        for format in super::formats::ALL {
            if let Some(what) = format.claims(name, text) {
                evidence.file(format, format!("{name} {what}"));
            }
        }
    }
    Ok(evidence)
}

/// What the database says: each tool's ledger table that exists in the current schema (and
/// initbox's in public, and the `--table` if one is given), each told by its columns, since
/// golang-migrate and dbmate share a name and `--table` may name anything.
pub async fn from_database(
    evidence: &mut Evidence,
    client: &Client,
    current_schema: Option<&str>,
    table: Option<&TableName>,
) -> anyhow::Result<()> {
    let given = table.and_then(|table| {
        let schema = table.schema.as_deref().or(current_schema)?;
        Some(format!("{}.{}", quote(schema), quote(&table.name)))
    });
    let rows = client
        .query(
            "SELECT n.nspname, c.relname,
                    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND ((n.nspname = $1 AND c.relname IN ('schema_migrations', 'goose_db_version',
                      'flyway_schema_history', '_sqlx_migrations', 'gorp_migrations', 'initbox_migrations'))
                    OR (n.nspname = 'public' AND c.relname = 'initbox_migrations')
                    OR c.oid = to_regclass($2))",
            &[&current_schema, &given],
        )
        .await
        .map_err(|error| {
            anyhow!(
                "looking for migration ledgers: {}",
                crate::probe::pg::describe(&error)
            )
        })?;
    for row in rows {
        let schema: String = row.get(0);
        let table: String = row.get(1);
        let columns: Vec<String> = row.get(2);
        if let Some(format) = by_columns(&columns) {
            evidence.ledgers.insert(
                format,
                format!("table {}.{} exists", quote_if_needed(&schema), table),
            );
        }
    }
    Ok(())
}

/// Which tool's ledger a table is, by the columns only that tool writes.
fn by_columns(columns: &[String]) -> Option<Format> {
    let has = |name: &str| columns.iter().any(|column| column == name);
    Some(if has("dirty") {
        Format::GolangMigrate
    } else if has("version_id") && has("is_applied") {
        Format::Goose
    } else if has("installed_rank") {
        Format::Flyway
    } else if has("execution_time") && has("success") {
        Format::Sqlx
    } else if has("id") && has("applied_at") {
        Format::SqlMigrate
    } else if has("duration_ms") && has("checksum") {
        Format::Initbox
    } else if has("version") {
        Format::Dbmate
    } else {
        return None;
    })
}

/// The one format the evidence names, and why; a usage error listing the evidence when it names
/// none or several.
pub fn decide(evidence: &Evidence) -> anyhow::Result<(Format, String)> {
    let evidence_for = |format: &Format| -> String {
        let mut what: Vec<String> = evidence.files.get(format).cloned().unwrap_or_default();
        what.extend(evidence.ledgers.get(format).cloned());
        what.join(", ")
    };
    let listed = |formats: &[Format]| -> String {
        formats
            .iter()
            .map(|format| format!("{format} ({})", evidence_for(format)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let by_files: Vec<Format> = evidence.files.keys().copied().collect();
    if by_files.len() > 1 {
        return Err(exit::usage(format!(
            "the migrations fit more than one format: {}; pass --format",
            listed(&by_files)
        )));
    }
    if let [format] = by_files.as_slice() {
        // A file that still carries another tool's directive must not start a second history
        // beside the one the database has.
        if !evidence.ledgers.is_empty() && !evidence.ledgers.contains_key(format) {
            let others: Vec<Format> = evidence.ledgers.keys().copied().collect();
            return Err(exit::usage(format!(
                "the files say {} but the database has another tool's ledger: {}; pass --format",
                listed(&[*format]),
                listed(&others)
            )));
        }
        return Ok((*format, evidence_for(format)));
    }
    // Names alone are shared: N_name.up.sql by golang-migrate and sqlx, N_name.sql by sqlx and
    // initbox. The ledger that exists decides.
    // golang-migrate skips plain .sql files, so a directory that mixes both styles is not its.
    let candidates: Vec<Format> = match (&evidence.reversible, &evidence.numbered) {
        (Some(_), None) => vec![Format::Initbox, Format::GolangMigrate, Format::Sqlx],
        (_, Some(_)) => vec![Format::Initbox, Format::Sqlx],
        (None, None) if evidence.ledgers.is_empty() => {
            return Ok((
                Format::Initbox,
                "no migration files and no tool's ledger".into(),
            ));
        }
        (None, None) => evidence.ledgers.keys().copied().collect(),
    };
    let with_ledger: Vec<Format> = candidates
        .iter()
        .copied()
        .filter(|format| evidence.ledgers.contains_key(format))
        .collect();
    match with_ledger.as_slice() {
        [format] => Ok((*format, evidence_for(format))),
        [] if evidence.numbered.is_some() => Ok((
            Format::Initbox,
            format!(
                "{} is an N_name.sql name and no tool's ledger exists",
                evidence.numbered.as_deref().unwrap_or_default()
            ),
        )),
        [] => Err(exit::usage(format!(
            "the migrations fit more than one format: golang-migrate and sqlx both name files like {}, and \
             no ledger table tells them apart yet; pass --format golang-migrate, --format sqlx or --format initbox",
            evidence.reversible.as_deref().unwrap_or_default()
        ))),
        several => Err(exit::usage(format!(
            "the database fits more than one format: {}; pass --format",
            listed(several)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::source;
    use super::*;

    fn evidence_of(files: &[(&str, &str)]) -> Evidence {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        from_files(&source::list(dir.path()).unwrap()).unwrap()
    }

    #[test]
    fn directives_and_names_decide() {
        for (files, expected) in [
            (
                vec![("001_a.sql", "-- +goose Up\nSELECT 1;\n")],
                Format::Goose,
            ),
            (
                vec![("001_a.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n")],
                Format::Dbmate,
            ),
            (
                vec![("1_a.sql", "-- +migrate Up\nSELECT 1;\n")],
                Format::SqlMigrate,
            ),
            (
                vec![("V1__a.sql", "SELECT 1;"), ("R__v.sql", "SELECT 1;")],
                Format::Flyway,
            ),
            (
                vec![(
                    "1_a.sql",
                    "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
                )],
                Format::Sqlx,
            ),
            (vec![("001_a.sql", "SELECT 1;")], Format::Initbox),
        ] {
            let (format, why) = decide(&evidence_of(&files)).unwrap();
            assert_eq!(format, expected, "{files:?}: {why}");
        }
    }

    #[test]
    fn each_file_is_read_once_for_detection_and_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("001_a.sql");
        std::fs::write(&path, "-- +goose Up\nSELECT 1;\n").unwrap();
        let entries = source::list(dir.path()).unwrap();
        let (format, _) = decide(&from_files(&entries).unwrap()).unwrap();
        // What detection read is what runs, even if the file is gone or changed since.
        std::fs::write(&path, "-- +goose Up\nSELECT 2;\n").unwrap();
        let migrations = source::read(&entries, format, &Default::default()).unwrap();
        let sql: Vec<&str> = migrations[0]
            .body
            .pieces
            .iter()
            .map(|piece| piece.sql.trim())
            .collect();
        assert_eq!(sql, ["SELECT 1;"]);
    }

    #[test]
    fn two_formats_are_a_usage_error_with_the_evidence() {
        let evidence = evidence_of(&[
            ("001_a.sql", "-- +goose Up\nSELECT 1;\n"),
            ("V2__b.sql", "SELECT 1;"),
        ]);
        let error = decide(&evidence).unwrap_err().to_string();
        assert!(
            error.contains("goose (001_a.sql has '-- +goose Up')"),
            "{error}"
        );
        assert!(
            error.contains("flyway (V2__b.sql is a Flyway name)"),
            "{error}"
        );
        let reversible = evidence_of(&[("1_a.up.sql", "SELECT 1;"), ("1_a.down.sql", "SELECT 1;")]);
        let error = decide(&reversible).unwrap_err().to_string();
        assert!(error.contains("golang-migrate and sqlx"), "{error}");
    }

    #[test]
    fn ledgers_are_told_apart_by_their_columns() {
        let of = |columns: &[&str]| {
            by_columns(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            of(&["version", "dirty", "note"]),
            Some(Format::GolangMigrate)
        );
        assert_eq!(of(&["version"]), Some(Format::Dbmate));
        assert_eq!(
            of(&["id", "version_id", "is_applied", "tstamp"]),
            Some(Format::Goose)
        );
        assert_eq!(
            of(&["installed_rank", "version", "success", "execution_time"]),
            Some(Format::Flyway)
        );
        assert_eq!(
            of(&[
                "version",
                "description",
                "success",
                "checksum",
                "execution_time"
            ]),
            Some(Format::Sqlx)
        );
        assert_eq!(of(&["id", "applied_at"]), Some(Format::SqlMigrate));
        assert_eq!(
            of(&["version", "name", "checksum", "applied_at", "duration_ms"]),
            Some(Format::Initbox)
        );
        assert_eq!(of(&["a", "b"]), None);
    }

    #[test]
    fn files_of_one_tool_never_start_beside_another_tools_ledger() {
        let mut evidence = evidence_of(&[("001_a.sql", "-- +goose Up\nSELECT 1;\n")]);
        evidence.ledgers.insert(
            Format::Initbox,
            "table public.initbox_migrations exists".into(),
        );
        let error = decide(&evidence).unwrap_err().to_string();
        assert!(error.contains("another tool's ledger: initbox"), "{error}");
        evidence
            .ledgers
            .insert(Format::Goose, "table public.goose_db_version exists".into());
        assert_eq!(decide(&evidence).unwrap().0, Format::Goose);
    }

    #[test]
    fn the_ledger_settles_shared_names() {
        let mut evidence = evidence_of(&[("1_a.up.sql", "SELECT 1;")]);
        evidence.ledgers.insert(
            Format::GolangMigrate,
            "table public.schema_migrations exists".into(),
        );
        assert_eq!(decide(&evidence).unwrap().0, Format::GolangMigrate);
        let mut evidence = evidence_of(&[("1_a.sql", "SELECT 1;")]);
        evidence
            .ledgers
            .insert(Format::Sqlx, "table public._sqlx_migrations exists".into());
        assert_eq!(decide(&evidence).unwrap().0, Format::Sqlx);
        evidence.ledgers.insert(
            Format::Initbox,
            "table public.initbox_migrations exists".into(),
        );
        assert!(decide(&evidence).is_err());
    }
}
