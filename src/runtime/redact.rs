//! The one place that knows how to keep secrets out of logs, errors and termination messages.
//!
//! Secrets are held in [`Secret`], whose Debug and Display print `***`, so formatting a value
//! that carries one cannot leak it; URLs are shown through [`url`], which hides their password.

use std::fmt;

/// A password, token or other secret value. Only [`Secret::expose`] gives the value out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for sending to the server that needs it; never for formatting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL fit for logs: `scheme://user:***@host/path`, the password replaced when there is one.
/// Query strings are dropped too, since tokens travel there (`?token=`, `?password=`).
pub fn url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    } else if !shown.username().is_empty() {
        // A user name alone is where tokens travel (https://TOKEN@host/).
        let _ = shown.set_username("***");
    }
    if shown.query().is_some() {
        shown.set_query(Some("***"));
    }
    shown.set_fragment(None);
    shown.to_string()
}

/// `text` with the credentials of every URL in it replaced by `***`: for messages that quote
/// what was typed (an unexpected argument may be a URL with a password).
pub fn urls_in(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| match (word.find("://"), word.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &word[..scheme_end + 3], &word[at..])
            }
            _ => word.to_string(),
        })
        .collect()
}

/// True when a URL has an '@' after the start of its path or query: a password with an
/// unescaped '/', '?' or '#' in it, which would otherwise be read (and shown) as host, port or
/// database. The caller refuses such a URL without repeating it.
pub fn has_misplaced_userinfo(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    match rest.find(['/', '?', '#']) {
        Some(end) => rest[end..].contains('@'),
        None => false,
    }
}

/// The error for such a URL.
pub fn misplaced_userinfo_error(what: &str) -> anyhow::Error {
    crate::runtime::exit::usage(format!(
        "invalid {what}: it has an '@' after its host; percent-encode '/', '?', '#' and '@' in the \
         user name and password (as %2F, %3F, %23, %40)"
    ))
}

/// A URL given as text, for an error about it: parsed and redacted when possible, otherwise
/// only its scheme and host are kept (anything after them may hold a password).
pub fn url_text(text: &str) -> String {
    if let Ok(parsed) = url::Url::parse(text) {
        return url(&parsed);
    }
    match text.split_once('@') {
        Some((_, after)) => format!("***@{after}"),
        None => text.to_string(),
    }
}

/// Reads a mounted secret file (a Kubernetes Secret volume), dropping one trailing newline as
/// `kubectl create secret --from-file` and editors tend to add it. An unreadable file is a
/// configuration error that names the file, never its content.
pub fn read_secret_file(path: &std::path::Path, what: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        crate::runtime::exit::usage(format!(
            "cannot read {what} file {}: {error}",
            path.display()
        ))
    })?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?} {:?}", Some(&secret)),
            "*** *** Some(***)"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn urls_hide_passwords_and_queries() {
        let parsed =
            url::Url::parse("https://app:s3cret@example.com:8443/health?token=abc#x").unwrap();
        assert_eq!(url(&parsed), "https://app:***@example.com:8443/health?***");
        let plain = url::Url::parse("http://example.com/").unwrap();
        assert_eq!(url(&plain), "http://example.com/");
    }

    #[test]
    fn urls_in_text_lose_their_credentials() {
        assert_eq!(
            urls_in("unexpected argument 'postgres://app:S3CRET@db/app' found"),
            "unexpected argument 'postgres://***@db/app' found"
        );
        assert_eq!(urls_in("plain words, no url"), "plain words, no url");
        let token = url::Url::parse("http://TOKEN123@host/x").unwrap();
        assert_eq!(url(&token), "http://***@host/x");
    }

    #[test]
    fn an_at_sign_after_the_host_is_caught() {
        assert!(has_misplaced_userinfo(
            "postgres://app:12345/xyzSECRET@127.0.0.1:1/app"
        ));
        assert!(has_misplaced_userinfo("redis://u:123/secretpart@h/0"));
        assert!(!has_misplaced_userinfo("postgres://app:p%2Fw@db/app"));
        assert!(!has_misplaced_userinfo("postgres://db/app"));
    }

    #[test]
    fn secret_files_lose_one_trailing_newline_and_errors_name_only_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "pa ss\n\n").unwrap();
        assert_eq!(
            read_secret_file(&path, "password").unwrap().expose(),
            "pa ss\n"
        );
        let error = read_secret_file(&dir.path().join("missing"), "password").unwrap_err();
        assert!(error.to_string().contains("missing"));
    }
}
