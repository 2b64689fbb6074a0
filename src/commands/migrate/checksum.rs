//! The checksums and hash-derived numbers the migration tools record or compute, each exactly as
//! its tool does: initbox's SHA-256, sqlx's SHA-384, Flyway's CRC32 over lines, and the CRC32
//! behind golang-migrate's and sqlx's advisory lock keys.

use std::fmt::Write as _;

use sha2::{Digest, Sha256, Sha384};

/// SHA-256 in hex: initbox's own checksum (over the BOM-less, LF-only text).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-384 of the file as sqlx reads it: its `checksum` column (bytea).
pub fn sha384(bytes: &[u8]) -> Vec<u8> {
    Sha384::digest(bytes).to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// Flyway's checksum: a CRC32 updated with each line of the file without its line break (a
/// BufferedReader's lines, so `\n`, `\r\n` and a lone `\r` all end a line), the first line
/// without a BOM, stored as a signed 32-bit integer. Updating with each line in turn is the
/// CRC32 of the lines joined, that is of the text with every `\r` and `\n` removed.
pub fn flyway(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = Crc32::new();
    for piece in text.split(['\r', '\n']) {
        crc.update(piece.as_bytes());
    }
    crc.finish() as i32
}

/// CRC-32/ISO-HDLC, the IEEE polynomial that Go's `crc32.ChecksumIEEE`, Java's `CRC32` and
/// the `crc` crate's `CRC_32_ISO_HDLC` compute.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.finish()
}

struct Crc32(u32);

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xffff_ffff)
    }

    fn update(&mut self, bytes: &[u8]) {
        // Bitwise rather than table-driven: these inputs are a few kilobytes at most, and a
        // table would be 1 KiB of the binary for no measurable gain.
        for &byte in bytes {
            self.0 ^= u32::from(byte);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (0xedb8_8320 & mask);
            }
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn flyway_checksums_ignore_line_breaks_and_bom() {
        let unix = flyway("CREATE TABLE a (id int);\nSELECT 1;\n");
        assert_eq!(
            unix,
            flyway("\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n")
        );
        assert_eq!(unix, flyway("CREATE TABLE a (id int);\rSELECT 1;"));
        assert_eq!(unix, crc32(b"CREATE TABLE a (id int);SELECT 1;") as i32);
        assert_ne!(unix, flyway("CREATE TABLE a (id int); SELECT 1;"));
    }

    #[test]
    fn digests_have_their_lengths() {
        assert_eq!(sha384(b"").len(), 48);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
