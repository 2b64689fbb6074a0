//! Just enough of PostgreSQL's lexical rules to split a script into statements (semicolons
//! outside quotes, dollar-quoted bodies, comments and `BEGIN ATOMIC ... END` bodies) and to
//! recognise the statements that decide how a file must run: those PostgreSQL refuses inside a
//! transaction block, and a file's own BEGIN and COMMIT.

/// The statements of `sql`, each without its terminating semicolon, skipping empty ones and
/// those that hold only comments.
pub fn split(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_content = false;
    // Inside `BEGIN ATOMIC` (a SQL-standard function body) semicolons end the body's own
    // statements, not this one; CASE ... END nests inside it.
    let mut atomic_depth = 0usize;
    let mut previous_word = String::new();
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
        } else if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            has_content = true;
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
                .count();
            let word = rest[..len].to_ascii_uppercase();
            match word.as_str() {
                "ATOMIC" if previous_word == "BEGIN" => atomic_depth += 1,
                "CASE" if atomic_depth > 0 => atomic_depth += 1,
                "END" if atomic_depth > 0 => atomic_depth -= 1,
                _ => {}
            }
            previous_word = word;
            len
        } else {
            let c = rest.chars().next().expect("not at the end");
            if c == ';' && atomic_depth == 0 {
                if has_content {
                    statements.push(sql[start..index].trim());
                }
                start = index + 1;
                has_content = false;
            } else if !c.is_whitespace() {
                has_content = true;
            }
            c.len_utf8()
        };
        index += skip;
    }
    if has_content {
        statements.push(sql[start..].trim());
    }
    statements
}

/// The first words of a statement, upper-cased, after any leading comments.
pub fn leading_words(statement: &str, count: usize) -> Vec<String> {
    let mut text = statement.trim_start();
    loop {
        if text.starts_with("--") {
            text = text[text.find('\n').unwrap_or(text.len())..].trim_start();
        } else if text.starts_with("/*") {
            text = text[block_comment_len(text)..].trim_start();
        } else {
            break;
        }
    }
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .take(count)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Statements PostgreSQL refuses inside a transaction block ("cannot run inside a transaction
/// block"), named by their leading words.
pub fn refuses_transaction(statement: &str) -> bool {
    let words = leading_words(statement, 6);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["CREATE", "INDEX", "CONCURRENTLY", ..]
        | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
        | ["DROP", "INDEX", "CONCURRENTLY", ..]
        | ["VACUUM", ..]
        | ["CREATE", "DATABASE", ..]
        | ["DROP", "DATABASE", ..]
        | ["CREATE", "TABLESPACE", ..]
        | ["DROP", "TABLESPACE", ..]
        | ["ALTER", "SYSTEM", ..]
        | ["CREATE", "SUBSCRIPTION", ..]
        | ["DROP", "SUBSCRIPTION", ..] => true,
        ["REINDEX", ..] => words.contains(&"CONCURRENTLY"),
        _ => false,
    }
}

/// What a statement does to the transaction: starts one, ends one, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    Begin,
    End,
    Other,
}

pub fn transaction_control(statement: &str) -> Option<TransactionControl> {
    let words = leading_words(statement, 2);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        // `BEGIN` alone or with options; not `BEGIN ATOMIC`, which only appears inside bodies.
        ["BEGIN"]
        | [
            "BEGIN",
            "TRANSACTION" | "WORK" | "ISOLATION" | "READ" | "NOT",
        ] => Some(TransactionControl::Begin),
        ["START", "TRANSACTION"] => Some(TransactionControl::Begin),
        ["COMMIT" | "END"] | ["COMMIT" | "END", "TRANSACTION" | "WORK" | "AND"] => {
            Some(TransactionControl::End)
        }
        ["ROLLBACK" | "ABORT", ..] => Some(TransactionControl::Other),
        ["COMMIT" | "PREPARE", "PREPARED"] => Some(TransactionControl::Other),
        _ => None,
    }
}

/// A BEGIN without options, which a file may be stripped of without changing what it does.
pub fn is_plain_begin(statement: &str) -> bool {
    let words = leading_words(statement, 3);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    matches!(
        words.as_slice(),
        ["BEGIN"] | ["BEGIN", "TRANSACTION" | "WORK"] | ["START", "TRANSACTION"]
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_comments_and_bodies() {
        assert_eq!(
            split("CREATE INDEX CONCURRENTLY i ON t (a);"),
            ["CREATE INDEX CONCURRENTLY i ON t (a)"]
        );
        assert_eq!(split("CREATE INDEX CONCURRENTLY i ON t (a)").len(), 1);
        assert_eq!(
            split("-- initbox:no-transaction\nSELECT 1; -- a; b\n").len(),
            1
        );
        assert_eq!(split("SELECT ';'; SELECT \"a;b\";").len(), 2);
        assert_eq!(split("DO $body$ BEGIN PERFORM 1; END $body$;").len(), 1);
        assert_eq!(split("SELECT $$;$$; /* ; /* ; */ ; */ SELECT 2").len(), 2);
        assert_eq!(split("SELECT 'it''s;';;;").len(), 1);
        assert_eq!(split("  \n-- only a comment\n").len(), 0);
        assert_eq!(split("SELECT $1; SELECT 2").len(), 2);
        let atomic = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC \
                      SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END; SELECT 3;";
        assert_eq!(split(atomic).len(), 2, "{:?}", split(atomic));
        assert!(split(atomic)[0].ends_with("END"));
    }

    #[test]
    fn statements_that_refuse_a_transaction_are_recognised() {
        for statement in [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "create unique index concurrently i on t (a)",
            "-- why\n/* note */ DROP INDEX CONCURRENTLY IF EXISTS i",
            "VACUUM ANALYZE t",
            "REINDEX TABLE CONCURRENTLY t",
            "CREATE DATABASE other",
            "ALTER SYSTEM SET work_mem = '8MB'",
        ] {
            assert!(refuses_transaction(statement), "{statement}");
        }
        for statement in [
            "CREATE INDEX i ON t (a)",
            "REINDEX TABLE t",
            "SELECT 'CREATE INDEX CONCURRENTLY'",
            "CREATE TABLE concurrently (a int)",
        ] {
            assert!(!refuses_transaction(statement), "{statement}");
        }
    }

    #[test]
    fn transaction_control_is_recognised() {
        use TransactionControl::*;
        assert_eq!(transaction_control("BEGIN"), Some(Begin));
        assert_eq!(
            transaction_control("begin transaction isolation level serializable"),
            Some(Begin)
        );
        assert_eq!(transaction_control("START TRANSACTION"), Some(Begin));
        assert_eq!(transaction_control("COMMIT"), Some(End));
        assert_eq!(transaction_control("end"), Some(End));
        assert_eq!(transaction_control("ROLLBACK"), Some(Other));
        assert_eq!(transaction_control("COMMIT PREPARED 'x'"), Some(Other));
        assert_eq!(transaction_control("BEGIN ATOMIC"), None);
        assert_eq!(transaction_control("CREATE TABLE t (a int)"), None);
    }
}
