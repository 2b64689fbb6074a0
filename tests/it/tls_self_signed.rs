//! A self-signed server certificate that is its own trust anchor, made as PostgreSQL's
//! documentation makes it (OpenSSL marks it CA:TRUE), through each TLS client against a real
//! server: wait-pg and migrate (verify-ca, verify-full), wait-redis (rediss://) and wait-http
//! (openssl s_server). A different self-signed certificate and an expired one are refused.

use crate::support::certs::{self, CertFiles};
use crate::support::http::TlsServer;
use crate::support::postgres::{APP_DB, APP_PASSWORD, APP_USER, Postgres};
use crate::support::redis::Redis;
use crate::support::{Run, initbox, run};

/// PostgreSQL serving `files`' certificate.
fn postgres_with(files: &CertFiles) -> Postgres {
    Postgres::start_with(&[
        ("ssl_cert_file", files.cert.to_str().unwrap()),
        ("ssl_key_file", files.key.to_str().unwrap()),
    ])
}

fn pg_url(pg: &Postgres, host: &str, sslmode: &str, root: &CertFiles) -> String {
    format!(
        "postgresql://{APP_USER}:{APP_PASSWORD}@{host}:{}/{APP_DB}?sslmode={sslmode}&sslrootcert={}",
        pg.port,
        root.cert.display()
    )
}

fn wait_pg(url: &str, timeout: &str) -> Run {
    run(initbox().args(["--timeout", timeout, "wait-pg", "--url", url]))
}

/// The final line of a run that did not get ready: the deadline, and the last reason.
fn refused(result: &Run) -> String {
    result.expect_code(124);
    result.stderr_lines().last().unwrap().to_string()
}

/// Asserts that a run did not get ready, its final line naming `reason`.
fn refused_for(result: &Run, reason: &str) {
    let line = refused(result);
    assert!(line.contains(reason), "expected {reason:?} in: {line}");
}

/// Asserts that wait-pg with `root` as its trust anchor refuses `pg` under both verifying
/// sslmodes, naming `reason`.
fn pg_refused_by_verify_ca_and_verify_full(pg: &Postgres, root: &CertFiles, reason: &str) {
    for sslmode in ["verify-ca", "verify-full"] {
        refused_for(
            &wait_pg(&pg_url(pg, "localhost", sslmode, root), "1s"),
            reason,
        );
    }
}

#[test]
fn postgres_docs_recipe_works_with_verify_ca_and_verify_full() {
    let recipe = certs::postgres_docs_recipe();
    let pg = postgres_with(&recipe);
    wait_pg(&pg_url(&pg, "localhost", "verify-full", &recipe), "10s").expect_code(0);
    wait_pg(&pg_url(&pg, "127.0.0.1", "verify-ca", &recipe), "10s").expect_code(0);

    // migrate through verify-full too.
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(
        migrations.path().join("001_orders.sql"),
        "CREATE TABLE recipe_orders (id int);\n",
    )
    .unwrap();
    let result = run(initbox()
        .env(
            "DATABASE_URL",
            pg_url(&pg, "localhost", "verify-full", &recipe),
        )
        .args(["--timeout", "20s", "migrate", "--dir"])
        .arg(migrations.path()));
    result.expect_code(0);
    assert_eq!(
        pg.psql(APP_DB, "SELECT count(*) FROM recipe_orders").trim(),
        "0"
    );

    // verify-full still checks the name: the certificate is for localhost (its CN, as libpq
    // reads a certificate without subjectAltName), not for 127.0.0.1.
    let line = refused(&wait_pg(
        &pg_url(&pg, "127.0.0.1", "verify-full", &recipe),
        "1s",
    ));
    assert!(
        line.contains(r#"not valid for name "127.0.0.1""#) && line.contains("localhost"),
        "{line}"
    );

    // Another certificate made the same way is not this server's.
    let other = certs::postgres_docs_recipe();
    pg_refused_by_verify_ca_and_verify_full(&pg, &other, "UnknownIssuer");
}

#[test]
fn postgres_with_an_expired_certificate_is_refused_as_expired() {
    let expired = certs::expired();
    let pg = postgres_with(&expired);
    pg_refused_by_verify_ca_and_verify_full(&pg, &expired, "certificate expired");
}

#[test]
fn redis_over_tls_with_the_recipe_certificate() {
    let recipe = certs::postgres_docs_recipe();
    let redis = Redis::start_tls_with_cert(recipe.dir.path());
    let url = format!("rediss://localhost:{}/0", redis.port);
    let wait_redis = |ca: &str, timeout: &str| {
        run(initbox().args([
            "--timeout",
            timeout,
            "wait-redis",
            "--url",
            &url,
            "--cacert",
            ca,
        ]))
    };
    wait_redis(recipe.cert.to_str().unwrap(), "10s").expect_code(0);
    let other = certs::postgres_docs_recipe();
    refused_for(
        &wait_redis(other.cert.to_str().unwrap(), "1s"),
        "UnknownIssuer",
    );
}

#[test]
fn https_with_the_recipe_certificate_and_with_an_expired_one() {
    let recipe = certs::postgres_docs_recipe();
    let cacert = recipe.cert.to_str().unwrap().to_string();
    let other = certs::postgres_docs_recipe();
    let server = TlsServer::start_with_cert(recipe.dir, recipe.cert, recipe.key);
    let wait_http = |ca: &str, url: &str, timeout: &str| {
        run(initbox().args(["--timeout", timeout, "wait-http", "--cacert", ca, url]))
    };
    wait_http(&cacert, &server.url("localhost"), "10s").expect_code(0);
    let by_name = wait_http(&cacert, &server.url("127.0.0.1"), "1s");
    refused_for(&by_name, "not valid for name");
    let other_ca = other.cert.to_str().unwrap();
    refused_for(
        &wait_http(other_ca, &server.url("localhost"), "1s"),
        "UnknownIssuer",
    );

    let expired = certs::expired();
    let cacert = expired.cert.to_str().unwrap().to_string();
    let server = TlsServer::start_with_cert(expired.dir, expired.cert, expired.key);
    let expired_run = wait_http(&cacert, &server.url("localhost"), "1s");
    refused_for(&expired_run, "certificate expired");
}
