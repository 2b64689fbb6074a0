//! goose: `N_name.sql` with `-- +goose Up` / `Down`, statements split at semicolons that end a
//! line (or kept whole between StatementBegin and StatementEnd) and sent one by one,
//! `-- +goose NO TRANSACTION`, `-- +goose ENVSUB ON/OFF`, and `goose_db_version`.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::{Applied, Body, Context, Named, Record, State, ToolLock};
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

/// goose takes `.sql` and `.go` files whose name is `N_...` with N >= 1; a `.sql` file it cannot
/// number is an error, a `.go` file is a migration only goose can run.
pub fn classify(file_name: &str) -> Named {
    let is_go = file_name.ends_with(".go");
    if !file_name.ends_with(".sql") && !is_go {
        return Named::Skipped("neither .sql nor .go");
    }
    if file_name.ends_with("_test.go") {
        return Named::Skipped("a Go test file");
    }
    let number = file_name
        .split_once('_')
        .map(|(number, _)| number.strip_prefix('+').unwrap_or(number));
    let version = number
        .and_then(Version::parse)
        .filter(|version| version.as_i64().is_some_and(|n| n >= 1));
    match (version, is_go) {
        (Some(version), true) => Named::Foreign {
            version,
            why: "a Go migration, which only a goose binary built with it can run",
        },
        (None, true) => Named::Skipped("a .go file without a version"),
        (Some(version), false) => Named::Migration {
            description: file_name
                .split_once('_')
                .map_or("", |(_, rest)| rest)
                .trim_end_matches(".sql")
                .to_string(),
            version: Some(version),
        },
        (None, false) => Named::Invalid(
            "goose migration names must be N_name.sql with a version N of 1 or more".into(),
        ),
    }
}

/// goose's test for an annotation line: a `--` comment that mentions `+goose`.
pub fn is_annotation(line: &str) -> bool {
    line.trim().starts_with("--") && line.contains("+goose")
}

#[derive(PartialEq)]
enum Section {
    Start,
    Up,
    Down,
}

/// The Up section's statements, parsed as goose parses them (internal/sqlparser).
pub fn body(text: &str, context: &Context) -> Result<Body, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section = Section::Start;
    let mut no_transaction = false;
    let mut envsub = false;
    let mut in_block = false;
    let mut buffer = super::Gathered::default();
    let mut pieces = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if is_annotation(line) {
            if line.starts_with([' ', '\t']) {
                return Err(format!(
                    "line {number}: a +goose annotation must start at the beginning of the line"
                ));
            }
            let command = line.replace("--", "");
            let command = command.replacen("+goose", "", 1);
            if command.contains("+goose") {
                return Err(format!("line {number}: more than one +goose on a line"));
            }
            match command.trim().to_ascii_lowercase().as_str() {
                "up" => {
                    if section != Section::Start {
                        return Err(format!("line {number}: duplicate '-- +goose Up'"));
                    }
                    section = Section::Up;
                }
                "down" => {
                    if section == Section::Start {
                        return Err("must start with '-- +goose Up'".into());
                    }
                    if !buffer.is_blank() || in_block {
                        return Err(format!(
                            "line {number}: the statement before '-- +goose Down' is not ended (missing semicolon?)"
                        ));
                    }
                    section = Section::Down;
                }
                "statementbegin" => {
                    if section == Section::Up {
                        if !buffer.is_blank() {
                            return Err(format!(
                                "line {number}: the statement before StatementBegin is not ended (missing semicolon?)"
                            ));
                        }
                        buffer.starts_at(number + 1);
                    }
                    in_block = true;
                }
                "statementend" => {
                    if !in_block {
                        return Err(format!(
                            "line {number}: StatementEnd without StatementBegin"
                        ));
                    }
                    in_block = false;
                    if section == Section::Up {
                        buffer.take_into(&mut pieces, str::trim);
                    }
                }
                "no transaction" => no_transaction = true,
                "envsub on" => envsub = true,
                "envsub off" => envsub = false,
                other => return Err(format!("line {number}: unknown goose annotation '{other}'")),
            }
            continue;
        }
        match section {
            Section::Start => {
                if !trimmed.is_empty() && !trimmed.starts_with("--") {
                    return Err(format!("line {number}: text before '-- +goose Up'"));
                }
            }
            Section::Down => {}
            Section::Up => {
                if buffer.is_empty()
                    && !in_block
                    && (trimmed.is_empty() || trimmed.starts_with("--"))
                {
                    continue;
                }
                let line = if envsub {
                    substitute(line, &context.environment)
                        .map_err(|why| format!("line {number}: {why}"))?
                } else {
                    line.to_string()
                };
                buffer.add(&line, number);
                if !in_block && super::ends_with_semicolon(&line) {
                    buffer.take_into(&mut pieces, str::trim);
                }
            }
        }
    }
    if section == Section::Start {
        return Err("must start with '-- +goose Up'".into());
    }
    if in_block {
        return Err("missing '-- +goose StatementEnd'".into());
    }
    if !buffer.is_blank() {
        return Err(format!(
            "line {}: the last statement is not ended (missing semicolon?)",
            buffer.line()
        ));
    }
    Ok(Body::new(
        pieces,
        no_transaction.then(|| "-- +goose NO TRANSACTION".into()),
    ))
}

/// goose's ENVSUB (mfridman/interpolate): `$NAME`, `${NAME}`, `${NAME-default}`,
/// `${NAME:-default}` and `${NAME?message}` from the environment, unset as empty; `$$` and `\$`
/// are a literal `$`.
fn substitute(line: &str, environment: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(['$', '\\']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("\\$") || tail.starts_with("$$") {
            out.push('$');
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('\\') {
            out.push('\\');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix("${") {
            let end = inner.find('}').ok_or("an unclosed ${")?;
            out.push_str(&expand(&inner[..end], environment)?);
            rest = &inner[end + 1..];
        } else {
            let name_len = tail[1..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if name_len == 0 {
                out.push('$');
                rest = &tail[1..];
                continue;
            }
            let name = &tail[1..1 + name_len];
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("${name}: an identifier must start with a letter"));
            }
            out.push_str(environment.get(name).map_or("", String::as_str));
            rest = &tail[1 + name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expression: &str, environment: &HashMap<String, String>) -> Result<String, String> {
    let name_len = expression
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (name, operator) = expression.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "${{{expression}}}: an identifier must start with a letter"
        ));
    }
    let value = environment.get(name).cloned();
    Ok(if operator.is_empty() {
        value.unwrap_or_default()
    } else if let Some(default) = operator.strip_prefix(":-") {
        value
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_string())
    } else if let Some(default) = operator.strip_prefix('-') {
        value.unwrap_or_else(|| default.to_string())
    } else if let Some(message) = operator.strip_prefix('?') {
        value.ok_or_else(|| format!("${name}: {message}"))?
    } else {
        return Err(format!(
            "${{{expression}}}: ENVSUB supports $NAME, ${{NAME}}, ${{NAME-x}}, ${{NAME:-x}} and ${{NAME?x}} here"
        ));
    })
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    // goose creates the table and its version-0 row together; without that row goose itself
    // refuses the table.
    table
        .create(
            client,
            "BEGIN;
             CREATE TABLE IF NOT EXISTS {table} (
                id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
                version_id bigint NOT NULL,
                is_applied boolean NOT NULL,
                tstamp timestamp NOT NULL DEFAULT now()
             );
             INSERT INTO {table} (version_id, is_applied)
                SELECT 0, true WHERE NOT EXISTS (SELECT 1 FROM {table});
             COMMIT",
        )
        .await
}

/// goose's `up` counts every row's version as applied, whatever is_applied says.
pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let versions = table
        .column(
            client,
            "SELECT DISTINCT version_id FROM {table} WHERE version_id > 0 ORDER BY version_id",
        )
        .await?;
    let applied = versions
        .into_iter()
        .map(|version| Applied::numbered(version, None))
        .collect();
    Ok(State::of(applied))
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    let version = record.version.and_then(Version::as_i64).unwrap_or_default();
    table
        .write(
            client,
            "INSERT INTO {table} (version_id, is_applied) VALUES ($1, true)",
            &[&version],
        )
        .await
}

/// The goose CLI takes no lock; a program using goose's Provider with its Postgres session
/// locker takes pg_try_advisory_lock(4097083626) (lock/postgres.go, DefaultLockID, the CRC32 of
/// "goose"), which initbox takes too.
pub fn locks() -> Vec<ToolLock> {
    vec![ToolLock {
        key: 4_097_083_626,
        why: "goose's session lock".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    fn body(text: &str) -> Result<Body, String> {
        super::body(text, &Context::default())
    }

    fn statements(text: &str) -> Vec<String> {
        body(text)
            .unwrap()
            .pieces
            .into_iter()
            .map(|piece| piece.sql)
            .collect()
    }

    #[test]
    fn the_up_section_splits_as_goose_splits_it() {
        let text = "-- a comment\n\n-- +goose Up\nCREATE TABLE a (id int);\nINSERT INTO a\n  VALUES (1); -- one\n\
                    -- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN RETURN 1; END;\n$$ LANGUAGE plpgsql;\n\
                    -- +goose StatementEnd\n-- +goose Down\nDROP TABLE a;\n";
        let pieces = body(text).unwrap().pieces;
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].sql, "CREATE TABLE a (id int);");
        assert_eq!(pieces[0].line, 4);
        assert_eq!(pieces[1].sql, "INSERT INTO a\n  VALUES (1); -- one");
        assert!(
            pieces[2].sql.starts_with("CREATE FUNCTION") && pieces[2].sql.ends_with("plpgsql;")
        );
        assert_eq!(pieces[2].line, 8);
    }

    #[test]
    fn annotations_are_case_insensitive_and_no_transaction_is_seen() {
        let parsed =
            body("--+goose up\n-- +goose no transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n")
                .unwrap();
        assert_eq!(parsed.transaction, Transaction::None);
        assert_eq!(statements("-- +goose UP\nSELECT 1;\n"), ["SELECT 1;"]);
        // `+goose` itself is matched case-sensitively, as goose matches it: this is a comment.
        assert!(body("-- +GOOSE UP\nSELECT 1;\n").is_err());
    }

    #[test]
    fn goose_errors_are_kept() {
        for (text, expected) in [
            ("SELECT 1;\n-- +goose Up\n", "before '-- +goose Up'"),
            ("", "must start with"),
            ("-- +goose Up\nSELECT 1\n", "missing semicolon"),
            (
                "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n",
                "StatementEnd",
            ),
            (
                "-- +goose Up\n-- +goose Sideways\n",
                "unknown goose annotation",
            ),
            ("-- +goose Up\n-- +goose Up\n", "duplicate"),
            (" -- +goose Up\n", "beginning of the line"),
        ] {
            let error = body(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn envsub_substitutes_between_on_and_off() {
        let context = Context {
            environment: std::sync::Arc::new(
                [("INITBOX_GOOSE_TEST_OWNER".to_string(), "app".to_string())].into(),
            ),
            ..Context::default()
        };
        let text = "-- +goose Up\n-- +goose ENVSUB ON\nGRANT SELECT ON a TO ${INITBOX_GOOSE_TEST_OWNER};\n\
                    SELECT '${INITBOX_GOOSE_TEST_UNSET:-none}', '$$';\n-- +goose ENVSUB OFF\nSELECT '$INITBOX_GOOSE_TEST_OWNER';\n";
        let statements: Vec<String> = super::body(text, &context)
            .unwrap()
            .pieces
            .into_iter()
            .map(|piece| piece.sql)
            .collect();
        assert_eq!(
            statements,
            [
                "GRANT SELECT ON a TO app;",
                "SELECT 'none', '$';",
                "SELECT '$INITBOX_GOOSE_TEST_OWNER';"
            ]
        );
    }

    #[test]
    fn go_files_are_foreign_and_bad_names_invalid() {
        assert!(matches!(
            classify("00003_backfill.go"),
            Named::Foreign { .. }
        ));
        assert!(matches!(classify("main.go"), Named::Skipped(_)));
        assert!(matches!(classify("x_test.go"), Named::Skipped(_)));
        assert!(matches!(classify("0_init.sql"), Named::Invalid(_)));
        assert!(matches!(classify("init.sql"), Named::Invalid(_)));
        assert!(matches!(
            classify("20260101120000_init.sql"),
            Named::Migration { .. }
        ));
    }
}
