//! fetch-vault against a real OpenBao server: token and AppRole auth, KV v1 and v2, every
//! format, modes and owners, token revocation, 403 failing fast, a sealed server, and no secret
//! in any log line even at the most verbose level. Kubernetes auth, which needs a real API
//! server's TokenReview, is tested in pods on a real node (tests/e2e/chain.rs).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::openbao::{OpenBao, ROOT_TOKEN};
use crate::support::{Run, finish, initbox, is_root, run, spawn};

const PASSWORD: &str = "pw-VALUE-1";
const API_KEY: &str = "key-VALUE-2";

/// A server with secret/app/db (KV v2) holding two fields, and a read policy `app`.
fn seeded() -> OpenBao {
    let bao = OpenBao::start();
    bao.cli(&[
        "kv",
        "put",
        "secret/app/db",
        &format!("password={PASSWORD}"),
        "user=app",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/app/api",
        &format!("key={API_KEY}"),
        "quote=it's",
    ]);
    bao.policy(
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read"] }
path "kv1/app/*" { capabilities = ["read"] }"#,
    );
    bao
}

fn fetch(bao: &OpenBao) -> Command {
    let mut command = initbox();
    command
        .env("VAULT_ADDR", bao.addr())
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ROLE")
        .arg("fetch-vault");
    command
}

/// fetch-vault with the root token, and these arguments.
fn fetch_as_root(bao: &OpenBao, args: &[&str]) -> Run {
    run(fetch(bao).env("VAULT_TOKEN", ROOT_TOKEN).args(args))
}

/// A `--secret` value: what to read (`MOUNT/PATH[#FIELD]`) and where to write it.
fn secret_to(what: &str, dest: &Path) -> String {
    format!("{what}={}", dest.display())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn assert_no_secrets(output: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!output.contains(secret), "{secret} leaked into:\n{output}");
    }
}

#[test]
fn a_token_reads_kv_v2_fields_and_maps_into_files() {
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let token = bao.token(&["app"]);
    let result = run(fetch(&bao).env("VAULT_TOKEN", &token).args([
        "--secret",
        &secret_to("secret/app/db#password", &dir.path().join("password")),
        "--secret",
        &secret_to("secret/app/db", &dir.path().join("db.json")),
    ]));
    result.expect_code(0);
    assert_eq!(read(&dir.path().join("password")), PASSWORD);
    let json: serde_json::Value = serde_json::from_str(&read(&dir.path().join("db.json"))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"password": PASSWORD, "user": "app"}),
        "the data map only, no metadata"
    );
    assert_eq!(mode(&dir.path().join("password")), 0o400);
    result.expect_stderr("wrote secret/app/db#password to");
    // A token initbox was given is never revoked.
    assert!(
        bao.cli(&["token", "lookup", "-format=json", &token])
            .contains("\"policies\"")
    );
    assert_no_secrets(&result.stderr, &[PASSWORD, &token]);
}

#[test]
fn kv_v1_mounts_are_detected() {
    let bao = seeded();
    bao.cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    bao.cli(&["kv", "put", "kv1/app/cfg", "level=debug"]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("level");
    run(fetch(&bao)
        .env("VAULT_TOKEN", bao.token(&["app"]))
        .args(["--secret", &secret_to("kv1/app/cfg#level", &dest)]))
    .expect_code(0);
    assert_eq!(read(&dest), "debug");
    // Without the preflight, with the version given.
    let user = secret_to("secret/app/db#user", &dest);
    fetch_as_root(&bao, &["--kv-version", "2", "--secret", &user]).expect_code(0);
    assert_eq!(read(&dest), "app");
}

#[test]
fn approle_login_token_is_revoked_unless_asked_not_to() {
    let bao = seeded();
    let (role_id, secret_id) = bao.approle("app");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("role-id"), &role_id).unwrap();
    std::fs::write(dir.path().join("secret-id"), format!("{secret_id}\n")).unwrap();
    let approle = |extra: &[&str]| {
        let mut command = fetch(&bao);
        command
            .args(["--auth", "approle", "--role-id-file"])
            .arg(dir.path().join("role-id"))
            .arg("--secret-id-file")
            .arg(dir.path().join("secret-id"))
            .arg("--secret")
            .arg(secret_to("secret/app/db#password", &dir.path().join("out")))
            .args(extra)
            .args(["-v", "--log-format", "json"]);
        command
    };
    let before = bao.token_count();
    let result = run(&mut approle(&[]));
    result.expect_code(0);
    assert_eq!(read(&dir.path().join("out")), PASSWORD);
    result.expect_stderr("revoked the login token");
    assert_eq!(bao.token_count(), before, "the login token must be gone");
    assert_no_secrets(&result.stderr, &[PASSWORD, &secret_id]);

    run(&mut approle(&["--no-revoke"])).expect_code(0);
    assert_eq!(bao.token_count(), before + 1, "--no-revoke keeps the token");
}

#[test]
fn every_format_reads_back_the_same_values() {
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("api.env");
    let yaml_file = dir.path().join("api.yaml");
    for (format, dest) in [("env", &env_file), ("yaml", &yaml_file)] {
        let secret = secret_to("secret/app/api", dest);
        let args = ["--format", format, "--mode", "0640", "--secret", &secret];
        fetch_as_root(&bao, &args).expect_code(0);
    }
    // A shell reads the env file back unchanged...
    let shell = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {}; printf '%s|%s' \"$key\" \"$quote\"",
            env_file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shell.stdout),
        format!("{API_KEY}|it's")
    );
    // ...and so does a dotenv loader.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let dotenv = Command::new(python)
        .arg("-c")
        .arg(format!(
            "from dotenv import dotenv_values; v = dotenv_values({:?}); print(v['key'] + '|' + v['quote'], end='')",
            env_file.display().to_string()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dotenv.stdout),
        format!("{API_KEY}|it's"),
        "{}",
        String::from_utf8_lossy(&dotenv.stderr)
    );
    assert_eq!(
        read(&yaml_file),
        format!("\"key\": \"{API_KEY}\"\n\"quote\": \"it's\"\n")
    );
    assert_eq!(mode(&yaml_file), 0o640);
}

#[test]
fn files_get_the_owner_asked_for() {
    if !is_root() {
        eprintln!("skipping files_get_the_owner_asked_for: needs root for chown");
        return;
    }
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("password");
    let secret = secret_to("secret/app/db#password", &dest);
    fetch_as_root(&bao, &["--owner", "1234:5678", "--secret", &secret]).expect_code(0);
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
}

#[test]
fn permission_denied_fails_fast_with_vaults_words() {
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    let token = bao.token(&["default"]);
    let result = run(fetch(&bao)
        .env("VAULT_TOKEN", &token)
        .env("INITBOX_TERMINATION_LOG", &termination)
        .args(["--timeout", "1m", "--kv-version", "2", "--secret"])
        .arg(secret_to("secret/app/db#password", &dir.path().join("out"))));
    // A 403 is not retried.
    result.expect_code(1).expect_within(Duration::from_secs(10));
    let message = read(&termination);
    assert!(
        message.contains("reading secret/app/db: HTTP 403: permission denied"),
        "{message}"
    );
    assert!(!dir.path().join("out").exists());
    assert_no_secrets(&format!("{}{message}", result.stderr), &[&token]);
}

#[test]
fn a_missing_field_names_the_fields_and_a_deleted_version_says_so() {
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x");
    let read_to_x = |what: &str| fetch_as_root(&bao, &["--secret", &secret_to(what, &dest)]);
    let missing = read_to_x("secret/app/db#pasword");
    missing.expect_code(1);
    missing.expect_stderr("no field 'pasword' in the secret; its fields are: password, user");
    assert_no_secrets(&missing.stderr, &[PASSWORD]);

    bao.cli(&["kv", "put", "secret/app/old", "x=1"]);
    bao.cli(&["kv", "delete", "secret/app/old"]);
    let deleted = read_to_x("secret/app/old");
    deleted.expect_code(1);
    deleted.expect_stderr("version 1 was deleted at");

    let never = read_to_x("secret/app/never");
    never.expect_code(1);
    never.expect_stderr("no secret at this path");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_sealed_server_is_waited_for_until_unsealed() {
    let bao = seeded();
    bao.seal();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("password");
    let (child, started) = spawn(fetch(&bao).env("VAULT_TOKEN", ROOT_TOKEN).args([
        "--timeout",
        "60s",
        "--secret",
        &secret_to("secret/app/db#password", &dest),
    ]));
    std::thread::sleep(Duration::from_millis(1000));
    bao.unseal();
    let result = finish(child, started);
    result.expect_code(0);
    result.expect_stderr("HTTP 503: Vault is sealed");
    assert_eq!(read(&dest), PASSWORD);
}

#[test]
fn tls_is_verified_against_the_given_ca() {
    let bao = OpenBao::start_tls();
    bao.cli(&[
        "kv",
        "put",
        "secret/app/db",
        &format!("password={PASSWORD}"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("password");
    let secret = secret_to("secret/app/db#password", &dest);
    let ca = bao.ca_cert.clone().unwrap();
    run(fetch(&bao)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("VAULT_CACERT", &ca)
        .args(["--secret", &secret]))
    .expect_code(0);
    assert_eq!(read(&dest), PASSWORD);
    let unknown = run(fetch(&bao)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env_remove("SSL_CERT_FILE")
        .args(["--timeout", "1s", "--secret", &secret]));
    unknown.expect_code(124);
    unknown.expect_stderr("certificate");
    let skip = run(fetch(&bao)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("VAULT_SKIP_VERIFY", "1")
        .args(["--secret", &secret]));
    skip.expect_code(0);
    skip.expect_stderr("VAULT_SKIP_VERIFY");
}

/// Arguments, extra environment, and what the one error line must name.
type BadCase<'a> = (Vec<String>, Vec<(&'a str, String)>, &'a str);

#[test]
fn bad_input_is_rejected_before_anything_is_written() {
    let bao = seeded();
    let dir = tempfile::tempdir().unwrap();
    let good = secret_to("secret/app/db#password", &dir.path().join("out"));
    let cases: Vec<BadCase> = vec![
        (
            vec!["--secret".into(), "secret/app/db".into()],
            vec![],
            "MOUNT/PATH[#FIELD]=DEST",
        ),
        (
            vec!["--secret".into(), "nopath=/tmp/x".into()],
            vec![],
            "MOUNT/PATH",
        ),
        (
            vec!["--secret".into(), good.clone()],
            vec![("VAULT_ADDR", "vault.example:8200".into())],
            "invalid Vault address",
        ),
        (
            vec![
                "--role".into(),
                "app".into(),
                "--jwt-file".into(),
                "/nonexistent/token".into(),
                "--secret".into(),
                good.clone(),
            ],
            vec![],
            "cannot read service-account token",
        ),
        (
            vec![
                "--secret".into(),
                secret_to(
                    "secret/app/db#password",
                    &dir.path().join("no/such/dir/out"),
                ),
            ],
            vec![("VAULT_TOKEN", ROOT_TOKEN.into())],
            "does not exist",
        ),
        (
            vec![
                "--mode".into(),
                "rw".into(),
                "--secret".into(),
                good.clone(),
            ],
            vec![],
            "invalid mode",
        ),
    ];
    for (args, env, named) in cases {
        let mut command = fetch(&bao);
        for (key, value) in &env {
            command.env(key, value);
        }
        run(command.args(&args)).expect_one_line(2, named);
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
