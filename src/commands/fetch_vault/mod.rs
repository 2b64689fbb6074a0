//! fetch-vault: log in to Vault or OpenBao, read KV secrets, write each to a file atomically
//! with tight permissions, revoke the login token, exit. No secret value, token, JWT or
//! secret_id is ever formatted into a log line, an error or the termination message.

mod auth;
mod client;
mod kv;
mod output;

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use reqwest::Client;
use url::Url;

use crate::fs::atomic::{self, Owner};
use crate::probe::http;
use crate::runtime::ctx::Ctx;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};

use auth::{AuthArgs, AuthMethod, Credentials};
use client::Vault;
use kv::SecretSpec;
use output::Format;

#[derive(Debug, clap::Args)]
pub struct FetchVaultArgs {
    /// Vault address, e.g. https://vault.vault.svc:8200.
    #[arg(long, env = "VAULT_ADDR", value_name = "URL")]
    pub addr: String,

    /// CA certificate (PEM) for Vault's TLS, instead of the system bundle.
    #[arg(long, env = "VAULT_CACERT", value_name = "PATH")]
    pub cacert: Option<PathBuf>,

    /// Vault Enterprise / OpenBao namespace (sent as X-Vault-Namespace).
    #[arg(long, env = "VAULT_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Do not verify Vault's certificate (logged as a warning).
    #[arg(long, env = "VAULT_SKIP_VERIFY", value_parser = clap::builder::BoolishValueParser::new(),
          action = clap::ArgAction::Set, default_value = "false", num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL", hide_possible_values = true)]
    pub skip_verify: bool,

    /// How to log in. Default: token when VAULT_TOKEN or --token-file is given, else kubernetes.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub auth: Option<AuthMethod>,

    /// Role to log in as (kubernetes auth).
    #[arg(long, env = "VAULT_ROLE", value_name = "ROLE")]
    pub role: Option<String>,

    /// Service-account token for kubernetes auth.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub jwt_file: PathBuf,

    /// Auth mount path (default: kubernetes or approle).
    #[arg(long, value_name = "PATH")]
    pub auth_mount: Option<String>,

    /// File holding the AppRole role_id.
    #[arg(long, value_name = "PATH")]
    pub role_id_file: Option<PathBuf>,

    /// File holding the AppRole secret_id.
    #[arg(long, value_name = "PATH")]
    pub secret_id_file: Option<PathBuf>,

    /// File holding a Vault token (instead of VAULT_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Keep the token obtained by logging in (it is revoked by default once the files are written).
    #[arg(long)]
    pub no_revoke: bool,

    /// A secret to fetch: MOUNT/PATH[#FIELD]=DEST (repeatable).
    #[arg(long = "secret", required = true, value_name = "MOUNT/PATH[#FIELD]=DEST",
          value_parser = SecretSpec::parse)]
    pub secrets: Vec<SecretSpec>,

    /// KV engine version, when the token may not read sys/internal/ui/mounts to detect it.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2), value_name = "1|2")]
    pub kv_version: Option<u8>,

    /// Output format. Default: raw with #FIELD, json without.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Mode of the written files (octal).
    #[arg(long, default_value = "0400", value_parser = atomic::parse_mode, value_name = "MODE")]
    pub mode: u32,

    /// Owner of the written files, UID[:GID] (needs root or CAP_CHOWN).
    #[arg(long, value_parser = Owner::parse, value_name = "UID[:GID]")]
    pub owner: Option<Owner>,

    /// Create missing destination directories (mode 0700) instead of failing.
    #[arg(long)]
    pub mkdir: bool,
}

pub async fn run(args: &FetchVaultArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // Everything that can be checked without Vault is checked first, so a typo costs nothing
    // and leaves nothing behind.
    let addr = parse_addr(&args.addr)?;
    check_destinations(args)?;
    let credentials = Credentials::read(
        &AuthArgs {
            method: args.auth,
            mount: args.auth_mount.as_deref(),
            role: args.role.as_deref(),
            jwt_file: &args.jwt_file,
            role_id_file: args.role_id_file.as_ref(),
            secret_id_file: args.secret_id_file.as_ref(),
            token_file: args.token_file.as_ref(),
        },
        std::env::var("VAULT_TOKEN")
            .ok()
            .filter(|token| !token.is_empty()),
    )?;
    let vault = Vault::new(http_client(args)?, addr, args.namespace.clone());

    let session = credentials.login(ctx, &vault).await?;
    let result = fetch_and_write(args, ctx, &vault, &session).await;
    if !args.no_revoke {
        // Bounded: a Vault that stopped answering must not hold the pod after its files are
        // written (or after a signal); the token then expires with its TTL.
        let revoke = auth::revoke(&vault, &session);
        if tokio::time::timeout(std::time::Duration::from_secs(5), revoke)
            .await
            .is_err()
        {
            logging::emit(
                Level::Warn,
                "could not revoke the login token within 5s (it expires with its TTL)",
                &[("event", "revoke_failed".into())],
            );
        }
    }
    result
}

async fn fetch_and_write(
    args: &FetchVaultArgs,
    ctx: &Ctx,
    vault: &Vault,
    session: &auth::Session,
) -> anyhow::Result<()> {
    // All secrets are read and rendered before the first file is written, so a missing field
    // in the third secret does not leave the first two updated and the rest stale.
    let mut files = Vec::new();
    for spec in &args.secrets {
        let data = kv::read(ctx, vault, &session.token, spec, args.kv_version).await?;
        let format = args.format.unwrap_or(if spec.field.is_some() {
            Format::Raw
        } else {
            Format::Json
        });
        let bytes = output::render(format, &data, spec.field.as_deref())
            .map_err(|error| error.context(spec.shown()))?;
        files.push((spec, bytes));
    }
    for (spec, bytes) in files {
        atomic::write_atomic(&spec.dest, &bytes, args.mode, args.owner)?;
        logging::emit(
            Level::Info,
            &format!(
                "wrote {} to {} ({} bytes, mode {:04o})",
                spec.shown(),
                spec.dest.display(),
                bytes.len(),
                args.mode
            ),
            &[
                ("event", "written".into()),
                ("secret", spec.shown().into()),
                ("dest", spec.dest.display().to_string().into()),
                ("bytes", bytes.len().into()),
            ],
        );
    }
    Ok(())
}

/// VAULT_ADDR must say http or https: a bare host name is a common mistake that would
/// otherwise fail much later and less clearly.
fn parse_addr(text: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| {
            exit::usage(format!(
                "invalid Vault address '{}': expected http(s)://HOST[:PORT]",
                crate::runtime::redact::url_text(text)
            ))
        })?;
    // join() must append to the address's path, not replace its last segment.
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

fn check_destinations(args: &FetchVaultArgs) -> anyhow::Result<()> {
    for spec in &args.secrets {
        if args.format == Some(Format::Raw) && spec.field.is_none() {
            return Err(exit::usage(format!(
                "--format raw needs a #FIELD, and {} has none",
                spec.shown()
            )));
        }
        if spec.dest.is_dir() {
            return Err(exit::usage(format!(
                "destination {} of {} is a directory; name a file",
                spec.dest.display(),
                spec.shown()
            )));
        }
        let dir = match spec.dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => continue,
        };
        if dir.is_dir() {
            continue;
        }
        if !args.mkdir {
            return Err(exit::usage(format!(
                "destination directory {} of {} does not exist (--mkdir creates it)",
                dir.display(),
                spec.shown()
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| exit::usage(format!("cannot create {}: {error}", dir.display())))?;
    }
    Ok(())
}

fn http_client(args: &FetchVaultArgs) -> anyhow::Result<Client> {
    let trust = http::Trust {
        cacert: args.cacert.as_ref(),
        unverified_by: args.skip_verify.then_some("VAULT_SKIP_VERIFY"),
    };
    // Vault answers on the address it was given; a redirect would be a misconfiguration.
    http::client(trust, reqwest::redirect::Policy::none(), true)
}
