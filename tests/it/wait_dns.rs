//! wait-dns against a real DNS server (dnsmasq): names that appear late, record types, record
//! counts, and the search list and ndots from /etc/resolv.conf.

use std::time::Duration;

use crate::support::dnsmasq::Dnsmasq;
use crate::support::{finish, initbox, run, skip_unless_root, spawn};

#[test]
fn a_name_that_appears_mid_wait_is_seen() {
    let dns = Dnsmasq::start();
    let (child, started) = spawn(initbox().args([
        "--timeout",
        "30s",
        "wait-dns",
        "--nameserver",
        &dns.nameserver(),
        "late.test",
    ]));
    std::thread::sleep(Duration::from_millis(800));
    dns.add_hosts("late", "10.1.2.3 late.test\n");
    let result = finish(child, started);
    result.expect_code(0);
    assert_eq!(result.stdout, "10.1.2.3\n");
    assert!(
        result
            .stderr
            .contains("late.test: not ready: no such name (NXDOMAIN)"),
        "{}",
        result.stderr
    );
}

#[test]
fn resolves_each_record_type() {
    let dns = Dnsmasq::start();
    let ns = dns.nameserver();
    let lookup = |kind: &str, name: &str| {
        let result = run(initbox().args([
            "--timeout",
            "10s",
            "wait-dns",
            "--nameserver",
            &ns,
            "--type",
            kind,
            name,
        ]));
        result.expect_code(0);
        result.stdout
    };
    assert_eq!(lookup("A", "db.test"), "10.0.0.5\n");
    assert_eq!(lookup("aaaa", "db.test"), "fd00::5\n");
    assert_eq!(lookup("CNAME", "alias.test"), "db.test.\n");
    assert_eq!(lookup("SRV", "_pg._tcp.db.test"), "0 0 5432 db.test.\n");
    assert!(lookup("TXT", "config.test").contains("ready=yes"));
    // Without --type, any address counts.
    let any = run(initbox().args(["wait-dns", "--nameserver", &ns, "db.test"]));
    any.expect_code(0);
    assert!(
        any.stdout.contains("10.0.0.5") && any.stdout.contains("fd00::5"),
        "{}",
        any.stdout
    );
}

#[test]
fn a_missing_record_type_is_waited_for_and_named() {
    let dns = Dnsmasq::start();
    let result = run(initbox().args([
        "--timeout",
        "500ms",
        "wait-dns",
        "--nameserver",
        &dns.nameserver(),
        "--type",
        "SRV",
        "nothing.test",
    ]));
    result.expect_code(124);
    assert!(
        result
            .stderr
            .contains("nothing.test (no such name (NXDOMAIN))"),
        "{}",
        result.stderr
    );
}

#[test]
fn min_records_waits_for_enough_pods_behind_a_headless_service() {
    let dns = Dnsmasq::start();
    dns.add_hosts("pods", "10.2.0.1 pods.test\n10.2.0.2 pods.test\n");
    let (child, started) = spawn(initbox().args([
        "--timeout",
        "30s",
        "wait-dns",
        "--nameserver",
        &dns.nameserver(),
        "--type",
        "A",
        "--min-records",
        "3",
        "pods.test",
    ]));
    std::thread::sleep(Duration::from_millis(800));
    dns.add_hosts(
        "pods",
        "10.2.0.1 pods.test\n10.2.0.2 pods.test\n10.2.0.3 pods.test\n",
    );
    let result = finish(child, started);
    result.expect_code(0);
    assert_eq!(result.stdout.lines().count(), 3, "{}", result.stdout);
    assert!(
        result
            .stderr
            .contains("pods.test: not ready: 2 of 3 records"),
        "{}",
        result.stderr
    );
}

#[test]
fn several_names_are_waited_for_together() {
    let dns = Dnsmasq::start();
    let result = run(initbox().args([
        "--timeout",
        "500ms",
        "wait-dns",
        "--nameserver",
        &dns.nameserver(),
        "db.test",
        "missing.test",
    ]));
    result.expect_code(124);
    let last = result.stderr_lines().last().unwrap().to_string();
    assert!(
        last.contains("not ready: missing.test (no such name (NXDOMAIN))"),
        "{last}"
    );
    assert!(!last.contains("db.test"), "{last}");
}

#[test]
fn search_list_and_ndots_from_resolv_conf_apply_to_every_type() {
    if skip_unless_root("search_list_and_ndots_from_resolv_conf_apply_to_every_type") {
        return;
    }
    // A pod-like resolv.conf in a private mount namespace: `db` must be found as `db.test`
    // through the search list, and an SRV name too (tools that drop the search list for
    // non-address types fail this).
    let dns = Dnsmasq::start();
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\nsearch ns1.test test\noptions ndots:5\n",
    )
    .unwrap();
    let lookup = |args: &str| {
        let script = format!(
            "mount --bind {} /etc/resolv.conf && exec {} --timeout 10s wait-dns --nameserver {} {args}",
            resolv.display(),
            env!("CARGO_BIN_EXE_initbox"),
            dns.nameserver()
        );
        let result = run(std::process::Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .env("INITBOX_TERMINATION_LOG", ""));
        result.expect_code(0);
        result.stdout
    };
    assert_eq!(lookup("--type A db"), "10.0.0.5\n");
    assert_eq!(lookup("--type SRV _pg._tcp.db"), "0 0 5432 db.test.\n");
}
