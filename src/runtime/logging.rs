//! Log lines on stderr, never stdout: one readable line per event (text) or one JSON object (json).
//!
//! A hand-rolled writer rather than a tracing subscriber: every event is a complete line built
//! in memory and written with one call, so lines from parallel targets never interleave, and the
//! text form stays the single sentence a person reads in `kubectl logs`.

use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::timestamp::{self, Precision};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-21T23:00:00.123Z WARN db:5432: not ready: connection refused`
    Text,
    /// One JSON object per line: ts, level, msg and the event's fields.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

struct Config {
    format: LogFormat,
    max_level: Level,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets the format and verbosity once per process: `verbosity` 0 is info, 1+ debug
/// (one line per attempt), -1 warnings and errors only, -2 or less errors only.
pub fn init(format: LogFormat, verbosity: i8) {
    let max_level = match verbosity {
        i8::MIN..=-2 => Level::Error,
        -1 => Level::Warn,
        0 => Level::Info,
        1.. => Level::Debug,
    };
    let _ = CONFIG.set(Config { format, max_level });
}

fn config() -> &'static Config {
    CONFIG.get_or_init(|| Config {
        format: LogFormat::Text,
        max_level: Level::Info,
    })
}

pub fn enabled(level: Level) -> bool {
    level <= config().max_level
}

/// Writes one event. `message` is the whole story for a person; `fields` repeat its parts
/// for machines and appear only in the JSON form.
pub fn emit(level: Level, message: &str, fields: &[(&str, Value)]) {
    if !enabled(level) {
        return;
    }
    let mut line = render(config().format, SystemTime::now(), level, message, fields);
    line.push('\n');
    // A closed stderr must not turn into a failure of the job itself.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn render(
    format: LogFormat,
    now: SystemTime,
    level: Level,
    message: &str,
    fields: &[(&str, Value)],
) -> String {
    let ts = timestamp::rfc3339(now, Precision::Millis);
    match format {
        LogFormat::Text => format!("{ts} {:<5} {message}", level.name().to_uppercase()),
        LogFormat::Json => {
            let mut object = Map::new();
            object.insert("ts".into(), ts.into());
            object.insert("level".into(), level.name().into());
            object.insert("msg".into(), message.into());
            for (key, value) in fields {
                object.insert((*key).into(), value.clone());
            }
            Value::Object(object).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn json_lines_carry_message_and_fields() {
        let line = render(
            LogFormat::Json,
            UNIX_EPOCH,
            Level::Warn,
            "db:5432: not ready",
            &[("target", "db:5432".into()), ("attempt", 3.into())],
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["level"], "warn");
        assert_eq!(parsed["msg"], "db:5432: not ready");
        assert_eq!(parsed["target"], "db:5432");
        assert_eq!(parsed["attempt"], 3);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn text_lines_are_one_sentence() {
        let line = render(
            LogFormat::Text,
            UNIX_EPOCH,
            Level::Info,
            "ready",
            &[("x", 1.into())],
        );
        assert_eq!(line, "1970-01-01T00:00:00.000Z INFO  ready");
    }
}
