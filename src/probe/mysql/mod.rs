//! mysql://, mariadb:// and wait-mysql: ready when the server accepts a login and answers
//! `SELECT 1` (optionally: it is not read-only). Errors are shown in the server's own words with
//! their codes, as the mysql client prints them.

mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::exit;
use crate::runtime::redact::{self, Secret};
use crate::runtime::retry::AttemptError;
use crate::text::error_text;
use wire::{AuthStep, Failure, Packets};

/// Server errors an operator (or another init container) may be about to fix: access denied
/// (1045), no access to the database (1044), host not allowed (1130), a user that must log in
/// by socket (1698), unknown database (1049). Retried unless `fail_fast`.
const NEEDS_OPERATOR: &[u16] = &[1044, 1045, 1049, 1130, 1698];

/// When the server counts as ready: wait-mysql's flags, and a mysql:// URI's parameters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MysqlOptions {
    /// Read the password from this file (a mounted Secret); wins over the URL's.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Ready only on a server that accepts writes (read_only is OFF).
    #[arg(long)]
    pub read_write: bool,

    /// Exit 1 at once on access denied (1045, 1044, 1130, 1698) or an unknown database (1049),
    /// instead of retrying them until the deadline.
    #[arg(long)]
    pub fail_fast: bool,
}

/// The parameters of a mysql:// URI: TLS settings named as the mysql client's options, then
/// the flags of wait-mysql.
pub const PARAMS: &[&str] = &[
    "ssl-mode",
    "ssl-ca",
    "password_file",
    "read_write",
    "fail_fast",
];

/// The mysql client's --ssl-mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disabled,
    /// TLS when the server offers it, certificate not checked (the default).
    Preferred,
    /// TLS, certificate not checked unless a CA is given (then as VerifyCa).
    Required,
    VerifyCa,
    VerifyIdentity,
}

fn parse_ssl_mode(text: &str) -> Result<SslMode, String> {
    Ok(match text.to_ascii_uppercase().replace('-', "_").as_str() {
        "DISABLED" => SslMode::Disabled,
        "PREFERRED" => SslMode::Preferred,
        "REQUIRED" => SslMode::Required,
        "VERIFY_CA" => SslMode::VerifyCa,
        "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
        _ => {
            return Err(format!(
                "'{text}': expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
            ));
        }
    })
}

pub struct MysqlProbe {
    host: String,
    port: u16,
    user: String,
    password: Option<Secret>,
    database: Option<String>,
    ssl_mode: SslMode,
    tls: Option<TlsConnector>,
    read_write: bool,
    fail_fast: bool,
    shown: String,
}

impl MysqlProbe {
    /// A URL as typed (wait-mysql's --url, a URI of `initbox wait`): parameters initbox does
    /// not use are ignored with a warning, since URLs are often shared with other clients.
    pub fn parse(text: &str, flags: MysqlOptions) -> anyhow::Result<MysqlProbe> {
        if redact::has_misplaced_userinfo(text) {
            return Err(redact::misplaced_userinfo_error("MySQL URL"));
        }
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let url = url::Url::parse(base)
            .map_err(|error| exit::usage(format!("invalid MySQL URL: {error}")))?;
        let mut query = Query::new(&redact::url(&url), query);
        let probe = MysqlProbe::from_url(&url, &mut query, flags)?;
        query.ignore_rest();
        Ok(probe)
    }

    /// `mysql://[user[:password]@]host[:port][/database]` (or `mariadb://`). Its parameters come
    /// from `query` and, for wait-mysql, from `flags`; either may turn a switch on, and a
    /// --password-file flag wins. Errors never repeat the password.
    fn from_url(
        url: &url::Url,
        query: &mut Query,
        flags: MysqlOptions,
    ) -> anyhow::Result<MysqlProbe> {
        let scheme = url.scheme();
        if !matches!(scheme, "mysql" | "mariadb") {
            return Err(exit::usage(format!(
                "invalid MySQL URL: scheme '{scheme}', expected mysql:// or mariadb://"
            )));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) if !host.to_string().is_empty() => host.to_string(),
            _ => return Err(exit::usage("invalid MySQL URL: no host")),
        };
        let port = url.port().unwrap_or(3306);
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(String::from)
                .map_err(|_| {
                    exit::usage("invalid MySQL URL: user, password or database is not UTF-8")
                })
        };
        let user = Some(decode(url.username())?)
            .filter(|user| !user.is_empty())
            .unwrap_or_else(|| "root".into());
        let database = Some(decode(url.path().trim_start_matches('/'))?)
            .filter(|database| !database.is_empty());
        let ssl_mode = query
            .parse(&["ssl-mode"], parse_ssl_mode)?
            .unwrap_or(SslMode::Preferred);
        let ca = query.path(&["ssl-ca"])?;
        let password_file = flags.password_file.or(query.path(&["password_file"])?);
        let read_write = query.flag(&["read_write"])? || flags.read_write;
        let fail_fast = query.flag(&["fail_fast"])? || flags.fail_fast;
        let mut password = url.password().map(decode).transpose()?.map(Secret::new);
        if let Some(path) = &password_file {
            password = Some(redact::read_secret_file(path, "password")?);
        }
        let verify = match ssl_mode {
            SslMode::Disabled => None,
            SslMode::Preferred => Some(Verify::Nothing),
            SslMode::Required if ca.is_some() => Some(Verify::CaOnly),
            SslMode::Required => Some(Verify::Nothing),
            SslMode::VerifyCa => Some(Verify::CaOnly),
            SslMode::VerifyIdentity => Some(Verify::Full),
        };
        let tls = match verify {
            None => None,
            Some(verify) => {
                let roots = ca.map_or(Roots::System, Roots::File);
                Some(TlsConnector::from(Arc::clone(&tls::client_config(
                    &roots, verify,
                )?)))
            }
        };
        let shown = {
            let hidden = if password.is_some() { ":***" } else { "" };
            let address = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let database = database.as_deref().unwrap_or_default();
            format!("{scheme}://{user}{hidden}@{address}/{database}")
        };
        Ok(MysqlProbe {
            host,
            port,
            user,
            password,
            database,
            ssl_mode,
            tls,
            read_write,
            fail_fast,
            shown,
        })
    }

    /// One attempt: connect, read the greeting, switch to TLS if asked, log in, ask.
    async fn attempt(&self) -> Result<(), AttemptError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| AttemptError::transient(anyhow!(error_text::io(&error))))?;
        let _ = tcp.set_nodelay(true);
        let mut packets = Packets::new(tcp);
        let greeting = wire::read_greeting(&mut packets)
            .await
            .map_err(|failure| self.classify(failure))?;
        let offered = wire::server_offers_tls(&greeting);
        let connector = match (&self.tls, offered, self.ssl_mode) {
            (Some(connector), true, _) => Some(connector),
            (_, false, SslMode::Preferred | SslMode::Disabled) | (None, _, _) => None,
            (Some(_), false, _) => {
                return Err(AttemptError::transient(anyhow!(
                    "the server ({}) does not offer TLS, which ssl-mode requires",
                    greeting.version
                )));
            }
        };
        let answer = match connector {
            None => {
                let capabilities =
                    wire::client_capabilities(&greeting, self.database.is_some(), false);
                self.converse(packets, &greeting, capabilities, false).await
            }
            Some(connector) => {
                let capabilities =
                    wire::client_capabilities(&greeting, self.database.is_some(), true);
                packets
                    .write(&wire::ssl_request(capabilities))
                    .await
                    .map_err(|failure| self.classify(failure))?;
                let (tcp, sequence) = packets.into_parts();
                let name = ServerName::try_from(self.host.clone()).map_err(|error| {
                    AttemptError::permanent(anyhow!("invalid TLS server name: {error}"))
                })?;
                let stream = connector.connect(name, tcp).await.map_err(|error| {
                    AttemptError::transient(anyhow!("TLS: {}", error_text::io(&error)))
                })?;
                let packets = Packets::resume(stream, sequence);
                self.converse(packets, &greeting, capabilities, true).await
            }
        };
        let value = answer.map_err(|failure| self.classify(failure))?;
        if self.read_write && value.as_deref() != Some("0") {
            return Err(AttemptError::transient(anyhow!(
                "the server is read-only (read_only is ON)"
            )));
        }
        Ok(())
    }

    /// Logs in and asks the readiness question; returns its one value.
    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut packets: Packets<S>,
        greeting: &wire::Greeting,
        capabilities: u32,
        secure: bool,
    ) -> Result<Option<String>, Failure> {
        let password = self.password.as_ref().map_or("", Secret::expose);
        // An unknown default plugin: start with the classic one; the server switches if needed.
        let mut plugin = match greeting.plugin.as_str() {
            known @ ("mysql_native_password" | "caching_sha2_password") => known.to_string(),
            _ => "mysql_native_password".to_string(),
        };
        let first = wire::scramble_password(&plugin, password, &greeting.scramble)?;
        packets
            .write(&wire::login(
                capabilities,
                &self.user,
                &first,
                self.database.as_deref(),
                &plugin,
            ))
            .await?;
        loop {
            let packet = packets.read().await?;
            match wire::auth_step(&packet)? {
                AuthStep::Done => break,
                AuthStep::Switch {
                    plugin: asked,
                    scramble,
                } => {
                    if asked == "mysql_clear_password" && !secure {
                        return Err(Failure::Unsupported(
                            "the server asks for the password in clear text, which initbox \
                             sends over TLS only (ssl-mode=REQUIRED)"
                                .into(),
                        ));
                    }
                    plugin = asked;
                    packets
                        .write(&wire::scramble_password(&plugin, password, &scramble)?)
                        .await?;
                }
                // caching_sha2_password: 3 is "fast login done, OK follows"; 4 asks for the
                // password itself, which is safe to send over TLS only.
                AuthStep::More(data) if plugin == "caching_sha2_password" => match data.first() {
                    Some(3) => {}
                    Some(4) if secure => {
                        let mut clear = password.as_bytes().to_vec();
                        clear.push(0);
                        packets.write(&clear).await?;
                    }
                    Some(4) => {
                        return Err(Failure::Unsupported(
                            "caching_sha2_password wants a full login (this user has not \
                                 logged in since the server started), which initbox does over \
                                 TLS only: use a server with TLS (ssl-mode=PREFERRED, the \
                                 default, uses it) or mysql_native_password"
                                .into(),
                        ));
                    }
                    _ => return Err(Failure::Protocol("unexpected login step".into())),
                },
                AuthStep::More(_) => {
                    return Err(Failure::Protocol(format!(
                        "unexpected login data for {plugin}"
                    )));
                }
            }
        }
        let sql = if self.read_write {
            "SELECT @@global.read_only"
        } else {
            "SELECT 1"
        };
        let value = wire::query_first_value(&mut packets, capabilities, sql).await?;
        packets.quit().await;
        Ok(value)
    }

    fn classify(&self, failure: Failure) -> AttemptError {
        match failure {
            Failure::Server(error) if self.fail_fast && NEEDS_OPERATOR.contains(&error.code) => {
                AttemptError::permanent(anyhow!(error.to_string()))
            }
            Failure::Server(error) => AttemptError::transient(anyhow!(error.to_string())),
            Failure::Io(error) => AttemptError::transient(anyhow!(error_text::io(&error))),
            Failure::Protocol(why) => AttemptError::transient(anyhow!("{why}")),
            Failure::Unsupported(why) => AttemptError::permanent(anyhow!("{why}")),
        }
    }
}

impl Probe for MysqlProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(self.attempt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn probe(text: &str) -> anyhow::Result<MysqlProbe> {
        MysqlProbe::parse(text, MysqlOptions::default())
    }

    #[test]
    fn urls_are_read_and_shown_without_the_password() {
        let mysql =
            probe("mysql://app:p%40ss@db.ns:3307/shop?ssl-mode=disabled&read_write").unwrap();
        assert_eq!(mysql.shown(), "mysql://app:***@db.ns:3307/shop");
        assert_eq!(mysql.password.as_ref().unwrap().expose(), "p@ss");
        assert!(mysql.read_write && mysql.tls.is_none());
        let bare = probe("mariadb://[::1]").unwrap();
        assert_eq!(bare.shown(), "mariadb://root@[::1]:3306/");
        assert_eq!(bare.ssl_mode, SslMode::Preferred);
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for text in [
            "mysql:///db",
            "mysql://db/app?ssl-mode=maybe",
            "mysql://db/app?ssl-mode=verify_ca&ssl-ca=/nonexistent.pem",
            "mysql://db/app?password_file=/nonexistent",
        ] {
            let error = probe(text)
                .err()
                .unwrap_or_else(|| panic!("{text} accepted"));
            assert_eq!(Exit::of(&error), Exit::Usage, "{text}: {error:#}");
        }
    }
}
