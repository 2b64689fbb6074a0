//! RFC 3339 timestamps in UTC, for log lines and Kubernetes Events, without a date library for
//! one format.

use std::time::{SystemTime, UNIX_EPOCH};

/// How much of the second is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2026-11-29T22:30:05Z`, as Event timestamps are.
    Seconds,
    /// `2026-11-21T23:00:00.123Z`, as log lines are.
    Millis,
}

/// `at` in UTC; a time before 1970 is written as 1970's first second.
pub fn rfc3339(at: SystemTime, precision: Precision) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's days-to-civil algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let time = format!("{:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60);
    match precision {
        Precision::Seconds => format!("{year:04}-{month:02}-{day:02}T{time}Z"),
        Precision::Millis => format!(
            "{year:04}-{month:02}-{day:02}T{time}.{:03}Z",
            since_epoch.subsec_millis()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_times_are_utc_to_the_second_or_millisecond() {
        let after_epoch =
            |secs, millis| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        for (at, precision, expected) in [
            (
                after_epoch(0, 0),
                Precision::Millis,
                "1970-01-01T00:00:00.000Z",
            ),
            // A leap day, from its first millisecond to its last second.
            (
                after_epoch(951_782_400, 7),
                Precision::Millis,
                "2000-02-29T00:00:00.007Z",
            ),
            (
                after_epoch(951_868_799, 0),
                Precision::Seconds,
                "2000-02-29T23:59:59Z",
            ),
            (
                after_epoch(1_795_302_000, 123),
                Precision::Millis,
                "2026-11-21T23:00:00.123Z",
            ),
            (
                after_epoch(1_795_991_405, 999),
                Precision::Seconds,
                "2026-11-29T22:30:05Z",
            ),
            (
                UNIX_EPOCH - Duration::from_secs(1),
                Precision::Seconds,
                "1970-01-01T00:00:00Z",
            ),
        ] {
            assert_eq!(rfc3339(at, precision), expected);
        }
    }
}
