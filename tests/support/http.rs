//! HTTP endpoints for tests: a small HTTP/1.1 server on a thread whose answers a test decides
//! request by request, and a real TLS server (`openssl s_server`) with a self-signed certificate.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::postgres::self_signed_cert;
use super::{free_port, require_program};

/// The longest request head the server reads; a client sending more is answered 431.
const HEAD_LIMIT: usize = 64 * 1024;
/// How long a connection may take to send its request head before it is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 0 for the first request this server saw, then 1, 2, ...
    pub number: usize,
    pub method: String,
    /// The request target as sent (`/health?x=1`).
    pub path: String,
    /// Names as sent, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the server answers, and how long it waits before answering.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Response {
    /// `status` with its reason phrase as the body.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: format!("{} {}\n", status, reason(status)).into_bytes(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with `body`.
    pub fn ok(body: &str) -> Response {
        Response::status(200).body(body)
    }

    /// A redirect (301, 302, 303, 307, 308) to `location`.
    pub fn redirect(status: u16, location: &str) -> Response {
        Response::status(status).header("Location", location)
    }

    pub fn body(mut self, body: &str) -> Response {
        self.body = body.as_bytes().to_vec();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Waits this long after reading the request before answering.
    pub fn after(mut self, delay: Duration) -> Response {
        self.delay = delay;
        self
    }
}

/// The reason phrase for the codes tests use.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync + 'static;

/// State shared by the accept thread and the connection threads.
struct Shared {
    handler: Box<Handler>,
    stop: AtomicBool,
    seen: Mutex<Vec<Request>>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// An HTTP/1.1 server on 127.0.0.1 (a thread per connection, one request per connection),
/// stopped on drop.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts a server on a free port that answers each request with `handler`'s response.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            stop: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(&listener, &shared))
        };
        HttpServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Answers every request with `status`.
    pub fn always(status: u16) -> HttpServer {
        HttpServer::start(move |_| Response::status(status))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many request heads the server has read so far.
    pub fn requests(&self) -> usize {
        self.lock_seen().len()
    }

    /// Every request read so far, in order.
    pub fn received(&self) -> Vec<Request> {
        self.lock_seen().clone()
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for HttpServer {
    /// Raises the stop flag, wakes the accept thread with a connection of its own and waits for
    /// every thread (delays are cut short by the flag).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections = std::mem::take(
            &mut *self
                .shared
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for connection in connections {
            let _ = connection.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let worker = {
            let shared = shared.clone();
            std::thread::spawn(move || serve(stream, &shared))
        };
        shared
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(worker);
    }
}

/// Reads one request head, answers it and closes the connection. A client that goes away
/// early (an attempt that timed out) is not an error.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let head = match read_head(&mut stream) {
        Some(Ok(head)) => head,
        Some(Err(())) => {
            let _ = write_response(&mut stream, "GET", &Response::status(431));
            return;
        }
        None => return,
    };
    let Some(mut request) = parse_head(&head) else {
        let _ = write_response(&mut stream, "GET", &Response::status(400));
        return;
    };
    {
        let mut seen = shared
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        request.number = seen.len();
        seen.push(request.clone());
    }
    let response = (shared.handler)(&request);
    let until = Instant::now() + response.delay;
    while Instant::now() < until {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
    let _ = write_response(&mut stream, &request.method, &response);
}

/// The bytes up to the blank line that ends the head; None when the client closed or stalled
/// first, Err when the head is too long.
fn read_head(stream: &mut TcpStream) -> Option<Result<Vec<u8>, ()>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            head.truncate(end);
            return Some(Ok(head));
        }
        if head.len() > HEAD_LIMIT {
            return Some(Err(()));
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Some(Request {
        number: 0,
        method,
        path,
        headers,
    })
}

fn write_response(
    stream: &mut TcpStream,
    method: &str,
    response: &Response,
) -> std::io::Result<()> {
    // No body for HEAD, 1xx, 204 and 304, as HTTP/1.1 requires.
    let bodiless = matches!(response.status, 100..=199 | 204 | 304);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    out.push_str("Connection: close\r\n");
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !bodiless && !method.eq_ignore_ascii_case("HEAD") {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)
}

/// How long `openssl s_server` may take to accept connections.
const TLS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A real TLS server, `openssl s_server -www` on 127.0.0.1 (GET / answers 200 with a status
/// page), with a fresh self-signed certificate for `localhost` and 127.0.0.1. Killed on drop.
pub struct TlsServer {
    pub port: u16,
    /// The server's certificate, to trust as the CA (`--cacert`).
    pub ca_cert: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        require_program("/usr/bin/openssl", "openssl");
        let dir = tempfile::Builder::new()
            .prefix("initbox-https-")
            .tempdir()
            .unwrap();
        let (cert, key) = self_signed_cert(dir.path());
        TlsServer::start_with_cert(dir, cert, key)
    }

    /// The same server with a certificate and key the test made; `dir` is kept until drop.
    pub fn start_with_cert(dir: tempfile::TempDir, cert: PathBuf, key: PathBuf) -> TlsServer {
        require_program("/usr/bin/openssl", "openssl");
        // A port taken between free_port and s_server's bind makes s_server exit: try another.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new("/usr/bin/openssl")
                .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .args(["-www", "-quiet"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start openssl s_server");
            let deadline = Instant::now() + TLS_START_TIMEOUT;
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return TlsServer {
                        port,
                        ca_cert: cert,
                        child,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "openssl s_server did not accept on port {port} within {TLS_START_TIMEOUT:?}"
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("openssl s_server exited at start three times (ports taken?)");
    }

    /// `https://{host}:PORT/`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
