//! dbmate: `<digits>*.sql` with `-- migrate:up` and `-- migrate:down` sections, the up section
//! sent whole (in a transaction unless `transaction:false`), and `schema_migrations(version)`
//! holding each applied version as text.

use tokio_postgres::Client;

use super::{Applied, Body, Named, Piece, Record, State};
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

/// dbmate's `^(\d+).*\.sql$`: the version is the leading digits, kept as written.
pub fn classify(file_name: &str) -> Named {
    if !file_name.ends_with(".sql") {
        return Named::Skipped("not a .sql file");
    }
    let digits = super::leading_digits(file_name);
    match Version::parse(digits) {
        Some(version) => Named::Migration {
            description: file_name[digits.len()..]
                .trim_start_matches('_')
                .trim_end_matches(".sql")
                .to_string(),
            version: Some(version),
        },
        None => Named::Skipped("not named <digits>...sql"),
    }
}

/// A `-- migrate:up` or `-- migrate:down` line (`^--\s*migrate:up(\s*$|\s+\S+)`), with its
/// options.
fn directive<'a>(line: &'a str, which: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("--")?.trim_start();
    let options = rest.strip_prefix("migrate:")?.strip_prefix(which)?;
    (options.is_empty() || options.starts_with(char::is_whitespace)).then_some(options)
}

pub fn is_up_directive(line: &str) -> bool {
    directive(line, "up").is_some()
}

pub fn body(text: &str) -> Result<Body, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut up: Option<(usize, usize, &str)> = None;
    let mut preceding = None;
    let mut up_end = text.len();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(options) = directive(bare, "up") {
            if up.is_some() {
                return Err(format!(
                    "line {}: a second '-- migrate:up' section (dbmate records one version per file)",
                    index + 1
                ));
            }
            up = Some((offset, index + 1, options));
        } else if directive(bare, "down").is_some() {
            if up.is_none() {
                return Err(
                    "dbmate requires each migration to define an up block with '-- migrate:up'"
                        .into(),
                );
            }
            up_end = up_end.min(offset);
        } else if up.is_none() && !bare.trim().is_empty() && !bare.trim_start().starts_with("--") {
            preceding.get_or_insert(index + 1);
        }
        offset += line.len();
    }
    let Some((start, line, options)) = up else {
        return Err(
            "dbmate requires each migration to define an up block with '-- migrate:up'".into(),
        );
    };
    if let Some(line) = preceding {
        return Err(format!(
            "line {line}: dbmate does not support statements preceding the '-- migrate:up' block"
        ));
    }
    // Options are `key:value` words; dbmate keeps those that split into exactly two parts.
    let transactional = !options
        .split_whitespace()
        .filter_map(|word| {
            word.split_once(':')
                .filter(|(_, value)| !value.contains(':'))
        })
        .any(|(key, value)| key == "transaction" && value == "false");
    // The section includes its directive line, a comment, as dbmate sends it.
    let section = Piece {
        sql: text[start..up_end].to_string(),
        line,
    };
    Ok(Body::new(
        vec![section],
        (!transactional).then(|| "-- migrate:up transaction:false".into()),
    ))
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    table
        .create(
            client,
            "create table if not exists {table} (version varchar primary key)",
        )
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let versions = table
        .column(client, "select version from {table} order by version")
        .await?;
    Ok(State::of(
        versions.into_iter().map(Applied::named).collect(),
    ))
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    let version = record
        .version
        .map(|version| version.text.as_str())
        .unwrap_or_default();
    table
        .write(
            client,
            "insert into {table} (version) values ($1)",
            &[&version],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    #[test]
    fn only_the_up_section_runs() {
        let body = body("-- a note\n-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n").unwrap();
        assert_eq!(body.transaction, Transaction::Wrapped);
        assert_eq!(
            body.pieces[0].sql,
            "-- migrate:up\nCREATE TABLE a (id int);\n\n"
        );
        assert_eq!(body.pieces[0].line, 2);
        let bare =
            super::body("--migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (id);")
                .unwrap();
        assert_eq!(bare.transaction, Transaction::None);
        assert!(bare.pieces[0].sql.ends_with("(id);"));
        let other = super::body("-- migrate:up transaction:true\nSELECT 1;\n").unwrap();
        assert_eq!(other.transaction, Transaction::Wrapped);
    }

    #[test]
    fn dbmate_errors_are_kept() {
        for (text, expected) in [
            ("CREATE TABLE a ();\n-- migrate:up\n", "preceding"),
            ("SELECT 1;\n", "up block"),
            ("-- migrate:down\nSELECT 1;\n", "up block"),
            (
                "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n",
                "second",
            ),
        ] {
            let error = body(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        // `-- migrate:upgrade` is no directive.
        assert!(body("-- migrate:upgrade\n").is_err());
    }

    #[test]
    fn versions_are_the_leading_digits_as_written() {
        match classify("001_init.sql") {
            Named::Migration { version, .. } => assert_eq!(version.unwrap().text, "001"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("20260101120000.sql"),
            Named::Migration { .. }
        ));
        assert!(matches!(classify("schema.sql"), Named::Skipped(_)));
    }
}
