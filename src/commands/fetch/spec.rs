//! What to fetch, from the command line: `URL DEST` and `--file URL=DEST`, the expected SHA-256
//! (`--sha256 HEX` or `URL#sha256=HEX`), sizes for `--max-size`, and request headers.

use std::path::PathBuf;

use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use crate::fs::extract::Format;
use crate::probe::http;
use crate::runtime::exit;
use crate::runtime::redact;

/// One download.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Without its `#sha256=` fragment.
    pub url: Url,
    pub dest: PathBuf,
    pub sha256: Option<[u8; 32]>,
}

/// `--file URL=DEST`. The URL may hold `=` (a query string), DEST may not: the last `=` splits.
pub fn parse_file(text: &str) -> anyhow::Result<FileSpec> {
    let Some((url, dest)) = text
        .rsplit_once('=')
        .filter(|(url, dest)| !url.is_empty() && !dest.is_empty())
    else {
        return Err(exit::usage(format!(
            "invalid --file '{}': expected URL=DEST",
            redact::urls_in(text)
        )));
    };
    spec(url, PathBuf::from(dest))
}

/// A URL and its destination.
pub fn spec(url: &str, dest: PathBuf) -> anyhow::Result<FileSpec> {
    let (url, sha256) = parse_url(url)?;
    if dest.as_os_str().is_empty() || dest.file_name().is_none() {
        return Err(exit::usage(format!(
            "invalid destination '{}': expected a file path",
            dest.display()
        )));
    }
    Ok(FileSpec { url, dest, sha256 })
}

/// An http(s) URL with a host, and the SHA-256 its `#sha256=HEX` fragment names.
pub fn parse_url(text: &str) -> anyhow::Result<(Url, Option<[u8; 32]>)> {
    if redact::has_misplaced_userinfo(text) {
        return Err(redact::misplaced_userinfo_error("URL"));
    }
    let mut url = Url::parse(text).map_err(|error| {
        exit::usage(format!("invalid URL '{}': {error}", redact::url_text(text)))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(exit::usage(format!(
            "invalid URL '{}': expected http:// or https:// and a host",
            redact::url(&url)
        )));
    }
    let sha256 = match url.fragment() {
        None => None,
        Some(fragment) => match fragment.split_once('=') {
            Some((algorithm, hex)) if algorithm.eq_ignore_ascii_case("sha256") => Some(
                parse_sha256(hex)
                    .map_err(|error| exit::usage(format!("{}: {error}", redact::url(&url))))?,
            ),
            _ => {
                return Err(exit::usage(format!(
                    "{}: unsupported URL fragment '#{fragment}': only #sha256=HEX is understood",
                    redact::url(&url)
                )));
            }
        },
    };
    url.set_fragment(None);
    Ok((url, sha256))
}

/// 64 hex digits.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let invalid = || format!("invalid SHA-256 '{text}': expected 64 hex digits");
    if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| invalid())?;
    }
    Ok(digest)
}

/// A size in bytes: `1048576`, or with a unit as Kubernetes writes quantities: `Ki`, `Mi`,
/// `Gi`, `Ti` (powers of 1024, also `KiB`...) and `k`, `M`, `G`, `T` (powers of 1000, also `KB`...).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size '{text}': expected bytes, or a number with Ki, Mi, Gi, Ti, k, M, G or T"
        )
    };
    let digits = text.trim().bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.trim().split_at(digits);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

/// `--extract`: a format, or `auto` (by the URL's extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extract {
    Auto,
    Format(Format),
}

pub fn parse_extract(text: &str) -> Result<Extract, String> {
    match text {
        "auto" => Ok(Extract::Auto),
        _ => Format::parse(text).map(Extract::Format).ok_or_else(|| {
            format!("invalid archive format '{text}': expected tar, tar.gz, zip or auto")
        }),
    }
}

/// `--header 'Name: value'`.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "invalid header: expected \"Name: value\"".to_string())?;
    http::header(name, value)
}

/// `--header-file NAME=PATH`: the value is the file's content (one trailing newline dropped),
/// read when the run starts. The file is named in errors, its content never.
pub fn read_header_file(text: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, path) = text.split_once('=').ok_or_else(|| {
        exit::usage(format!(
            "invalid --header-file '{text}': expected NAME=PATH"
        ))
    })?;
    let value = redact::read_secret_file(std::path::Path::new(path), &format!("header {name}"))?;
    http::header(name, value.expose()).map_err(exit::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn urls_carry_their_hash_in_the_fragment() {
        let (url, sha) = parse_url(&format!("https://h/m.bin?v=1#sha256={DIGEST}")).unwrap();
        assert_eq!(url.as_str(), "https://h/m.bin?v=1");
        assert_eq!(sha.unwrap()[0], 0x9f);
        assert!(parse_url("https://h/m.bin#md5=abc").is_err());
        assert!(parse_url("https://h/m.bin#sha256=abc").is_err());
        assert!(parse_url("ftp://h/m.bin").is_err());
        assert!(parse_url("h/m.bin").is_err());
    }

    #[test]
    fn file_specs_split_at_the_last_equals_sign() {
        let spec = parse_file("https://h/get?id=7&t=x=/data/m.bin").unwrap();
        assert_eq!(spec.url.as_str(), "https://h/get?id=7&t=x");
        assert_eq!(spec.dest, PathBuf::from("/data/m.bin"));
        assert!(parse_file("https://h/m.bin").is_err());
        assert!(parse_file("=/data/x").is_err());
        let error = parse_file("https://u:secret@h/x").unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn sizes_take_kubernetes_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10Mi"), Ok(10 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        for bad in ["", "ten", "10 bytes", "-1", "1.5G", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_files_name_the_file_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "Bearer s3cret\n").unwrap();
        let (name, value) = read_header_file(&format!("Authorization={}", path.display())).unwrap();
        assert_eq!(name.as_str(), "authorization");
        assert_eq!(value.to_str().unwrap(), "Bearer s3cret");
        assert!(value.is_sensitive());
        let error = read_header_file("Authorization=/nonexistent/token").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/token"));
        std::fs::write(&path, "bad\u{7f}s3cret").unwrap();
        let error = read_header_file(&format!("X-Token={}", path.display())).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
