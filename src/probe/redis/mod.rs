//! redis://, rediss:// and wait-redis: ready when Redis answers PING with PONG and has finished
//! loading its dataset (a loading server accepts connections but answers LOADING), optionally in
//! a given role.

pub mod resp;

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::Url;

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::exit;
use crate::runtime::redact::{self, Secret};
use crate::runtime::retry::AttemptError;
use crate::text::error_text;
use resp::{Connection, Reply};

/// How to connect and when the server counts as ready: wait-redis's flags, and a redis:// URI's
/// parameters.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisOptions {
    /// Read the password from this file (a mounted Secret); wins over the URL's.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// CA certificate (PEM) to verify a rediss:// server with, instead of the system bundle.
    #[arg(long, value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// Ready only in this role; a replica must also have its link to the master up.
    #[arg(long, value_parser = ["master", "replica"])]
    pub role: Option<String>,

    /// Ready only after N checks in a row pass (a replica can go PONG, LOADING, PONG).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub success_threshold: u32,

    /// Exit 1 at once when the server rejects the credentials (NOAUTH, WRONGPASS), instead of
    /// retrying until the deadline.
    #[arg(long)]
    pub fail_fast: bool,
}

/// The parameters of a redis:// URI.
pub const PARAMS: &[&str] = &[
    "password_file",
    "cacert",
    "role",
    "success_threshold",
    "fail_fast",
];

impl RedisOptions {
    pub fn from_query(query: &mut Query) -> anyhow::Result<RedisOptions> {
        Ok(RedisOptions {
            password_file: query.path(&["password_file"])?,
            cacert: query.path(&["cacert"])?,
            role: query.parse(&["role"], parse_role)?,
            success_threshold: query
                .parse(&["success_threshold"], parse_threshold)?
                .unwrap_or(1),
            fail_fast: query.flag(&["fail_fast"])?,
        })
    }
}

fn parse_role(text: &str) -> Result<String, String> {
    match text {
        "master" | "replica" => Ok(text.to_string()),
        _ => Err(format!("role '{text}': expected master or replica")),
    }
}

fn parse_threshold(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("'{text}' is not a number of checks (1 or more)")),
    }
}

/// Where and how to connect, checked once before any attempt.
struct RedisTarget {
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    user: Option<String>,
    password: Option<Secret>,
    db: u32,
    shown: String,
}

pub struct RedisProbe {
    target: RedisTarget,
    options: RedisOptions,
    /// Checks passed in a row, for --success-threshold.
    streak: Cell<u32>,
}

impl RedisProbe {
    /// Checks the URL and the options once, before any attempt. The URL's query is not used.
    pub fn new(url: &str, options: RedisOptions) -> anyhow::Result<RedisProbe> {
        Ok(RedisProbe {
            target: RedisTarget::parse(url, &options)?,
            options,
            streak: Cell::new(0),
        })
    }
}

impl Probe for RedisProbe {
    fn shown(&self) -> &str {
        &self.target.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(async move {
            let wanted = self.options.success_threshold;
            match check(&self.target, &self.options).await {
                Ok(()) if self.streak.get() + 1 >= wanted => Ok(()),
                Ok(()) => {
                    self.streak.set(self.streak.get() + 1);
                    Err(AttemptError::transient(anyhow!(
                        "{} of {wanted} checks in a row passed",
                        self.streak.get(),
                    )))
                }
                Err(error) => {
                    self.streak.set(0);
                    Err(error)
                }
            }
        })
    }
}

impl RedisTarget {
    fn parse(text: &str, args: &RedisOptions) -> anyhow::Result<RedisTarget> {
        // The URL is never repeated in errors: it may hold the password.
        if redact::has_misplaced_userinfo(text) {
            return Err(redact::misplaced_userinfo_error("Redis URL"));
        }
        let url =
            Url::parse(text).map_err(|error| exit::usage(format!("invalid Redis URL: {error}")))?;
        let secure = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(exit::usage(format!(
                    "invalid Redis URL: scheme '{other}', expected redis:// or rediss://"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(exit::usage("invalid Redis URL: no host")),
        };
        let port = url.port().unwrap_or(6379);
        let db = match url.path().trim_matches('/') {
            "" => 0,
            text => text.parse().map_err(|_| {
                exit::usage(format!(
                    "invalid Redis URL: database '{text}' is not a number"
                ))
            })?,
        };
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(String::from)
                .map_err(|_| exit::usage("invalid Redis URL: user or password is not UTF-8"))
        };
        let user = Some(decode(url.username())?).filter(|user| !user.is_empty());
        let mut password = url.password().map(decode).transpose()?.map(Secret::new);
        if let Some(path) = &args.password_file {
            password = Some(redact::read_secret_file(path, "password")?);
        }
        let tls = if secure {
            let roots = args.cacert.clone().map_or(Roots::System, Roots::File);
            Some(TlsConnector::from(tls::client_config(
                &roots,
                Verify::Full,
            )?))
        } else if args.cacert.is_some() {
            return Err(exit::usage("--cacert needs a rediss:// URL"));
        } else {
            None
        };
        let shown = {
            let mut shown = url.clone();
            if password.is_some() {
                // An ACL user or a password given by file is still shown as present.
                let _ = shown.set_password(Some("***"));
            }
            redact::url(&shown)
        };
        Ok(RedisTarget {
            host,
            port,
            tls,
            user,
            password,
            db,
            shown,
        })
    }
}

/// One check: connect, authenticate, PING, select the database, then INFO for loading and role.
/// The retry loop bounds the whole check by the attempt timeout.
async fn check(target: &RedisTarget, args: &RedisOptions) -> Result<(), AttemptError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|error| AttemptError::transient(anyhow!(error_text::io(&error))))?;
    match &target.tls {
        None => converse(Connection::new(tcp), target, args).await,
        Some(connector) => {
            let name = ServerName::try_from(target.host.clone()).map_err(|error| {
                AttemptError::permanent(anyhow!("invalid TLS server name: {error}"))
            })?;
            let stream = connector.connect(name, tcp).await.map_err(|error| {
                AttemptError::transient(anyhow!("TLS: {}", error_text::io(&error)))
            })?;
            converse(Connection::new(stream), target, args).await
        }
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    target: &RedisTarget,
    args: &RedisOptions,
) -> Result<(), AttemptError> {
    if let Some(password) = &target.password {
        let mut auth: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &target.user {
            auth.push(user.as_bytes());
        }
        auth.push(password.expose().as_bytes());
        expect_ok(&mut connection, &auth, args).await?;
    }
    let pong = ask(&mut connection, &[b"PING"], args).await?;
    if pong != Reply::Simple("PONG".into()) {
        return Err(AttemptError::transient(anyhow!(
            "PING answered {pong:?}, not PONG"
        )));
    }
    if target.db != 0 {
        expect_ok(
            &mut connection,
            &[b"SELECT", target.db.to_string().as_bytes()],
            args,
        )
        .await?;
    }
    let persistence = info(&mut connection, "persistence", args).await?;
    if resp::info_field(&persistence, "loading") != Some("0") {
        return Err(AttemptError::transient(anyhow!(
            "still loading its dataset (INFO persistence: loading:{})",
            resp::info_field(&persistence, "loading").unwrap_or("?")
        )));
    }
    if let Some(wanted) = &args.role {
        let replication = info(&mut connection, "replication", args).await?;
        let role = match resp::info_field(&replication, "role") {
            Some("master") => "master",
            Some("slave") => "replica",
            other => other.unwrap_or("unknown"),
        };
        if role != wanted {
            return Err(AttemptError::transient(anyhow!(
                "role is {role}, waiting for {wanted}"
            )));
        }
        if role == "replica" {
            let link = resp::info_field(&replication, "master_link_status").unwrap_or("unknown");
            if link != "up" {
                return Err(AttemptError::transient(anyhow!(
                    "replica's link to its master is {link}"
                )));
            }
        }
    }
    Ok(())
}

async fn info<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    section: &str,
    args: &RedisOptions,
) -> Result<String, AttemptError> {
    let reply = ask(connection, &[b"INFO", section.as_bytes()], args).await?;
    reply
        .text()
        .ok_or_else(|| AttemptError::transient(anyhow!("INFO {section} answered {reply:?}")))
}

async fn expect_ok<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    command: &[&[u8]],
    args: &RedisOptions,
) -> Result<(), AttemptError> {
    match ask(connection, command, args).await? {
        Reply::Simple(ok) if ok == "OK" => Ok(()),
        // AUTH's arguments are never echoed; only the command name is.
        other => Err(AttemptError::transient(anyhow!(
            "{} answered {other:?}",
            String::from_utf8_lossy(command[0])
        ))),
    }
}

/// Sends a command; an error reply becomes an attempt error, classified by its code.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    command: &[&[u8]],
    args: &RedisOptions,
) -> Result<Reply, AttemptError> {
    let reply = connection
        .command(command)
        .await
        .context("no reply")
        .map_err(|error| AttemptError::transient(anyhow!("{:#}", error)))?;
    let Reply::Error(message) = reply else {
        return Ok(reply);
    };
    let code = message.split_whitespace().next().unwrap_or("");
    let credentials = matches!(code, "NOAUTH" | "WRONGPASS")
        || (code == "ERR" && (message.contains("invalid password") || message.contains("AUTH")));
    // A database index the server does not have will not appear by waiting.
    let bad_database = code == "ERR" && message.contains("DB index");
    let error = anyhow!(message);
    if (credentials && args.fail_fast) || bad_database {
        Err(AttemptError::permanent(error))
    } else {
        Err(AttemptError::transient(error))
    }
}
