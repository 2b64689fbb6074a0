//! Durations on the command line: `250ms`, `30s`, `5m`, `1h30m`, or a bare number of seconds.

use std::time::Duration;

const HINT: &str = "expected e.g. 250ms, 30s, 5m, 1h30m or a number of seconds";

/// Parses a duration; the error names the bad value and the accepted forms.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration '{text}': {why}; {HINT}");
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map_err(|_| invalid("too large"))?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid("a unit must follow a number"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid("too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(invalid("missing unit after a number")),
            unit => return Err(invalid(&format!("unknown unit '{unit}'"))),
        };
        rest = &rest[unit_len..];
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| invalid("too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way it is written on the command line (`1m30s`, `250ms`).
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let (hours, minutes, seconds, millis) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    let mut out = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// A measured time for people: `12ms` below a second, `3.2s` above.
pub fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_forms() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else_naming_the_value() {
        for bad in [
            "",
            "5x",
            "ms",
            "-1s",
            "1.5s",
            " 5s",
            "5s ",
            "5 s",
            "1h30",
            "s5",
            "5sec",
            "1d",
            "99999999999999999999",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        assert!(parse("999999999999999999h").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "30s", "5m", "1h30m", "1m0s500ms"] {
            let parsed = parse(text).unwrap();
            assert_eq!(parse(&format(parsed)).unwrap(), parsed, "{text}");
        }
        assert_eq!(format(Duration::from_millis(90_250)), "1m30s250ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_micros(12_700)), "12ms");
        assert_eq!(human(Duration::from_millis(3_240)), "3.2s");
    }
}
