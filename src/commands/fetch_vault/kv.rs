//! Reading KV secrets, version 1 or 2 (detected from the mount, or given), and telling a
//! deleted KV v2 version apart from a secret that never existed.

use std::path::PathBuf;

use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use super::client::Vault;
use crate::runtime::ctx::Ctx;
use crate::runtime::redact::Secret;
use crate::runtime::retry::{self, AttemptError};

/// `--secret MOUNT/PATH[#FIELD]=DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The secret's path including its mount, as the CLI writes it: `secret/app/db`.
    pub path: String,
    pub field: Option<String>,
    pub dest: PathBuf,
}

impl SecretSpec {
    pub fn parse(text: &str) -> Result<SecretSpec, String> {
        let invalid = |why: &str| {
            format!("invalid --secret '{text}': {why}; expected MOUNT/PATH[#FIELD]=DEST")
        };
        let (source, dest) = text.split_once('=').ok_or_else(|| invalid("no '=DEST'"))?;
        if dest.is_empty() {
            return Err(invalid("empty destination"));
        }
        let (path, field) = match source.split_once('#') {
            Some((path, "")) => {
                return Err(invalid(&format!("empty field after '{path}#'")));
            }
            Some((path, field)) => (path, Some(field.to_string())),
            None => (source, None),
        };
        let path = path.trim_matches('/');
        if !path.contains('/') || path.split('/').any(str::is_empty) {
            return Err(invalid("the path must be MOUNT/PATH"));
        }
        Ok(SecretSpec {
            path: path.to_string(),
            field,
            dest: PathBuf::from(dest),
        })
    }

    /// `secret/app/db#password`, for logs.
    pub fn shown(&self) -> String {
        match &self.field {
            Some(field) => format!("{}#{field}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Reads one secret's data map, retrying what is worth retrying.
pub async fn read(
    ctx: &Ctx,
    vault: &Vault,
    token: &Secret,
    spec: &SecretSpec,
    kv_version: Option<u8>,
) -> anyhow::Result<Map<String, Value>> {
    let target = format!("{} -> {}", spec.shown(), spec.dest.display());
    retry::until_ready(ctx, &target, |_| async {
        let (mount, version) = match kv_version {
            Some(version) => (
                spec.path.split('/').next().unwrap_or_default().to_string() + "/",
                version,
            ),
            None => detect(vault, token, &spec.path).await?,
        };
        let rest = spec.path.strip_prefix(&mount).unwrap_or(&spec.path);
        let what = format!("reading {}", spec.path);
        if version == 1 {
            let reply = vault
                .call(Method::GET, &spec.path, Some(token), None, &what, true)
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(AttemptError::permanent(anyhow!(
                    "{what}: no secret at this path (KV v1)"
                )));
            }
            return data_map(&reply.body["data"], &what);
        }
        let reply = vault
            .call(
                Method::GET,
                &format!("{mount}data/{rest}"),
                Some(token),
                None,
                &what,
                true,
            )
            .await?;
        let metadata = &reply.body["data"]["metadata"];
        if reply.status == StatusCode::NOT_FOUND {
            let deleted = metadata["deletion_time"]
                .as_str()
                .filter(|time| !time.is_empty());
            return Err(AttemptError::permanent(
                match (deleted, metadata["destroyed"].as_bool()) {
                    (_, Some(true)) => {
                        anyhow!("{what}: version {} was destroyed", metadata["version"])
                    }
                    (Some(time), _) => anyhow!(
                        "{what}: version {} was deleted at {time}",
                        metadata["version"]
                    ),
                    _ => anyhow!("{what}: no secret at this path (KV v2 mount {mount})"),
                },
            ));
        }
        data_map(&reply.body["data"]["data"], &what)
    })
    .await
}

/// The mount holding `path` and its KV version, from sys/internal/ui/mounts (which any token
/// may ask about the paths its policy lets it read).
async fn detect(vault: &Vault, token: &Secret, path: &str) -> Result<(String, u8), AttemptError> {
    let what = format!("looking up the KV mount of {path} (--kv-version skips this)");
    let reply = vault
        .call(
            Method::GET,
            &format!("sys/internal/ui/mounts/{path}"),
            Some(token),
            None,
            &what,
            false,
        )
        .await?;
    let data = &reply.body["data"];
    let mount = data["path"].as_str().unwrap_or_default().to_string();
    match data["type"].as_str() {
        Some("kv") | Some("generic") => {}
        other => {
            return Err(AttemptError::permanent(anyhow!(
                "{path} is on a {} mount, not KV",
                other.unwrap_or("unknown")
            )));
        }
    }
    let version = match data["options"]["version"].as_str() {
        Some("2") => 2,
        _ => 1,
    };
    Ok((mount, version))
}

fn data_map(data: &Value, what: &str) -> Result<Map<String, Value>, AttemptError> {
    data.as_object()
        .cloned()
        .ok_or_else(|| AttemptError::permanent(anyhow!("{what}: the reply has no data")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_path_field_and_destination() {
        assert_eq!(
            SecretSpec::parse("secret/app/db#password=/vault/db-password"),
            Ok(SecretSpec {
                path: "secret/app/db".into(),
                field: Some("password".into()),
                dest: "/vault/db-password".into()
            })
        );
        let whole = SecretSpec::parse("kv/team/app=out.json").unwrap();
        assert_eq!((whole.path.as_str(), whole.field), ("kv/team/app", None));
        for bad in [
            "secret/app",
            "secret/app=",
            "app=/x",
            "secret/app#=/x",
            "secret//app=/x",
            "=x",
        ] {
            assert!(SecretSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
