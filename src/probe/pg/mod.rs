//! PostgreSQL connections as libpq users know them: a postgres:// URL or key=value conninfo, the
//! PG* variables, sslmode with libpq's meanings (over rustls), a password file, and a redacted
//! form for logs. Shared by every subcommand that talks to PostgreSQL.

mod conninfo;
pub mod ready;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::redact::{self, Secret};
use crate::runtime::retry::AttemptError;

pub use conninfo::Params;

/// The connection options every PostgreSQL subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// postgres:// URL or key=value conninfo. Without it, the libpq variables PGHOST, PGPORT,
    /// PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGCONNECT_TIMEOUT are used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,

    /// Read the password from this file (a mounted Secret); wins over the URL and PGPASSWORD.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// sslmode, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// libpq tries plain text first, then TLS; here both orders reach the same server, so it
    /// behaves as prefer.
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> anyhow::Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(exit::usage(format!(
                    "unknown sslmode '{other}': expected disable, allow, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }
}

/// Where and how to connect, parsed and checked once before any attempt.
pub struct PgTarget {
    hosts: Vec<String>,
    ports: Vec<u16>,
    user: String,
    password: Option<Secret>,
    dbname: String,
    sslmode: SslMode,
    connect_timeout: Option<Duration>,
    application_name: Option<String>,
    options: Option<String>,
    tls: Option<MakeRustlsConnect>,
    shown: String,
}

impl PgTarget {
    /// Builds the target from the flags and the process environment.
    pub fn from_args(args: &PgArgs) -> anyhow::Result<PgTarget> {
        PgTarget::from_parts(args, |name| std::env::var(name).ok())
    }

    /// libpq's order: the PG* variables, then the URL or conninfo over them, then
    /// --password-file over both.
    pub fn from_parts(
        args: &PgArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<PgTarget> {
        let mut params = Params::from_env(env);
        if let Some(url) = &args.url {
            params.overlay(Params::parse(url)?);
        }
        for unknown in params.unknown_keys() {
            logging::emit(
                Level::Warn,
                &format!("ignoring connection option '{unknown}', which initbox does not use"),
                &[],
            );
        }
        let mut password = params.get("password").map(Secret::new);
        if let Some(path) = &args.password_file {
            password = Some(redact::read_secret_file(path, "password")?);
        }
        let hosts: Vec<String> = params
            .get("host")
            .unwrap_or("localhost")
            .split(',')
            .map(str::to_string)
            .collect();
        if hosts.iter().any(String::is_empty) {
            return Err(exit::usage("empty host in the connection settings"));
        }
        let ports = params
            .get("port")
            .unwrap_or("5432")
            .split(',')
            .map(|port| {
                crate::probe::target::parse_port(port)
                    .map_err(|why| exit::usage(format!("invalid connection port: {why}")))
            })
            .collect::<anyhow::Result<Vec<u16>>>()?;
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(exit::usage(format!(
                "{} hosts but {} ports: give one port, or one per host",
                hosts.len(),
                ports.len()
            )));
        }
        let user = params.get("user").unwrap_or("postgres").to_string();
        let dbname = params.get("dbname").unwrap_or(&user).to_string();
        let sslmode = SslMode::parse(params.get("sslmode").unwrap_or("prefer"))?;
        let connect_timeout = match params.get("connect_timeout") {
            None => None,
            Some(text) => match text.trim().parse::<u64>() {
                // libpq: zero or negative means wait indefinitely.
                Ok(0) => None,
                Ok(seconds) => Some(Duration::from_secs(seconds.max(2))),
                Err(_) => {
                    return Err(exit::usage(format!(
                        "invalid connect_timeout '{text}': expected a number of seconds"
                    )));
                }
            },
        };
        let roots = match params.get("sslrootcert") {
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(path.into()),
        };
        let verify = match sslmode {
            SslMode::Disable => None,
            SslMode::Allow | SslMode::Prefer => Some(Verify::Nothing),
            // libpq: with a root certificate given, require verifies like verify-ca.
            SslMode::Require if matches!(roots, Roots::File(_)) => Some(Verify::CaOnly),
            SslMode::Require => Some(Verify::Nothing),
            SslMode::VerifyCa => Some(Verify::CaOnly),
            SslMode::VerifyFull => Some(Verify::Full),
        };
        let tls = match verify {
            None => None,
            Some(verify) => {
                let config = tls::client_config(&roots, verify)?;
                Some(MakeRustlsConnect::new(Arc::unwrap_or_clone(config)))
            }
        };
        let shown = show(&hosts, &ports, &user, password.is_some(), &dbname);
        Ok(PgTarget {
            hosts,
            ports,
            user,
            password,
            dbname,
            sslmode,
            connect_timeout,
            application_name: params.get("application_name").map(str::to_string),
            options: params.get("options").map(str::to_string),
            tls,
            shown,
        })
    }

    /// `postgres://app:***@db:5432/app`: the form used in every log line and error.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Connects and authenticates within `timeout` (or the connect_timeout setting, if shorter).
    /// The connection is driven on a task of its own and closes when the client is dropped.
    pub async fn connect(
        &self,
        application_name: &str,
        timeout: Duration,
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        for host in &self.hosts {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
        for port in &self.ports {
            config.port(*port);
        }
        config
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(self.application_name.as_deref().unwrap_or(application_name))
            .connect_timeout(
                self.connect_timeout
                    .map_or(timeout, |limit| limit.min(timeout)),
            )
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        let (client, connection) = match &self.tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                (client, tokio::spawn(connection))
            }
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                (client, tokio::spawn(connection))
            }
        };
        // The task ends by itself when the client is dropped; nothing waits for it.
        drop(connection);
        Ok(client)
    }
}

impl PgTarget {
    /// Asks the server to cancel the statement running on `token`'s connection, so that it
    /// rolls back now rather than when it notices the client is gone. Best effort.
    pub async fn cancel(&self, token: &tokio_postgres::CancelToken) {
        let _ = match &self.tls {
            Some(tls) => token.cancel_query(tls.clone()).await,
            None => token.cancel_query(NoTls).await,
        };
    }
}

fn show(hosts: &[String], ports: &[u16], user: &str, has_password: bool, dbname: &str) -> String {
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect();
    let password = if has_password { ":***" } else { "" };
    format!("postgres://{user}{password}@{}/{dbname}", hosts.join(","))
}

/// The server's own words: `FATAL 57P03: the database system is starting up`, with the
/// position for errors in a query; otherwise the client's error and its cause.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
            text.push_str(&format!(" (at character {position})"));
        }
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    crate::text::error_text::without_os_codes(&text)
}

/// A failed connection attempt, classified: all are worth retrying (starting up, too many
/// clients, refused, reset), except, with --fail-fast, a rejected password or user or a missing
/// database. Those are retried by default because an operator may be creating them right now.
pub fn connect_failure(error: &tokio_postgres::Error, fail_fast: bool) -> AttemptError {
    let text = anyhow::anyhow!(describe(error));
    let needs_operator = [
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INVALID_CATALOG_NAME,
    ];
    match error.code() {
        Some(code) if fail_fast && needs_operator.contains(code) => AttemptError::permanent(text),
        _ => AttemptError::transient(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn target(url: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<PgTarget> {
        let args = PgArgs {
            url: url.map(str::to_string),
            password_file: None,
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PgTarget::from_parts(&args, |name| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        let pg = target(Some("postgres://app:s3cret@db:5432/app"), &[]).unwrap();
        assert_eq!(pg.shown(), "postgres://app:***@db:5432/app");
        let pg = target(
            Some("host=db port=6432 user=app password='it\\'s' dbname=x sslmode=disable"),
            &[],
        );
        assert_eq!(pg.unwrap().shown(), "postgres://app:***@db:6432/x");
    }

    #[test]
    fn libpq_variables_fill_in_and_the_url_wins() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "pw"),
            ("PGSSLMODE", "disable"),
        ];
        let pg = target(None, &env).unwrap();
        assert_eq!(pg.shown(), "postgres://envuser:***@envhost:5432/envuser");
        let pg = target(Some("postgresql://urluser@urlhost/db"), &env).unwrap();
        assert_eq!(pg.shown(), "postgres://urluser:***@urlhost:5432/db");
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        for (url, named) in [
            ("postgres://db/app?sslmode=bogus", "'bogus'"),
            ("postgres://db:99999/app", "99999"),
            ("host=db connect_timeout=soon", "'soon'"),
            ("host=a,b port=1,2,3", "2 hosts but 3 ports"),
            (
                "postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent.pem",
                "/nonexistent.pem",
            ),
            ("mysql://db/app", "postgres://"),
        ] {
            let error = target(Some(url), &[])
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert_eq!(Exit::of(&error), Exit::Usage, "{url}");
            assert!(format!("{error:#}").contains(named), "{url}: {error:#}");
        }
    }
}
