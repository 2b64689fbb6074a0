//! Flyway: `V<version>__<description>.sql` with dotted versions and `R__<description>.sql`
//! repeatables (run after the versioned ones, and again when their checksum changes), `${...}`
//! placeholders, statements that refuse a transaction detected as Flyway detects them (or a
//! `.sql.conf` beside the script), and `flyway_schema_history` with Flyway's CRC32 checksums.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::{Applied, Body, Checksum, Context, Named, Piece, Record, State, ToolLock};
use crate::commands::migrate::checksum;
use crate::commands::migrate::sql;
use crate::commands::migrate::table::{Table, quote};
use crate::commands::migrate::version::Version;

/// `V1.2__add_column.sql`, `R__views.sql`; other names (callbacks, undo and baseline scripts,
/// READMEs) are skipped, as Flyway skips names outside its convention.
pub fn classify(file_name: &str) -> Named {
    if file_name.to_ascii_lowercase().ends_with(".sql.conf") {
        return Named::Skipped("a script's configuration, read with its script");
    }
    if !file_name.to_ascii_lowercase().ends_with(".sql") {
        return Named::Skipped("not a .sql file");
    }
    let stem = &file_name[..file_name.len() - 4];
    let (prefix, rest) = if let Some(rest) = stem.strip_prefix('V') {
        ('V', rest)
    } else if let Some(rest) = stem.strip_prefix('R') {
        ('R', rest)
    } else {
        return Named::Skipped("not a V or R script");
    };
    let (version, description) = rest.split_once("__").unwrap_or((rest, ""));
    let description = description.replace('_', " ");
    match prefix {
        'R' if version.is_empty() => Named::Migration {
            version: None,
            description,
        },
        'R' => Named::Skipped("not named R__description.sql"),
        _ => match Version::parse(version) {
            Some(version) => Named::Migration {
                version: Some(version),
                description,
            },
            None => Named::Invalid(format!(
                "Flyway versions may only contain 0..9 and . (dot): '{version}'"
            )),
        },
    }
}

/// What a script's `.sql.conf` may say.
struct ScriptConfig {
    execute_in_transaction: Option<bool>,
    placeholder_replacement: Option<bool>,
}

fn script_config(text: &str) -> Result<ScriptConfig, String> {
    let mut config = ScriptConfig {
        execute_in_transaction: None,
        placeholder_replacement: None,
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!(".sql.conf: '{line}' is not key=value"))?;
        let flag = || match value.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                ".sql.conf: {} must be true or false, not '{other}'",
                key.trim()
            )),
        };
        match key.trim() {
            "executeInTransaction" => config.execute_in_transaction = Some(flag()?),
            "placeholderReplacement" => config.placeholder_replacement = Some(flag()?),
            // UTF-8 is all initbox reads; shouldExecute=false would skip a script it still lists.
            "encoding" | "shouldExecute" => {}
            other => return Err(format!(".sql.conf: unrecognised property '{other}'")),
        }
    }
    Ok(config)
}

/// Flyway's PostgreSQLParser: statements whose first words match these run only outside a
/// transaction.
fn refuses_transaction(statement: &str) -> bool {
    let words = sql::leading_words(statement, 4);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        words.as_slice(),
        [
            "CREATE" | "DROP",
            "DATABASE" | "TABLESPACE" | "SUBSCRIPTION",
            ..
        ] | ["ALTER", "SYSTEM", ..]
            | ["CREATE" | "DROP", "INDEX", "CONCURRENTLY", ..]
            | ["CREATE" | "DROP", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
            | ["REINDEX", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
            | ["REINDEX", "VERBOSE", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
            | ["VACUUM", ..]
            | ["DISCARD", "ALL", ..]
    )
}

pub fn body(text: &str, companion: Option<&str>, context: &Context) -> Result<Body, String> {
    let config = match companion {
        Some(conf) => script_config(conf)?,
        None => ScriptConfig {
            execute_in_transaction: None,
            placeholder_replacement: None,
        },
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let replace = config
        .placeholder_replacement
        .unwrap_or(context.flyway_placeholders);
    let text = if replace {
        replace_placeholders(text, context)?
    } else {
        text.to_string()
    };
    let statements = sql::split(&text);
    let refusing: Vec<&&str> = statements
        .iter()
        .filter(|s| refuses_transaction(s))
        .collect();
    let transactional = match config.execute_in_transaction {
        Some(setting) => setting,
        None if refusing.is_empty() => true,
        None if refusing.len() == statements.len() => false,
        None => {
            let offending = refusing[0];
            let line = line_of(&text, offending);
            return Err(format!(
                "Detected both transactional and non-transactional statements within the same migration \
                 (even though mixed is false). Offending statement found at line {line}: {}",
                offending.lines().next().unwrap_or_default()
            ));
        }
    };
    if transactional {
        return Ok(Body::whole(&text, None));
    }
    // Outside a transaction Flyway sends each statement on its own, so each commits by itself.
    let pieces = statements
        .iter()
        .map(|statement| Piece {
            line: line_of(&text, statement),
            sql: statement.to_string(),
        })
        .collect();
    let why = match config.execute_in_transaction {
        Some(false) => "executeInTransaction=false in its .sql.conf".into(),
        _ => format!(
            "{} cannot run inside a transaction",
            sql::leading_words(refusing[0], 3).join(" ")
        ),
    };
    Ok(Body::new(pieces, Some(why)))
}

/// The line of `text` that `statement`, a slice of it, starts on.
fn line_of(text: &str, statement: &str) -> usize {
    let offset = statement.as_ptr() as usize - text.as_ptr() as usize;
    crate::text::error_text::line_and_column(text, offset).0
}

/// The placeholders Flyway replaces by default: its own `${flyway:...}` and those set as
/// FLYWAY_PLACEHOLDERS_NAME in the environment; names match case-insensitively, and an unknown
/// one is an error, as in Flyway.
fn replace_placeholders(text: &str, context: &Context) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut values: HashMap<String, String> = context
        .environment
        .iter()
        .filter_map(|(key, value)| {
            Some((
                key.strip_prefix("FLYWAY_PLACEHOLDERS_")?.to_lowercase(),
                value.clone(),
            ))
        })
        .collect();
    for (key, value) in [
        ("flyway:defaultschema", context.schema.as_str()),
        ("flyway:user", context.user.as_str()),
        ("flyway:database", context.database.as_str()),
        ("flyway:timestamp", context.timestamp.as_str()),
        ("flyway:filename", context.file_name.as_str()),
        ("flyway:table", context.table.as_str()),
        ("flyway:environment", "default"),
    ] {
        values.insert(key.into(), value.into());
    }
    if let Ok(directory) = std::env::current_dir() {
        values.insert(
            "flyway:workingdirectory".into(),
            directory.display().to_string(),
        );
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(length) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + length];
        out.push_str(&rest[..start]);
        match values.get(&name.to_lowercase()) {
            Some(value) => out.push_str(value),
            None if name.to_lowercase().starts_with("flyway:") => {
                return Err(format!(
                    "Failed to populate value for default placeholder: ${{{name}}}"
                ));
            }
            None => {
                return Err(format!(
                    "No value provided for placeholder: ${{{name}}} (set FLYWAY_PLACEHOLDERS_{})",
                    name.to_uppercase()
                ));
            }
        }
        rest = &rest[start + 3 + length..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A repeatable's checksum is over the text with its placeholders replaced, so a changed
/// placeholder value runs it again; the raw text's checksum is accepted too, as Flyway accepts
/// its "equivalent checksum".
pub fn replaced_checksum(text: &str, context: &Context) -> Option<Checksum> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let replaced = replace_placeholders(text, context).ok()?;
    Some(Checksum::Crc32(checksum::flyway(&replaced)))
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    // Flyway's own DDL (PostgreSQLDatabase.getRawCreateScript); IF NOT EXISTS is the only change,
    // because runners may race to create it.
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                \"installed_rank\" INT NOT NULL,
                \"version\" VARCHAR(50),
                \"description\" VARCHAR(200) NOT NULL,
                \"type\" VARCHAR(20) NOT NULL,
                \"script\" VARCHAR(1000) NOT NULL,
                \"checksum\" INTEGER,
                \"installed_by\" VARCHAR(100) NOT NULL,
                \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
                \"execution_time\" INTEGER NOT NULL,
                \"success\" BOOLEAN NOT NULL,
                CONSTRAINT {pk} PRIMARY KEY (\"installed_rank\")
             );
             CREATE INDEX IF NOT EXISTS {index} ON {table} (\"success\")",
            table = table.quoted,
            pk = quote(&format!("{}_pk", table.name)),
            index = quote(&format!("{}_s_idx", table.name)),
        ))
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let rows = table
        .rows(
            client,
            "SELECT \"version\", \"description\", \"type\", \"checksum\", \"success\"
             FROM {table} ORDER BY \"installed_rank\"",
        )
        .await?;
    let mut state = State::default();
    for row in rows {
        let version: Option<String> = row.try_get(0)?;
        let description: String = row.try_get(1)?;
        let kind: String = row.try_get(2)?;
        let checksum: Option<i32> = row.try_get(3)?;
        let success: bool = row.try_get(4)?;
        let parsed = version.as_deref().and_then(Version::parse);
        match kind.as_str() {
            "SCHEMA" => continue,
            "BASELINE" | "SQL_BASELINE" => {
                state.floor = parsed.clone().max(state.floor.take());
                continue;
            }
            // `flyway repair` marks a missing migration deleted with a row of its own.
            "DELETE" => {
                state
                    .applied
                    .retain(|applied| applied.version != parsed || parsed.is_none());
                continue;
            }
            _ => {}
        }
        if !success && state.unfinished.is_none() {
            let shown = version.clone().unwrap_or_else(|| description.clone());
            state.unfinished = Some(format!(
                "Detected failed migration to version {shown} ({description}) in {}: remove any half-completed \
                 changes, then run `flyway repair` (or delete the row: DELETE FROM {} WHERE NOT success)",
                table.shown, table.shown
            ));
        }
        let repeatable = version.is_none();
        if repeatable {
            // The newest row of a repeatable is the one that counts.
            state
                .applied
                .retain(|applied| !(applied.repeatable && applied.shown == description));
        }
        state.applied.push(Applied {
            id: match &parsed {
                Some(version) => version.canonical(),
                None => format!("R:{description}"),
            },
            shown: version.unwrap_or_else(|| description.clone()),
            version: parsed,
            checksum: checksum.map(Checksum::Crc32),
            repeatable,
        });
    }
    Ok(state)
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    let version = record.version.map(|version| version.text.clone());
    let checksum = match record.checksum {
        Some(Checksum::Crc32(value)) => Some(*value),
        _ => None,
    };
    let description = if record.description.chars().count() > 200 {
        format!(
            "{}...",
            record.description.chars().take(197).collect::<String>()
        )
    } else {
        record.description.to_string()
    };
    let milliseconds = i32::try_from(record.elapsed_ms).unwrap_or(i32::MAX);
    table
        .write(
            client,
            "INSERT INTO {table} (\"installed_rank\", \"version\", \"description\", \"type\", \"script\",
                \"checksum\", \"installed_by\", \"execution_time\", \"success\")
             VALUES ((SELECT coalesce(max(\"installed_rank\"), 0) + 1 FROM {table}), $1, $2, 'SQL', $3, $4,
                current_user, $5, true)",
            &[&version, &description, &record.name, &checksum, &milliseconds],
        )
        .await
}

/// Flyway's PostgreSQLAdvisoryLockTemplate: 0x466C79776179 ("Flyway") plus the Java hashCode of
/// the quoted table name, `"public"."flyway_schema_history"`.
pub fn locks(table: &Table) -> Vec<ToolLock> {
    vec![ToolLock {
        key: key(&table.quoted),
        why: "Flyway's lock".into(),
    }]
}

fn key(quoted_table: &str) -> i64 {
    const MAGIC: i64 = 0x466C_7977_6179;
    let hash = quoted_table.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    MAGIC + i64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    fn context() -> Context {
        Context {
            schema: "app".into(),
            user: "app_user".into(),
            database: "appdb".into(),
            timestamp: "2026-11-29 12:00:00".into(),
            file_name: "R__views.sql".into(),
            table: "flyway_schema_history".into(),
            flyway_placeholders: true,
            environment: std::sync::Arc::new(
                [(
                    "FLYWAY_PLACEHOLDERS_OWNER".to_string(),
                    "reporting".to_string(),
                )]
                .into(),
            ),
        }
    }

    #[test]
    fn lock_key_is_flyways() {
        // 77431708279161 + "\"public\".\"flyway_schema_history\"".hashCode() (2125624436).
        assert_eq!(
            key("\"public\".\"flyway_schema_history\""),
            77_433_833_903_597
        );
    }

    #[test]
    fn names_follow_flyways_convention() {
        let version = |name: &str| match classify(name) {
            Named::Migration {
                version,
                description,
            } => Some((version.map(|v| v.text), description)),
            _ => None,
        };
        assert_eq!(
            version("V2.1__add_column.sql"),
            Some((Some("2.1".into()), "add column".into()))
        );
        assert_eq!(
            version("V1_1__x.sql"),
            Some((Some("1.1".into()), "x".into()))
        );
        assert_eq!(version("R__views.sql"), Some((None, "views".into())));
        assert_eq!(version("V3.SQL"), Some((Some("3".into()), String::new())));
        assert!(matches!(classify("U1__undo.sql"), Named::Skipped(_)));
        assert!(matches!(classify("V1__x.sql.conf"), Named::Skipped(_)));
        assert!(matches!(classify("Vx__y.sql"), Named::Invalid(_)));
    }

    #[test]
    fn non_transactional_statements_are_detected_and_not_mixed() {
        let body = body(
            "CREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;\n",
            None,
            &context(),
        )
        .unwrap();
        assert_eq!(body.transaction, Transaction::None);
        assert_eq!(body.pieces.len(), 2);
        assert_eq!(body.pieces[1].line, 2);
        let error = super::body(
            "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            None,
            &context(),
        )
        .unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        let forced = super::body(
            "CREATE TABLE t (a int);\n",
            Some("executeInTransaction=false\n"),
            &context(),
        )
        .unwrap();
        assert_eq!(forced.transaction, Transaction::None);
        assert!(super::body("SELECT 1;", Some("colour=blue"), &context()).is_err());
    }

    #[test]
    fn placeholders_are_replaced_or_refused() {
        let body = body(
            "GRANT SELECT ON ${flyway:defaultSchema}.t TO ${Owner};",
            None,
            &context(),
        )
        .unwrap();
        assert_eq!(body.pieces[0].sql, "GRANT SELECT ON app.t TO reporting;");
        let error = super::body("SELECT '${nobody_set_this}';", None, &context()).unwrap_err();
        assert!(
            error.contains("No value provided for placeholder: ${nobody_set_this}"),
            "{error}"
        );
        let mut off = context();
        off.flyway_placeholders = false;
        assert_eq!(
            super::body("SELECT '${x}';", None, &off).unwrap().pieces[0].sql,
            "SELECT '${x}';"
        );
    }
}
