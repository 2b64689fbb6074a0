//! Requests to the Kubernetes API: JSON over HTTPS with the configured CA and credentials, list
//! and watch (a stream of one JSON event per line), and the API's error Status turned into a
//! message that names what was refused.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use rustls::RootCertStore;
use serde_json::Value;
use url::Url;

use crate::probe::http;
use crate::probe::k8s::config::{Config, Credentials};
use crate::probe::tls::{self, Roots};
use crate::runtime::exit;
use crate::runtime::redact::{self, Secret};

/// How long a connection may take to open; a watch itself has no overall limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    http: reqwest::Client,
    server: Url,
    token: Token,
    /// The namespace of the configuration (the pod's own, or the kubeconfig context's).
    pub namespace: Option<String>,
}

enum Token {
    None,
    Fixed(Secret),
    File(std::path::PathBuf),
}

/// Why a request failed: the API's own status, or no answer at all.
#[derive(Debug)]
pub enum ApiError {
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    Transport(String),
}

impl ApiError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            ApiError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status {
                code: 401, message, ..
            } => write!(
                f,
                "401 Unauthorized: the API server rejected the credentials ({message})"
            ),
            ApiError::Status {
                code,
                reason,
                message,
            } => write!(f, "{code} {reason}: {message}"),
            ApiError::Transport(error) => f.write_str(error),
        }
    }
}

impl std::error::Error for ApiError {}

impl Client {
    pub fn new(config: Config) -> anyhow::Result<Client> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &config.ca {
            Some(chain) => {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(chain.iter().cloned());
                store
            }
            None => tls::load_roots(&Roots::System)?.0,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| anyhow::anyhow!("setting up TLS: {error}"))?
            .with_root_certificates(roots);
        let (tls, token) = match config.credentials {
            Credentials::Certificate(chain, key) => (
                builder.with_client_auth_cert(chain, key).map_err(|error| {
                    exit::usage(format!("the client certificate cannot be used: {error}"))
                })?,
                Token::None,
            ),
            Credentials::Token(token) => (builder.with_no_client_auth(), Token::Fixed(token)),
            Credentials::TokenFile(path) => (builder.with_no_client_auth(), Token::File(path)),
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("initbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow::anyhow!("setting up the HTTP client: {error}"))?;
        Ok(Client {
            http,
            server: config.server,
            token,
            namespace: config.namespace,
        })
    }

    /// GET of a path (with its query) under the server, as JSON, within `budget`.
    pub async fn get(&self, path: &str, budget: Duration) -> Result<Value, ApiError> {
        let response = self.send(Method::GET, path, None, Some(budget)).await?;
        read_json(response).await
    }

    /// A POST or PATCH (merge patch) of a JSON body, within `budget`.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        budget: Duration,
    ) -> Result<Value, ApiError> {
        let response = self.send(method, path, Some(body), Some(budget)).await?;
        read_json(response).await
    }

    /// Opens a watch (`path` carries `watch=1` and the resourceVersion to start from).
    pub async fn watch(&self, path: &str) -> Result<Watch, ApiError> {
        let response = self.send(Method::GET, path, None, None).await?;
        Ok(Watch {
            response,
            buffer: Vec::new(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        budget: Option<Duration>,
    ) -> Result<reqwest::Response, ApiError> {
        let url = format!("{}{}", self.server.as_str().trim_end_matches('/'), path);
        let mut request = self.http.request(method.clone(), url);
        if let Some(budget) = budget {
            request = request.timeout(budget);
        }
        if let Some(token) = self.token()? {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| ApiError::Transport("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            let content_type = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header(CONTENT_TYPE, content_type)
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|error| ApiError::Transport(http::describe(&error)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(status_error(status, &body))
    }

    /// The token for the next request; a token file is read each time, so a rotated token is
    /// used as soon as the kubelet has written it.
    fn token(&self) -> Result<Option<Secret>, ApiError> {
        match &self.token {
            Token::None => Ok(None),
            Token::Fixed(token) => Ok(Some(token.clone())),
            Token::File(path) => redact::read_secret_file(path, "token")
                .map(|token| Some(Secret::new(token.expose().trim())))
                .map_err(|error| ApiError::Transport(format!("{error:#}"))),
        }
    }
}

async fn read_json(response: reqwest::Response) -> Result<Value, ApiError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|error| ApiError::Transport(http::describe(&error)))?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::Transport(format!("the API server's answer is not JSON: {error}"))
    })
}

/// The API's Status object (`{"kind":"Status","reason":"Forbidden","message":...}`), or the
/// HTTP status alone when the body is something else.
fn status_error(status: StatusCode, body: &str) -> ApiError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let reason = parsed["reason"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let message = parsed["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            body.chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string()
        });
    ApiError::Status {
        code: status.as_u16(),
        reason,
        message,
    }
}

/// An open watch: events arrive as JSON objects, one per line.
pub struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Watch {
    /// The next event; `None` when the server closed the watch (its timeout, or a restart).
    pub async fn next(&mut self) -> Result<Option<Value>, ApiError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(|error| {
                    ApiError::Transport(format!("a watch event is not JSON: {error}"))
                });
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(error) => return Err(ApiError::Transport(http::describe(&error))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_body_gives_reason_and_message() {
        let error = status_error(
            StatusCode::FORBIDDEN,
            r#"{"kind":"Status","status":"Failure","message":"jobs.batch is forbidden: User \"x\" cannot list resource \"jobs\"","reason":"Forbidden","code":403}"#,
        );
        assert_eq!(
            error.to_string(),
            r#"403 Forbidden: jobs.batch is forbidden: User "x" cannot list resource "jobs""#
        );
        assert_eq!(
            status_error(StatusCode::BAD_GATEWAY, "<html>oops</html>").to_string(),
            "502 Bad Gateway: <html>oops</html>"
        );
    }
}
