//! The HTTP client, built one way for every subcommand that speaks HTTP: rustls with the roots
//! and verification asked for, initbox's user agent, and a warning when verification is off.

pub mod ready;

use std::path::PathBuf;

use reqwest::Client;
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
    let tls = std::sync::Arc::unwrap_or_clone(tls::client_config(&roots, verify)?);
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
