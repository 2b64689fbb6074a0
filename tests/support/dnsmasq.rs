//! A real DNS server for tests: dnsmasq on a free loopback port, serving names from a hosts
//! directory that it re-reads live, so a name can appear while initbox is waiting for it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_program, wait_until};

pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";

pub struct Dnsmasq {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Serves `*.test`: names from the hosts directory, plus the fixed records below. Unknown
    /// names under `.test` get NXDOMAIN.
    pub fn start() -> Dnsmasq {
        require_program(DNSMASQ, "dnsmasq-base");
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hostsdir");
        std::fs::create_dir(&hosts).unwrap();
        std::fs::write(hosts.join("base"), "10.0.0.5 db.test\nfd00::5 db.test\n").unwrap();
        let port = free_port();
        let child = Command::new(DNSMASQ)
            .arg("--keep-in-foreground")
            .arg(format!("--port={port}"))
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
            ])
            .args([
                "--no-hosts",
                "--local=/test/",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--hostsdir={}", hosts.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg("--srv-host=_pg._tcp.db.test,db.test,5432")
            .arg("--cname=alias.test,db.test")
            .arg("--txt-record=config.test,\"ready=yes\"")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let dnsmasq = Dnsmasq { port, child, dir };
        wait_until("dnsmasq to answer", || dnsmasq.answers("db.test"));
        dnsmasq
    }

    pub fn nameserver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Adds a hosts file (`IP NAME` lines); dnsmasq picks it up without a signal.
    pub fn add_hosts(&self, file: &str, lines: &str) {
        let path = self.hosts_dir().join(file);
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, lines).unwrap();
        std::fs::rename(temp, path).unwrap();
    }

    fn hosts_dir(&self) -> PathBuf {
        self.dir.path().join("hostsdir")
    }

    fn answers(&self, name: &str) -> bool {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket
            .send_to(&query(name), ("127.0.0.1", self.port))
            .unwrap();
        let mut buf = [0u8; 512];
        socket.recv(&mut buf).is_ok()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal A query, to tell when the server is up without depending on initbox itself.
fn query(name: &str) -> Vec<u8> {
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}
