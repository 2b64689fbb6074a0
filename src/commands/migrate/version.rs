//! Migration versions that compare as numbers, whatever the tool's spelling: unpadded integers
//! (`1_`, `2_`, `10_`), 14-digit timestamps, and Flyway's dotted versions (2 < 2.1 < 10 < 17.1).

use std::cmp::Ordering;
use std::fmt;

/// A version as written in a file name (`007`, `20260101120000`, `2.1`), compared by its
/// numeric parts.
#[derive(Debug, Clone)]
pub struct Version {
    /// The text as the tool records it in its ledger.
    pub text: String,
    /// Numeric parts with trailing zero parts removed, so that Flyway's `1.0` equals `1`.
    parts: Vec<u128>,
}

impl Version {
    /// Digits, optionally separated by `.` (or by `_`, Flyway's other spelling, which becomes `.`
    /// in the text as Flyway records it). None for anything else, or a part too long to be a
    /// number.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.replace('_', ".");
        let mut parts = Vec::new();
        for part in text.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 38 {
                return None;
            }
            parts.push(part.parse::<u128>().ok()?);
        }
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(Version { text, parts })
    }

    /// The version as a signed 64-bit number, as golang-migrate, goose, sqlx and initbox record
    /// it; None for dotted versions or numbers beyond i64.
    pub fn as_i64(&self) -> Option<i64> {
        match self.parts.as_slice() {
            [single] if !self.text.contains('.') => i64::try_from(*single).ok(),
            _ => None,
        }
    }

    /// The canonical text, without leading zeros: what two spellings of one version share.
    pub fn canonical(&self) -> String {
        self.parts
            .iter()
            .map(u128::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_compare_as_numbers() {
        let mut versions: Vec<Version> = ["17.1", "10", "2.1", "2", "1", "20260101120000", "010"]
            .iter()
            .map(|text| v(text))
            .collect();
        versions.sort();
        let texts: Vec<&str> = versions
            .iter()
            .map(|version| version.text.as_str())
            .collect();
        assert_eq!(
            texts,
            ["1", "2", "2.1", "10", "010", "17.1", "20260101120000"]
        );
        assert_eq!(v("001"), v("1"));
        assert_eq!(v("1.0"), v("1"));
        assert!(v("1.0.1") > v("1"));
        assert_eq!(v("2_1").text, "2.1");
        assert_eq!(v("0042").canonical(), "42");
        assert_eq!(v("0042").as_i64(), Some(42));
        assert_eq!(v("2.1").as_i64(), None);
        assert_eq!(v("99999999999999999999").as_i64(), None);
        for bad in ["", "a", "1.", ".1", "1..2", "1a", "-1", "1 2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }
}
