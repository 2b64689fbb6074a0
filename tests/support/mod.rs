//! Test support: running the built binary, free ports, and real servers (dnsmasq, network
//! namespaces) started for a test and stopped when it ends; the Kubernetes node of
//! scripts/kube-up for the end-to-end tests.

#![allow(dead_code)]

pub mod certs;
pub mod dnsmasq;
pub mod expect;
pub mod faults;
pub mod feed;
pub mod grpc;
pub mod http;
pub mod kube;
pub mod mariadb;
pub mod migrate;
pub mod migration_tools;
pub mod netns;
pub mod nginx;
pub mod openbao;
pub mod postgres;
pub mod redis;
pub mod waiting;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The initbox binary under test, with no INITBOX_* settings inherited from the environment and
/// no termination log unless a test asks for one.
pub fn initbox() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_initbox"));
    for (key, _) in std::env::vars() {
        if key.starts_with("INITBOX_") {
            command.env_remove(key);
        }
    }
    command.env("INITBOX_TERMINATION_LOG", "");
    command.stdin(Stdio::null());
    command
}

/// What a finished run left behind.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// The last line on stderr: the final event.
    pub fn last_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }

    /// Asserts a permanent failure (exit 1) that came at once, its final line naming `text`.
    pub fn expect_failed_at_once(&self, text: &str) {
        self.expect_code(1);
        assert!(self.elapsed < Duration::from_secs(10), "{:?}", self.elapsed);
        assert!(self.last_line().contains(text), "{}", self.stderr);
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a command to the end (killed after 60 s so a hung test fails instead of hanging CI).
pub fn run(command: &mut Command) -> Run {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(child, started)
}

/// Collects a child started by the test (for tests that signal it or act while it waits).
/// The pipes are drained on threads so a chatty child never blocks on a full pipe.
pub fn finish(mut child: Child, started: Instant) -> Run {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process still running after 60s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed,
    }
}

/// Starts a command with piped output, for tests that act while it runs.
pub fn spawn(command: &mut Command) -> (Child, Instant) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    (child, Instant::now())
}

/// A port on 127.0.0.1 that nothing listens on (bound and released; the kernel does not hand it
/// out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Root-only tests print why they did not run instead of failing where they cannot.
pub fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: needs root (network namespaces, mounts)");
        return true;
    }
    false
}

pub fn require_program(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the Debian package {package} (.ci/run does)"
    );
}

/// What is in a directory, by name, sorted: to check that a failed run left nothing behind.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        found.push(entry.unwrap().file_name().to_string_lossy().into_owned());
    }
    found.sort();
    found
}

/// Polls `condition` every 10 ms for up to 10 s.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
