//! The HTTP client, built one way for every subcommand that speaks HTTP: rustls with the roots
//! and verification asked for, initbox's user agent, and a warning when verification is off.

pub mod ready;

use std::path::PathBuf;

use reqwest::Client;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::redirect::Policy;

use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::logging::{self, Level};
use crate::text::error_text;

/// How the server's certificate is trusted.
pub struct Trust<'a> {
    /// A CA file (`--cacert`, `VAULT_CACERT`) instead of the system bundle.
    pub cacert: Option<&'a PathBuf>,
    /// The flag that turned verification off (`--insecure`, `VAULT_SKIP_VERIFY`), if one did;
    /// it is named in the warning.
    pub unverified_by: Option<&'a str>,
}

pub fn client(trust: Trust, redirects: Policy, keep_alive: bool) -> anyhow::Result<Client> {
    build(trust, redirects, keep_alive, false)
}

/// As [`client`] with connections kept, and HTTP/2 offered to https servers next to HTTP/1.1
/// (ALPN): for downloads, where a server that prefers HTTP/2 gets it.
pub fn client_with_http2(trust: Trust, redirects: Policy) -> anyhow::Result<Client> {
    build(trust, redirects, true, true)
}

fn build(trust: Trust, redirects: Policy, keep_alive: bool, http2: bool) -> anyhow::Result<Client> {
    let verify = match trust.unverified_by {
        Some(flag) => {
            logging::emit(
                Level::Warn,
                &format!("{flag}: server certificates are not verified"),
                &[("event", "insecure".into())],
            );
            Verify::Nothing
        }
        None => Verify::Full,
    };
    let roots = trust.cacert.cloned().map_or(Roots::System, Roots::File);
    let mut tls = std::sync::Arc::unwrap_or_clone(tls::client_config(&roots, verify)?);
    if http2 {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let mut builder = Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(redirects)
        .user_agent(concat!("initbox/", env!("CARGO_PKG_VERSION")));
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder
        .build()
        .map_err(|error| anyhow::anyhow!("setting up the HTTP client: {error}"))
}

/// A request header from its name and value, the value marked sensitive so that it is never
/// printed. Errors name the header, never the value (it may be a token).
pub fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("invalid header name '{}'", name.trim()))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("invalid value for header '{name}'"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// The server's Retry-After in seconds (the HTTP-date form is rare for 429 and 503), capped at
/// five minutes so that a server cannot park a pod for hours.
pub fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(std::time::Duration::from_secs(seconds.min(300)))
}

/// A request's failure in a few words, with its root cause and without its URL (which may
/// hold credentials; the caller names the target): "cannot connect: Connection refused".
pub fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_redirect() {
        "too many redirects"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // Only the causes are read: the error's own text is the one that carries the URL.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(error_text::without_os_codes(&cause.to_string()));
        source = cause.source();
    }
    causes.dedup();
    match causes.last() {
        // "too many redirects: too many redirects" says it twice.
        Some(root) if root.to_lowercase().contains(kind) => root.clone(),
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_string(),
    }
}
