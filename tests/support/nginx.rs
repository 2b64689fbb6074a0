//! Debian's nginx, started for one test with a generated config on free loopback ports: plain
//! HTTP, and HTTPS with HTTP/2 and a certificate from a private CA. Serves Range (206, 416),
//! ETag and Last-Modified for real; a few locations give the cases tests need (no ranges, no
//! ETag, a slow download, a token-gated path, a redirect to another host name). Stopped on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, require_program};

const NGINX: &str = "/usr/sbin/nginx";
/// The bearer token the `/private/` location wants.
pub const TOKEN: &str = "t0ken-Zq9";

pub struct Nginx {
    pub port: u16,
    pub tls_port: u16,
    /// The document root: files written here are served at `/NAME`.
    pub root: PathBuf,
    /// The private CA that signed the server's certificate (for `--ca`).
    pub ca_cert: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    pub fn start() -> Nginx {
        require_program(NGINX, "nginx");
        let dir = tempfile::Builder::new()
            .prefix("initbox-nginx-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir(&root).unwrap();
        for temp in ["client", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir(dir.path().join(temp)).unwrap();
        }
        let ca_cert = private_ca_and_server_cert(dir.path());
        for _ in 0..3 {
            let (port, tls_port) = (free_port(), free_port());
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port, tls_port)).unwrap();
            let mut child = Command::new(NGINX)
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
                {
                    return Nginx {
                        port,
                        tls_port,
                        root,
                        ca_cert,
                        dir,
                        child,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not start: {}",
                    error_log(dir.path())
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "nginx exited at start three times: {}",
            error_log(dir.path())
        );
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `https://localhost:TLS_PORT{path}` (HTTP/2 offered).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls_port)
    }

    /// Writes a file into the document root and returns its content.
    pub fn put(&self, name: &str, content: &[u8]) {
        std::fs::write(self.root.join(name), content).unwrap();
    }

    /// One line per request: `STATUS METHOD URI host=HOST range=RANGE if_range=IF_RANGE
    /// auth=AUTHORIZATION proto=PROTOCOL` (empty for a header not sent).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

fn config(dir: &Path, port: u16, tls_port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format fetch escape=none '$status $request_method $uri host=$host range=$http_range if_range=$http_if_range auth=$http_authorization proto=$server_protocol';
    access_log {dir}/access.log fetch;
    client_body_temp_path {dir}/client;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {dir}/server.crt;
        ssl_certificate_key {dir}/server.key;
        root {dir}/www;
        location /noranges/ {{ max_ranges 0; alias {dir}/www/; }}
        location /noetag/ {{ etag off; alias {dir}/www/; }}
        location /slow/ {{ limit_rate 1m; alias {dir}/www/; }}
        location /private/ {{
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
            alias {dir}/www/;
        }}
        location /to-localhost/ {{ rewrite ^/to-localhost/(.*)$ http://localhost:{port}/private/$1 redirect; }}
        location /to-self/ {{ rewrite ^/to-self/(.*)$ /private/$1 redirect; }}
        location = /busy {{ add_header Retry-After 1 always; return 429; }}
    }}
}}
"#
    )
}

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1. Returns the CA's
/// certificate.
fn private_ca_and_server_cert(dir: &Path) -> PathBuf {
    require_program("/usr/bin/openssl", "openssl");
    let openssl = |command: &str| {
        let args: Vec<&str> = command.split_whitespace().collect();
        let output = Command::new("/usr/bin/openssl")
            .current_dir(dir)
            .args(&args)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {key} -days 2 -subj /CN=initbox-test-CA -keyout ca.key -out ca.crt"
    ));
    openssl(&format!(
        "req {key} -subj /CN=localhost -keyout server.key -out server.csr"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
         -extfile server.ext -out server.crt",
    );
    dir.join("ca.crt")
}
