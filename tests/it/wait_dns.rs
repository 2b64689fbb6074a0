//! wait-dns against a real DNS server (dnsmasq): names that appear late, record types, record
//! counts, and the search list and ndots from /etc/resolv.conf.

use std::process::Command;
use std::time::Duration;

use crate::support::dnsmasq::Dnsmasq;
use crate::support::expect::Expect;
use crate::support::waiting::{run_changed_after, within};
use crate::support::{initbox, run, skip_unless_root};

/// `initbox --timeout TIMEOUT wait-dns --nameserver DNS ARGS...`.
fn wait_dns(dns: &Dnsmasq, timeout: &str, args: &[&str]) -> Command {
    let mut command = within(timeout, &["wait-dns", "--nameserver", &dns.nameserver()]);
    command.args(args);
    command
}

#[test]
fn a_name_that_appears_mid_wait_is_seen() {
    let dns = Dnsmasq::start();
    let result = run_changed_after(
        &mut wait_dns(&dns, "30s", &["late.test"]),
        Duration::from_millis(800),
        || dns.add_hosts("late", "10.1.2.3 late.test\n"),
    );
    result
        .expect_code(0)
        .expect_stderr("late.test: not ready: no such name (NXDOMAIN)");
    assert_eq!(result.stdout, "10.1.2.3\n");
}

#[test]
fn resolves_each_record_type() {
    let dns = Dnsmasq::start();
    let lookup = |kind: &str, name: &str| {
        let result = run(&mut wait_dns(&dns, "10s", &["--type", kind, name]));
        result.expect_code(0);
        result.stdout
    };
    assert_eq!(lookup("A", "db.test"), "10.0.0.5\n");
    assert_eq!(lookup("aaaa", "db.test"), "fd00::5\n");
    assert_eq!(lookup("CNAME", "alias.test"), "db.test.\n");
    assert_eq!(lookup("SRV", "_pg._tcp.db.test"), "0 0 5432 db.test.\n");
    assert!(lookup("TXT", "config.test").contains("ready=yes"));
    // Without --type, any address counts.
    let any = run(initbox().args(["wait-dns", "--nameserver", &dns.nameserver(), "db.test"]));
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
    let srv = ["--type", "SRV", "nothing.test"];
    run(&mut wait_dns(&dns, "500ms", &srv))
        .expect_code(124)
        .expect_stderr("nothing.test (no such name (NXDOMAIN))");
}

#[test]
fn min_records_waits_for_enough_pods_behind_a_headless_service() {
    let dns = Dnsmasq::start();
    let two = "10.2.0.1 pods.test\n10.2.0.2 pods.test\n";
    dns.add_hosts("pods", two);
    let result = run_changed_after(
        &mut wait_dns(
            &dns,
            "30s",
            &["--type", "A", "--min-records", "3", "pods.test"],
        ),
        Duration::from_millis(800),
        || dns.add_hosts("pods", &format!("{two}10.2.0.3 pods.test\n")),
    );
    result
        .expect_code(0)
        .expect_stderr("pods.test: not ready: 2 of 3 records");
    assert_eq!(result.stdout.lines().count(), 3, "{}", result.stdout);
}

#[test]
fn several_names_are_waited_for_together() {
    let dns = Dnsmasq::start();
    run(&mut wait_dns(&dns, "500ms", &["db.test", "missing.test"]))
        .expect_code(124)
        .expect_last_line("not ready: missing.test (no such name (NXDOMAIN))")
        .expect_last_line_without("db.test");
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
