//! Log lines on stderr, never stdout: one readable line per event (text) or one JSON object (json).
//!
//! A hand-rolled writer rather than a tracing subscriber: every event is a complete line built
//! in memory and written with one call, so lines from parallel targets never interleave, and the
//! text form stays the single sentence a person reads in `kubectl logs`.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

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
    let ts = rfc3339_millis(now);
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

/// `2026-11-21T23:00:00.123Z`, without pulling in a date library for one format.
fn rfc3339_millis(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, millis: u64| {
            rfc3339_millis(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_795_302_000, 123), "2026-11-21T23:00:00.123Z");
    }

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
