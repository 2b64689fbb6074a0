//! Where the Kubernetes API is and how to authenticate to it: in a pod, the mounted
//! service-account token, CA and namespace with KUBERNETES_SERVICE_HOST/PORT (as client-go's
//! in-cluster config); elsewhere (docker run, CI), the current context of KUBECONFIG with a
//! token, a token file or a client certificate. Anything else is one clear line and exit 2.

use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use url::Url;

use crate::probe::k8s::yaml;
use crate::runtime::exit;
use crate::runtime::redact::Secret;
use crate::text::error_text::without_os_codes;

/// Where the kubelet mounts a pod's service-account token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Who the client is to the API server.
pub enum Credentials {
    /// A token given in the kubeconfig itself.
    Token(Secret),
    /// A token read from this file before every request: the kubelet rotates a projected
    /// service-account token in place, and a long wait must follow it.
    TokenFile(PathBuf),
    /// A client certificate (the chain, then its key), presented during the TLS handshake.
    Certificate(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

pub struct Config {
    /// `https://host:port`, without a trailing slash.
    pub server: Url,
    /// The CA that signed the server's certificate; `None`: the system bundle.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub credentials: Credentials,
    /// The namespace of the pod (service-account mount) or of the kubeconfig context.
    pub namespace: Option<String>,
}

impl Config {
    /// KUBECONFIG when it is set (an explicit choice), else the in-cluster configuration.
    pub fn load() -> anyhow::Result<Config> {
        Config::load_from(
            std::env::var_os("KUBECONFIG").filter(|value| !value.is_empty()),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    fn load_from(
        kubeconfig: Option<std::ffi::OsString>,
        service_account: &Path,
    ) -> anyhow::Result<Config> {
        if let Some(paths) = kubeconfig {
            return from_kubeconfig(&std::env::split_paths(&paths).collect::<Vec<_>>());
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        if host.is_empty() {
            return Err(exit::usage(
                "no Kubernetes API to talk to: KUBERNETES_SERVICE_HOST is not set (not in a pod) \
                 and neither is KUBECONFIG",
            ));
        }
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let server = parse_server(&format!("https://{host}:{port}"), "KUBERNETES_SERVICE_HOST")?;
        let ca_path = service_account.join("ca.crt");
        let namespace = std::fs::read_to_string(service_account.join("namespace"))
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty());
        Ok(Config {
            server,
            ca: Some(certificates(
                &read(&ca_path, "the service-account CA")?,
                &ca_path.display().to_string(),
            )?),
            credentials: Credentials::TokenFile(service_account.join("token")),
            namespace,
        })
    }
}

/// The current context of one kubeconfig or several (merged as kubectl does: for each name, the
/// first file that defines it wins).
fn from_kubeconfig(paths: &[PathBuf]) -> anyhow::Result<Config> {
    let mut files = Vec::new();
    for path in paths.iter().filter(|path| !path.as_os_str().is_empty()) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            // kubectl skips missing files in a KUBECONFIG list; a lone missing file is an error.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && paths.len() > 1 => {
                continue;
            }
            Err(error) => {
                return Err(exit::usage(format!(
                    "cannot read KUBECONFIG {}: {}",
                    path.display(),
                    without_os_codes(&error.to_string())
                )));
            }
        };
        let value = yaml::parse(&text).map_err(|error| {
            exit::usage(format!(
                "KUBECONFIG {} is not YAML: {error}",
                path.display()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        files.push((value, dir));
    }
    let current = files
        .iter()
        .find_map(|(file, _)| text_of(&file["current-context"]))
        .ok_or_else(|| exit::usage("KUBECONFIG has no current-context"))?;
    let context = named(&files, "contexts", "context", &current)
        .ok_or_else(|| exit::usage(format!("KUBECONFIG: context '{current}' is not defined")))?
        .0;
    let cluster_name = text_of(&context["cluster"])
        .ok_or_else(|| exit::usage(format!("KUBECONFIG: context '{current}' names no cluster")))?;
    let (cluster, cluster_dir) =
        named(&files, "clusters", "cluster", &cluster_name).ok_or_else(|| {
            exit::usage(format!(
                "KUBECONFIG: cluster '{cluster_name}' is not defined"
            ))
        })?;
    let user_name = text_of(&context["user"]).unwrap_or_default();
    let (user, user_dir) = named(&files, "users", "user", &user_name)
        .ok_or_else(|| exit::usage(format!("KUBECONFIG: user '{user_name}' is not defined")))?;
    let what = |field: &str| format!("KUBECONFIG cluster '{cluster_name}' {field}");
    let server = text_of(&cluster["server"])
        .ok_or_else(|| exit::usage(what("has no server")))
        .and_then(|server| parse_server(&server, &what("server")))?;
    if text_of(&cluster["insecure-skip-tls-verify"]).as_deref() == Some("true") {
        return Err(exit::usage(what(
            "has insecure-skip-tls-verify, which initbox does not support: give \
             certificate-authority or certificate-authority-data",
        )));
    }
    let ca = pem_field(&cluster, "certificate-authority", cluster_dir, &what(""))?
        .map(|(pem, origin)| certificates(&pem, &origin))
        .transpose()?;
    Ok(Config {
        server,
        ca,
        credentials: credentials(&user, user_dir, &user_name)?,
        namespace: text_of(&context["namespace"]),
    })
}

/// A token, a token file or a client certificate; the forms kubectl supports that initbox does
/// not (exec plugins, auth providers, basic auth) are named in the error.
fn credentials(user: &Value, dir: &Path, name: &str) -> anyhow::Result<Credentials> {
    let what = format!("KUBECONFIG user '{name}'");
    if let Some(token) = text_of(&user["token"]) {
        return Ok(Credentials::Token(Secret::new(token)));
    }
    if let Some(file) = text_of(&user["tokenFile"]) {
        return Ok(Credentials::TokenFile(dir.join(file)));
    }
    let certificate = pem_field(user, "client-certificate", dir, &what)?;
    let key = pem_field(user, "client-key", dir, &what)?;
    match (certificate, key) {
        (Some((certificate, origin)), Some((key, key_origin))) => {
            let chain = certificates(&certificate, &origin)?;
            let key = PrivateKeyDer::from_pem_slice(&key).map_err(|error| {
                exit::usage(format!("no usable private key in {key_origin}: {error}"))
            })?;
            Ok(Credentials::Certificate(chain, key))
        }
        (Some(_), None) | (None, Some(_)) => Err(exit::usage(format!(
            "{what} has a client certificate or key without the other"
        ))),
        (None, None) => {
            let unsupported = ["exec", "auth-provider", "username", "password"]
                .into_iter()
                .find(|field| !user[*field].is_null());
            Err(exit::usage(match unsupported {
                Some(field) => format!(
                    "{what} authenticates with '{field}', which initbox does not support: use a \
                     token, tokenFile, or client-certificate and client-key"
                ),
                None => format!(
                    "{what} has no credentials: expected token, tokenFile, or \
                     client-certificate and client-key"
                ),
            }))
        }
    }
}

/// The entry called `name` in the `list` of the first file that has it, with that file's
/// directory (relative paths in a kubeconfig are relative to the file).
fn named<'a>(
    files: &'a [(Value, PathBuf)],
    list: &str,
    field: &str,
    name: &str,
) -> Option<(Value, &'a Path)> {
    files.iter().find_map(|(file, dir)| {
        file[list].as_array()?.iter().find_map(|entry| {
            (entry["name"].as_str() == Some(name)).then(|| (entry[field].clone(), dir.as_path()))
        })
    })
}

/// `FIELD-data` (base64 PEM) or `FIELD` (a path), with where it came from for errors.
fn pem_field(
    entry: &Value,
    field: &str,
    dir: &Path,
    what: &str,
) -> anyhow::Result<Option<(Vec<u8>, String)>> {
    if let Some(data) = text_of(&entry[format!("{field}-data").as_str()]) {
        let compact: String = data.split_whitespace().collect();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| exit::usage(format!("{what} {field}-data is not base64")))?;
        return Ok(Some((pem, format!("{what} {field}-data"))));
    }
    match text_of(&entry[field]) {
        Some(path) => {
            let path = dir.join(path);
            Ok(Some((read(&path, field)?, path.display().to_string())))
        }
        None => Ok(None),
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| {
        exit::usage(format!(
            "cannot read {what} {}: {}",
            path.display(),
            without_os_codes(&error.to_string())
        ))
    })
}

fn certificates(pem: &[u8], origin: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| exit::usage(format!("bad PEM in {origin}: {error}")))?;
    if chain.is_empty() {
        return Err(exit::usage(format!("no certificate in {origin}")));
    }
    Ok(chain)
}

fn parse_server(text: &str, what: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text.trim_end_matches('/'))
        .map_err(|error| exit::usage(format!("{what}: '{text}' is not a URL: {error}")))?;
    if url.scheme() != "https" {
        return Err(exit::usage(format!(
            "{what}: '{text}' is not https (the API server's token must not travel in clear)"
        )));
    }
    Ok(url)
}

fn text_of(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn usage_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", text);
        let error = Config::load_from(Some(path.into()), dir.path())
            .err()
            .expect("accepted");
        assert_eq!(Exit::of(&error), Exit::Usage, "{error:#}");
        format!("{error:#}")
    }

    const HEAD: &str = "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u, namespace: apps}\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n";

    #[test]
    fn kubeconfig_with_a_token_file_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config",
            &format!("{HEAD}users:\n- name: u\n  user:\n    tokenFile: token\n"),
        );
        let config = Config::load_from(Some(path.into()), dir.path()).unwrap();
        assert_eq!(config.server.as_str(), "https://127.0.0.1:6443/");
        assert_eq!(config.namespace.as_deref(), Some("apps"));
        assert!(config.ca.is_none());
        match config.credentials {
            Credentials::TokenFile(file) => assert_eq!(file, dir.path().join("token")),
            _ => panic!("not a token file"),
        }
    }

    #[test]
    fn unsupported_kubeconfig_forms_are_one_clear_line() {
        for (users, named) in [
            (
                "users:\n- name: u\n  user:\n    exec: {command: aws}\n",
                "'exec', which initbox does not support",
            ),
            (
                "users:\n- name: u\n  user:\n    username: a\n    password: S3CRET\n",
                "'username'",
            ),
            ("users:\n- name: u\n  user: {}\n", "has no credentials"),
            (
                "users:\n- name: u\n  user:\n    client-certificate-data: eA==\n",
                "without the other",
            ),
            ("users: []\n", "user 'u' is not defined"),
        ] {
            let message = usage_error(&format!("{HEAD}{users}"));
            assert!(message.contains(named), "{message}");
            assert!(!message.contains("S3CRET"), "{message}");
        }
        assert!(usage_error("a: [").contains("is not YAML"));
        assert!(usage_error("kind: Config\n").contains("no current-context"));
        let insecure = HEAD.replace(
            "server: https://127.0.0.1:6443\n",
            "server: http://127.0.0.1:8080\n",
        );
        assert!(
            usage_error(&format!(
                "{insecure}users:\n- name: u\n  user: {{token: x}}\n"
            ))
            .contains("is not https")
        );
    }

    #[test]
    fn a_missing_kubeconfig_is_named() {
        let error = Config::load_from(Some("/nonexistent/kubeconfig".into()), Path::new("/"))
            .err()
            .unwrap();
        assert!(format!("{error:#}").contains("/nonexistent/kubeconfig"));
    }
}
