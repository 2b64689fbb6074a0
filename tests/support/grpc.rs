//! Real gRPC servers for tests: grpcio (from PyPI, in .venv) with the standard health service,
//! whose statuses a test switches while initbox waits.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::require_program;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/grpc_health_server.py"
);

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// A running server, killed on drop.
pub struct GrpcServer {
    pub port: u16,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GrpcServer {
    /// A plain-text server; `statuses` are `("service", "SERVING")` pairs, "-" for the server.
    pub fn start(statuses: &[(&str, &str)]) -> GrpcServer {
        GrpcServer::launch(&[], statuses)
    }

    /// A TLS server with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path, statuses: &[(&str, &str)]) -> GrpcServer {
        let tls = ["--tls".to_string(), path_text(cert), path_text(key)];
        GrpcServer::launch(&tls, statuses)
    }

    /// A gRPC server without the health service.
    pub fn start_without_health() -> GrpcServer {
        GrpcServer::launch(&["--no-health".to_string()], &[])
    }

    fn launch(options: &[String], statuses: &[(&str, &str)]) -> GrpcServer {
        require_program(
            python().to_str().unwrap(),
            "python3-venv (scripts/setup installs grpcio into .venv)",
        );
        let mut child = Command::new(python())
            // grpcio logs every rejected TLS handshake at info level.
            .env("GRPC_VERBOSITY", "ERROR")
            .arg(SCRIPT)
            .args(options)
            .args(
                statuses
                    .iter()
                    .map(|(service, status)| format!("{service}={status}")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gRPC server");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the gRPC server did not print its port: {line:?}"));
        GrpcServer {
            port,
            child,
            stdin,
            stdout,
        }
    }

    /// Sets a service's status ("-" for the server) and returns once the server has it.
    pub fn set(&mut self, service: &str, status: &str) {
        writeln!(self.stdin, "{service} {status}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok", "setting {service} to {status}");
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}
