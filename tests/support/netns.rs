//! A private network namespace (root only), for faults that must not touch the host's network:
//! an iptables DROP rule on a loopback port makes connects hang, as a blackholed Service does.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct NetNs {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    pub fn new() -> NetNs {
        let name = format!(
            "initbox-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(Command::new("ip").args(["netns", "add", &name]));
        let netns = NetNs { name };
        sh(netns.exec("ip").args(["link", "set", "lo", "up"]));
        netns
    }

    /// Connections to 127.0.0.1:PORT inside the namespace are never answered.
    pub fn blackhole(&self, port: u16) {
        sh(self.exec("iptables").args([
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            "DROP",
        ]));
    }

    /// A command that runs inside the namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn sh(command: &mut Command) {
    let output = command.output().expect("run ip/iptables");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
