//! A fault injector: a TCP proxy on loopback in front of a real server that cuts chosen
//! connections after a number of bytes of the server's answer, and raw servers that break the
//! protocol on purpose (a body shorter than its Content-Length).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct CuttingProxy {
    listener: Listener,
    connections: Arc<AtomicUsize>,
}

/// A listening thread, stopped on drop: the flag is raised and the thread woken by a
/// connection of its own.
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds a free loopback port and runs `serve` for every connection, one at a time.
    fn start(mut serve: impl FnMut(TcpStream) + Send + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        serve(stream);
                    }
                }
            })
        };
        Listener {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl CuttingProxy {
    /// Forwards to `upstream`; connection `n` is cut after `plan(n)` bytes from the server
    /// (`None`: forwarded whole). `on_cut` runs after each cut, before the next connection is
    /// accepted (a test changes the served file there).
    pub fn start(
        upstream: u16,
        plan: impl Fn(usize) -> Option<usize> + Send + Sync + 'static,
        on_cut: impl Fn(usize) + Send + Sync + 'static,
    ) -> CuttingProxy {
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = Listener::start(move |client| {
            let number = counter.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            if relay(client, server, plan(number)) {
                on_cut(number);
            }
        });
        CuttingProxy {
            listener,
            connections,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        self.listener.url(path)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Copies the client's bytes to the server on a thread and the server's back, up to `limit`;
/// returns whether it cut. Connections are handled one at a time, as a download makes them.
fn relay(client: TcpStream, server: TcpStream, limit: Option<usize>) -> bool {
    let upstream = {
        let (mut from, mut to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let (mut from, mut to) = (server, client);
    let mut sent = 0usize;
    let mut buf = [0u8; 16 * 1024];
    let mut cut = false;
    loop {
        let room = limit.map_or(buf.len(), |limit| (limit - sent).min(buf.len()));
        if room == 0 {
            cut = true;
            break;
        }
        match from.read(&mut buf[..room]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
    let _ = upstream.join();
    cut
}

/// A server that answers every request with `head` (status line and headers, ending in a blank
/// line) and `body`, then closes: the way to send fewer bytes than Content-Length says, or a
/// body with no length at all.
pub struct RawServer {
    listener: Listener,
}

impl RawServer {
    pub fn start(head: String, body: Vec<u8>) -> RawServer {
        let listener = Listener::start(move |mut stream| {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.shutdown(Shutdown::Both);
        });
        RawServer { listener }
    }

    pub fn url(&self, path: &str) -> String {
        self.listener.url(path)
    }
}
