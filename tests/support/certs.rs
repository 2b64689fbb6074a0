//! Server certificates as people make them for a test server: PostgreSQL's documented
//! self-signed recipe (which OpenSSL marks CA:TRUE), and an expired one. Each is a fresh
//! server.crt and server.key in its own directory, readable by the `postgres` user.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use super::postgres::run_ok;
use super::require_program;

/// A certificate, its key, and the directory that holds them (removed on drop).
pub struct CertFiles {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// PostgreSQL's documentation recipe ("Creating Certificates"), as written there but for the
/// name: `openssl req -new -x509 -days 365 -nodes -text -out server.crt -keyout server.key
/// -subj "/CN=localhost"`. An RSA key, CA:TRUE, no subjectAltName, and the certificate's text
/// dump before its PEM block.
pub fn postgres_docs_recipe() -> CertFiles {
    let files = new_files();
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "365", "-nodes", "-text"])
            .arg("-out")
            .arg(&files.cert)
            .arg("-keyout")
            .arg(&files.key)
            .args(["-subj", "/CN=localhost"]),
    );
    give_to_server(&files);
    files
}

/// A self-signed CA:TRUE certificate for localhost that was valid on 1 January 2020 only
/// (`openssl req` cannot date a certificate in the past; `openssl ca -selfsign` can).
pub fn expired() -> CertFiles {
    let files = new_files();
    let dir = files.dir.path();
    let request = dir.join("server.csr");
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&request),
    );
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let config = dir.join("ca.cnf");
    std::fs::write(
        &config,
        format!(
            "[ca]\ndefault_ca = dated\n[dated]\ndatabase = {dir}/index.txt\n\
             new_certs_dir = {dir}\nserial = {dir}/serial\ndefault_md = sha256\n\
             policy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new("openssl")
            .args(["ca", "-batch", "-selfsign", "-notext"])
            .arg("-config")
            .arg(&config)
            .arg("-keyfile")
            .arg(&files.key)
            .arg("-in")
            .arg(&request)
            .arg("-out")
            .arg(&files.cert)
            .args([
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
            ]),
    );
    give_to_server(&files);
    files
}

/// A directory that every user can enter (PostgreSQL runs as `postgres`), under /tmp.
fn new_files() -> CertFiles {
    require_program("/usr/bin/openssl", "openssl");
    let dir = tempfile::Builder::new()
        .prefix("initbox-cert-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    CertFiles { dir, cert, key }
}

/// PostgreSQL refuses a key that others can read, and must own it when it is not root.
fn give_to_server(files: &CertFiles) {
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&files.cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    if let Ok(Some(user)) = nix::unistd::User::from_name("postgres") {
        std::os::unix::fs::chown(&files.key, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .unwrap();
    }
}
