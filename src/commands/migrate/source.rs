//! Migration files: which files in the directory count, their versions and names, checksums,
//! and the `-- initbox:no-transaction` directive.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::runtime::exit;

/// First line of a file that must run outside a transaction (CREATE INDEX CONCURRENTLY).
pub const NO_TRANSACTION: &str = "-- initbox:no-transaction";

/// One migration file, read and checked.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    /// The file name, as recorded in the ledger and shown in messages.
    pub name: String,
    /// The SQL with a BOM removed and CRLF turned into LF: what runs and what is hashed.
    pub sql: String,
    /// SHA-256 of `sql`, in hex.
    pub checksum: String,
    pub transactional: bool,
}

/// Reads DIR: `.sql` files, not recursively, following symlinks (a ConfigMap mount is a tree
/// of them), skipping names that start with '.' (its `..data` and `..2026_...` entries) and
/// golang-migrate's `.down.sql` files. Sorted by version.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        exit::usage(format!(
            "cannot read migrations directory {}: {error}",
            dir.display()
        ))
    })?;
    let mut by_version: BTreeMap<i64, Vec<Migration>> = BTreeMap::new();
    let mut unparsable = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|error| exit::usage(format!("reading {}: {error}", dir.display())))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.')
            || !file_name.ends_with(".sql")
            || file_name.ends_with(".down.sql")
        {
            continue;
        }
        let path = entry.path();
        // metadata() follows symlinks: a ConfigMap's files are links into ..data.
        if !std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        let Some(version) = parse_version(&file_name) else {
            unparsable.push(file_name);
            continue;
        };
        let bytes = std::fs::read(&path)
            .map_err(|error| exit::usage(format!("cannot read {}: {error}", path.display())))?;
        let sql = normalise(&bytes)
            .ok_or_else(|| exit::usage(format!("{file_name} is not UTF-8 text")))?;
        let transactional = sql.lines().next().map(str::trim_end) != Some(NO_TRANSACTION);
        if !transactional && count_statements(&sql) != 1 {
            return Err(exit::usage(format!(
                "{file_name}: a {NO_TRANSACTION} file must hold exactly one statement, it has {}",
                count_statements(&sql)
            )));
        }
        by_version.entry(version).or_default().push(Migration {
            version,
            checksum: sha256_hex(sql.as_bytes()),
            name: file_name,
            sql,
            transactional,
        });
    }
    if !unparsable.is_empty() {
        unparsable.sort();
        return Err(exit::usage(format!(
            "migration file names must start with a version number (NNN_name.sql or NNN_name.up.sql): {}",
            unparsable.join(", ")
        )));
    }
    let duplicates: Vec<String> = by_version
        .values()
        .filter(|files| files.len() > 1)
        .map(|files| {
            let mut names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
            names.sort();
            format!("version {} in {}", files[0].version, names.join(" and "))
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(exit::usage(format!(
            "duplicate migration versions: {}",
            duplicates.join("; ")
        )));
    }
    Ok(by_version.into_values().flatten().collect())
}

/// `0042_add_users.sql` -> 42: the leading digits, then `_` and a name.
fn parse_version(file_name: &str) -> Option<i64> {
    let digits = file_name.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &file_name[digits..];
    let name = rest.strip_prefix('_')?.strip_suffix(".sql")?;
    let name = name.strip_suffix(".up").unwrap_or(name);
    if digits == 0 || name.is_empty() {
        return None;
    }
    file_name[..digits].parse().ok()
}

/// Drops a UTF-8 BOM and turns CRLF into LF, so a file edited on Windows keeps its checksum.
fn normalise(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.replace("\r\n", "\n"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Counts the SQL statements in `sql`: semicolon-separated, ignoring semicolons inside quotes,
/// dollar-quoted bodies and comments, and empty statements.
pub fn count_statements(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut count = 0;
    let mut has_content = false;
    let mut index = 0;
    while index < bytes.len() {
        let rest = &sql[index..];
        let skip = if rest.starts_with("--") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            block_comment_len(rest)
        } else if rest.starts_with('\'') || rest.starts_with('"') {
            has_content = true;
            quoted_len(rest, bytes[index])
        } else if let Some(tag) = dollar_tag(rest) {
            has_content = true;
            rest[tag.len()..]
                .find(tag)
                .map_or(rest.len(), |end| end + 2 * tag.len())
        } else {
            let c = rest.chars().next().expect("not at the end");
            if c == ';' {
                if has_content {
                    count += 1;
                }
                has_content = false;
            } else if !c.is_whitespace() {
                has_content = true;
            }
            c.len_utf8()
        };
        index += skip;
    }
    count + usize::from(has_content)
}

/// Length of a `/* ... */` comment, which PostgreSQL lets nest.
fn block_comment_len(text: &str) -> usize {
    let mut depth = 0;
    let mut index = 0;
    while index < text.len() {
        if text[index..].starts_with("/*") {
            depth += 1;
            index += 2;
        } else if text[index..].starts_with("*/") {
            depth -= 1;
            index += 2;
            if depth == 0 {
                return index;
            }
        } else {
            index += text[index..].chars().next().map_or(1, char::len_utf8);
        }
    }
    text.len()
}

/// Length of a '...' or "..." token; a doubled quote inside stays inside.
fn quoted_len(text: &str, quote: u8) -> usize {
    let bytes = text.as_bytes();
    let mut index = 1;
    while index < bytes.len() {
        if bytes[index] == quote {
            if bytes.get(index + 1) == Some(&quote) {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    text.len()
}

/// `$$` or `$tag$` at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let after = text.strip_prefix('$')?;
    let tag_len = after
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if after.as_bytes().get(tag_len) == Some(&b'$')
        && !after.starts_with(|c: char| c.is_ascii_digit())
    {
        Some(&text[..tag_len + 2])
    } else {
        None
    }
}

/// Line and column (1-based) of a 1-based character position, as the server reports it.
pub fn line_and_column(sql: &str, position: usize) -> (usize, usize) {
    let offset = sql
        .char_indices()
        .nth(position.saturating_sub(1))
        .map_or(sql.len(), |(offset, _)| offset);
    crate::text::error_text::line_and_column(sql, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_both_naming_styles() {
        assert_eq!(parse_version("001_init.sql"), Some(1));
        assert_eq!(
            parse_version("20260101120000_add_users.up.sql"),
            Some(20260101120000)
        );
        assert_eq!(parse_version("42_x.sql"), Some(42));
        for bad in [
            "init.sql",
            "_x.sql",
            "001.sql",
            "001_.sql",
            "v1_x.sql",
            "001-x.sql",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksums_ignore_bom_and_line_endings() {
        let unix = normalise(b"CREATE TABLE t ();\nSELECT 1;\n").unwrap();
        let windows = normalise(b"\xEF\xBB\xBFCREATE TABLE t ();\r\nSELECT 1;\r\n").unwrap();
        assert_eq!(sha256_hex(unix.as_bytes()), sha256_hex(windows.as_bytes()));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn statements_are_counted_outside_quotes_and_comments() {
        assert_eq!(count_statements("CREATE INDEX CONCURRENTLY i ON t (a);"), 1);
        assert_eq!(count_statements("CREATE INDEX CONCURRENTLY i ON t (a)"), 1);
        assert_eq!(
            count_statements("-- initbox:no-transaction\nSELECT 1; -- a; b\n"),
            1
        );
        assert_eq!(count_statements("SELECT ';'; SELECT \"a;b\";"), 2);
        assert_eq!(
            count_statements("DO $body$ BEGIN PERFORM 1; END $body$;"),
            1
        );
        assert_eq!(
            count_statements("SELECT $$;$$; /* ; /* ; */ ; */ SELECT 2"),
            2
        );
        assert_eq!(count_statements("SELECT 'it''s;';;;"), 1);
        assert_eq!(count_statements("  \n-- only a comment\n"), 0);
        assert_eq!(count_statements("SELECT $1; SELECT 2"), 2);
    }

    #[test]
    fn positions_become_lines_and_columns() {
        let sql = "CREATE TABLE a ();\nSELEC 1;\n";
        assert_eq!(line_and_column(sql, 20), (2, 1));
        assert_eq!(line_and_column(sql, 1), (1, 1));
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
        let migrations = read_dir(dir.path()).unwrap();
        let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["001_init.sql", "002_more.up.sql"]);
        assert_eq!(migrations[1].version, 2);

        std::fs::write(dir.path().join("002_again.sql"), "SELECT 1;").unwrap();
        std::fs::write(dir.path().join("notes.sql"), "SELECT 1;").unwrap();
        let error = read_dir(dir.path()).unwrap_err();
        assert!(error.to_string().contains("notes.sql"), "{error}");
        std::fs::remove_file(dir.path().join("notes.sql")).unwrap();
        let error = read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("version 2 in 002_again.sql and 002_more.up.sql"),
            "{error}"
        );
    }

    #[test]
    fn no_transaction_files_hold_one_statement() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("001_index.sql"),
            format!("{NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY i ON t (a);\n"),
        )
        .unwrap();
        let migrations = read_dir(dir.path()).unwrap();
        assert!(!migrations[0].transactional);
        std::fs::write(
            dir.path().join("002_two.sql"),
            format!("{NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY j ON t (a);\nSELECT 1;\n"),
        )
        .unwrap();
        let error = read_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("002_two.sql") && error.contains("it has 2"),
            "{error}"
        );
    }
}
