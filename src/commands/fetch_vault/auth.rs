//! Logging in to Vault (Kubernetes service account, AppRole) or using a token given to us, and
//! revoking a token we obtained once the files are written.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use reqwest::Method;
use serde_json::json;

use super::client::Vault;
use crate::runtime::ctx::Ctx;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::redact::{self, Secret};
use crate::runtime::retry::{self, AttemptError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMethod {
    /// The pod's service-account token (POST /v1/auth/{mount}/login with role and jwt).
    Kubernetes,
    /// role_id and secret_id from files.
    Approle,
    /// VAULT_TOKEN or --token-file.
    Token,
}

/// What logging in needs, read from files before any request so that a missing file is a
/// configuration error (exit 2), not a retry.
pub enum Credentials {
    Kubernetes {
        mount: String,
        role: String,
        jwt: Secret,
    },
    Approle {
        mount: String,
        role_id: Secret,
        secret_id: Secret,
    },
    Token(Secret),
}

/// The token to use, and whether initbox obtained it (and so must revoke it).
pub struct Session {
    pub token: Secret,
    pub obtained: bool,
}

pub struct AuthArgs<'a> {
    pub method: Option<AuthMethod>,
    pub mount: Option<&'a str>,
    pub role: Option<&'a str>,
    pub jwt_file: &'a Path,
    pub role_id_file: Option<&'a PathBuf>,
    pub secret_id_file: Option<&'a PathBuf>,
    pub token_file: Option<&'a PathBuf>,
}

impl Credentials {
    /// Default method: token when VAULT_TOKEN or --token-file is given, else kubernetes.
    pub fn read(args: &AuthArgs, vault_token: Option<String>) -> anyhow::Result<Credentials> {
        let method = args
            .method
            .unwrap_or(if vault_token.is_some() || args.token_file.is_some() {
                AuthMethod::Token
            } else {
                AuthMethod::Kubernetes
            });
        Ok(match method {
            AuthMethod::Token => match (args.token_file, vault_token) {
                (Some(path), _) => Credentials::Token(redact::read_secret_file(path, "token")?),
                (None, Some(token)) => Credentials::Token(Secret::new(token)),
                (None, None) => {
                    return Err(exit::usage(
                        "--auth token needs VAULT_TOKEN or --token-file",
                    ));
                }
            },
            AuthMethod::Kubernetes => Credentials::Kubernetes {
                mount: args
                    .mount
                    .unwrap_or("kubernetes")
                    .trim_matches('/')
                    .to_string(),
                role: args
                    .role
                    .ok_or_else(|| exit::usage("kubernetes auth needs --role (or VAULT_ROLE)"))?
                    .to_string(),
                jwt: redact::read_secret_file(args.jwt_file, "service-account token (--jwt-file)")?,
            },
            AuthMethod::Approle => Credentials::Approle {
                mount: args
                    .mount
                    .unwrap_or("approle")
                    .trim_matches('/')
                    .to_string(),
                role_id: redact::read_secret_file(
                    args.role_id_file
                        .ok_or_else(|| exit::usage("approle auth needs --role-id-file"))?,
                    "role_id",
                )?,
                secret_id: redact::read_secret_file(
                    args.secret_id_file
                        .ok_or_else(|| exit::usage("approle auth needs --secret-id-file"))?,
                    "secret_id",
                )?,
            },
        })
    }

    /// Logs in (retrying what is worth retrying) or passes a given token through.
    pub async fn login(&self, ctx: &Ctx, vault: &Vault) -> anyhow::Result<Session> {
        let (mount, body, method) = match self {
            Credentials::Token(token) => {
                return Ok(Session {
                    token: token.clone(),
                    obtained: false,
                });
            }
            Credentials::Kubernetes { mount, role, jwt } => (
                mount,
                json!({"role": role, "jwt": jwt.expose()}),
                "kubernetes",
            ),
            Credentials::Approle {
                mount,
                role_id,
                secret_id,
            } => (
                mount,
                json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()}),
                "approle",
            ),
        };
        let target = format!("{method} login at auth/{mount}");
        // The retry loop puts the target before a final error; the request's own part names
        // the call, so the target is not said twice.
        let what = format!("POST auth/{mount}/login");
        let body = &body;
        let token = retry::until_ready(ctx, &target, |_| {
            let what = what.as_str();
            async move {
                let reply = vault
                    .call(
                        Method::POST,
                        &format!("auth/{mount}/login"),
                        None,
                        Some(body),
                        what,
                        false,
                    )
                    .await?;
                reply.body["auth"]["client_token"]
                    .as_str()
                    .map(Secret::new)
                    .ok_or_else(|| {
                        AttemptError::permanent(anyhow!("{what}: no client_token in the reply"))
                    })
            }
        })
        .await?;
        Ok(Session {
            token,
            obtained: true,
        })
    }
}

/// Revokes a token initbox obtained; a token it was given is never touched. A failure is a
/// warning: the files are written, and the token expires with its TTL.
pub async fn revoke(vault: &Vault, session: &Session) {
    if !session.obtained {
        return;
    }
    let revoked = vault
        .call(
            Method::POST,
            "auth/token/revoke-self",
            Some(&session.token),
            None,
            "revoking the token",
            false,
        )
        .await;
    match revoked {
        Ok(_) => logging::emit(
            Level::Info,
            "revoked the login token",
            &[("event", "revoked".into())],
        ),
        Err(error) => logging::emit(
            Level::Warn,
            &format!("could not revoke the login token (it expires with its TTL): {error}"),
            &[("event", "revoke_failed".into())],
        ),
    }
}
