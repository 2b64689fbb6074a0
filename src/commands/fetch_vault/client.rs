//! Vault's HTTP API as fetch-vault uses it: the standard headers, errors in Vault's own words
//! (`{"errors":[...]}`), and which statuses are worth retrying.

use anyhow::anyhow;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::probe::http;
use crate::runtime::redact::Secret;
use crate::runtime::retry::AttemptError;

pub struct Vault {
    http: Client,
    addr: Url,
    namespace: Option<String>,
}

/// A Vault response whose status was 2xx, or a 404 the caller wants to look at.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Vault {
    pub fn new(http: Client, addr: Url, namespace: Option<String>) -> Vault {
        Vault {
            http,
            addr,
            namespace,
        }
    }

    /// Sends one request to `/v1/{path}`. Transient failures (connection errors, 412, 429, 5xx)
    /// and permanent ones (400, 401, 403, 405, and 404 unless `accept_404`) are classified
    /// here, once, for every call. `what` names the operation in errors ("reading secret/app").
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&Value>,
        what: &str,
        accept_404: bool,
    ) -> Result<Reply, AttemptError> {
        let url = self
            .addr
            .join(&format!("v1/{}", path.trim_start_matches('/')))
            .map_err(|error| AttemptError::permanent(anyhow!("{what}: bad path: {error}")))?;
        let mut request = self
            .http
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            let mut value =
                reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
                    AttemptError::permanent(anyhow!("the Vault token is not a valid header value"))
                })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|error| {
            AttemptError::transient(anyhow!("{what}: {}", http::describe(&error)))
        })?;
        let status = response.status();
        let retry_after = http::retry_after(&response);
        let text = response.text().await.map_err(|error| {
            AttemptError::transient(anyhow!("{what}: {}", http::describe(&error)))
        })?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if status.is_success() || (accept_404 && status == StatusCode::NOT_FOUND) {
            return Ok(Reply { status, body });
        }
        let error = anyhow!(
            "{what}: HTTP {}: {}",
            status.as_u16(),
            vault_errors(&body, status)
        );
        Err(match status.as_u16() {
            412 | 429 | 500..=599 => AttemptError::transient(error).retry_after(retry_after),
            _ => AttemptError::permanent(error),
        })
    }
}

/// Vault's `errors` list, or the status's name when the body has none.
fn vault_errors(body: &Value, status: StatusCode) -> String {
    let messages: Vec<String> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| match error.as_str() {
                    Some(text) => without_multierror_wrapping(text),
                    None => error.to_string(),
                })
                .filter(|text| !text.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if messages.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        messages.join("; ")
    }
}

/// Vault wraps some errors as "1 error occurred:\n\t* permission denied\n\n"; the bullets are
/// what a person needs.
fn without_multierror_wrapping(text: &str) -> String {
    let bullets: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("* "))
        .collect();
    if text.contains("error occurred:") || text.contains("errors occurred:") {
        bullets.join("; ")
    } else {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_are_joined_or_named_by_status() {
        let body = serde_json::json!({"errors": ["permission denied"]});
        assert_eq!(
            vault_errors(&body, StatusCode::FORBIDDEN),
            "permission denied"
        );
        let empty = serde_json::json!({"errors": []});
        assert_eq!(vault_errors(&empty, StatusCode::NOT_FOUND), "not found");
        assert_eq!(
            vault_errors(&Value::Null, StatusCode::SERVICE_UNAVAILABLE),
            "service unavailable"
        );
    }
}
