//! wait-redis: ready when Redis answers PING with PONG and has finished loading its dataset
//! (a loading server accepts connections but answers LOADING), optionally in a given role.

use std::cell::Cell;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::Url;

use crate::probe::resp::{self, Connection, Reply};
use crate::probe::tls::{self, Roots, Verify};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;
use crate::runtime::exit;
use crate::runtime::redact::{self, Secret};
use crate::runtime::retry::{self, AttemptError};
use crate::text::error_text;

#[derive(Debug, clap::Args)]
pub struct WaitRedisArgs {
    /// redis://[[user]:password@]host[:port][/db], or rediss:// for TLS.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub url: String,

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

    #[command(flatten)]
    pub then: ExecArgs,
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

pub async fn run(args: &WaitRedisArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = &RedisTarget::parse(args)?;
    let streak = &Cell::new(0);
    retry::until_ready(ctx, &target.shown, |_| async move {
        match check(target, args).await {
            Ok(()) if streak.get() + 1 >= args.success_threshold => Ok(()),
            Ok(()) => {
                streak.set(streak.get() + 1);
                Err(AttemptError::transient(anyhow!(
                    "{} of {} checks in a row passed",
                    streak.get(),
                    args.success_threshold
                )))
            }
            Err(error) => {
                streak.set(0);
                Err(error)
            }
        }
    })
    .await
}

impl RedisTarget {
    fn parse(args: &WaitRedisArgs) -> anyhow::Result<RedisTarget> {
        // The URL is never repeated in errors: it may hold the password.
        if redact::has_misplaced_userinfo(&args.url) {
            return Err(redact::misplaced_userinfo_error("Redis URL"));
        }
        let url = Url::parse(&args.url)
            .map_err(|error| exit::usage(format!("invalid Redis URL: {error}")))?;
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
async fn check(target: &RedisTarget, args: &WaitRedisArgs) -> Result<(), AttemptError> {
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
    args: &WaitRedisArgs,
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
    args: &WaitRedisArgs,
) -> Result<String, AttemptError> {
    let reply = ask(connection, &[b"INFO", section.as_bytes()], args).await?;
    reply
        .text()
        .ok_or_else(|| AttemptError::transient(anyhow!("INFO {section} answered {reply:?}")))
}

async fn expect_ok<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    command: &[&[u8]],
    args: &WaitRedisArgs,
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
    args: &WaitRedisArgs,
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
