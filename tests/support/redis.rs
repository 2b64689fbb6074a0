//! Real Redis 7 servers for tests: a child process per test, on its own loopback port.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::postgres::{encode_userinfo, self_signed_cert};
use super::{free_port, require_program};

/// From Debian's redis-server and redis-tools packages.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
pub const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// How long a server may take to start before the test fails with its log.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys in the dataset `start_loading` loads, and the delay per key (microseconds): together
/// about 4.5 s of LOADING (the sleep per key overshoots by ~25%).
const LOADING_KEYS: &str = "7000";
const KEY_LOAD_DELAY_US: &str = "500";

/// Who may run commands.
#[derive(Clone)]
enum Auth {
    /// Anyone may.
    None,
    /// `requirepass`: the default user's password.
    Password(String),
    /// An ACL user with every permission; the default user has another, unrelated password.
    AclUser {
        user: String,
        password: String,
        default_password: String,
    },
}

/// When a started server counts as ready.
#[derive(Clone, Copy, PartialEq)]
enum Ready {
    /// It answers PING (with anything: PONG, NOAUTH, LOADING).
    Answers,
    /// It answers PING with LOADING.
    Loading,
    /// It is a replica whose link to its master is up.
    LinkUp,
}

/// A running redis-server child process, killed and its directory removed on drop.
pub struct Redis {
    pub port: u16,
    /// The ACL user clients log in as, for `start_with_acl_user` (None: the default user).
    pub user: Option<String>,
    pub password: Option<String>,
    /// For TLS servers: the server's self-signed certificate, to trust as the root CA.
    pub ca_cert: Option<PathBuf>,
    auth: Auth,
    child: Child,
    dir: tempfile::TempDir,
    /// Holds the port an orphan replica's missing master would have, so that no other
    /// server can appear there.
    _missing_master: Option<TcpListener>,
}

impl Redis {
    /// No authentication, plain TCP on 127.0.0.1.
    pub fn start() -> Redis {
        launch(Launch::new(Auth::None))
    }

    /// The default user needs `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Redis {
        launch(Launch::new(Auth::Password(password.to_string())))
    }

    /// An ACL user `user` with password `password` and every permission (`on >pw ~* &* +@all`);
    /// the default user keeps working only with a different, random password.
    pub fn start_with_acl_user(user: &str, password: &str) -> Redis {
        launch(Launch::new(Auth::AclUser {
            user: user.to_string(),
            password: password.to_string(),
            default_password: format!("default-{}", random_suffix()),
        }))
    }

    /// TLS only (no plain port), no client certificates required; `ca_cert` is set.
    pub fn start_tls() -> Redis {
        let mut launch_options = Launch::new(Auth::None);
        launch_options.tls = TlsCert::New;
        launch(launch_options)
    }

    /// TLS only, with the server.crt and server.key found in `dir` (a certificate made by the
    /// test); `ca_cert` is its copy of server.crt.
    pub fn start_tls_with_cert(dir: &Path) -> Redis {
        let mut launch_options = Launch::new(Auth::None);
        launch_options.tls = TlsCert::CopyFrom(dir.to_path_buf());
        launch(launch_options)
    }

    /// A server that answers `LOADING Redis is loading the dataset in memory` for about 4.5 s
    /// after it starts, then PONG; returned as soon as it answers LOADING. With a password,
    /// unauthenticated clients get NOAUTH first (AUTH works while loading).
    pub fn start_loading(password: Option<&str>) -> Redis {
        let auth = match password {
            Some(password) => Auth::Password(password.to_string()),
            None => Auth::None,
        };
        let mut launch_options = Launch::new(auth);
        launch_options.rdb = Some(loading_rdb());
        // Each key sleeps; events (answering clients) are processed every 1 KiB read.
        launch_options.args = strings(&[
            "--key-load-delay",
            KEY_LOAD_DELAY_US,
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        launch_options.ready = Ready::Loading;
        launch(launch_options)
    }

    /// A replica of this server, returned once its link to this server is up. It has the same
    /// credentials as this server and, if this one uses TLS, TLS with the same certificate
    /// (replication included).
    pub fn start_replica_of(&self) -> Redis {
        let mut launch_options = Launch::new(self.auth.clone());
        let mut args = strings(&["--replicaof", "127.0.0.1", &self.port.to_string()]);
        match &self.auth {
            Auth::None => {}
            Auth::Password(password) => args.extend(strings(&["--masterauth", password])),
            Auth::AclUser { user, password, .. } => {
                args.extend(strings(&["--masteruser", user, "--masterauth", password]))
            }
        }
        if self.ca_cert.is_some() {
            launch_options.tls = TlsCert::CopyFrom(self.dir.path().to_path_buf());
            args.extend(strings(&["--tls-replication", "yes"]));
        }
        launch_options.args = args;
        launch_options.ready = Ready::LinkUp;
        launch(launch_options)
    }

    /// A replica whose master does not answer: `master_link_status:down` for as long as it
    /// runs. The master's port on 127.0.0.1 is held by a listener that never accepts, so the
    /// replica's connection never gets a reply (and no later server can take the port).
    pub fn start_orphan_replica() -> Redis {
        let missing_master = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = missing_master.local_addr().unwrap().port();
        let mut launch_options = Launch::new(Auth::None);
        launch_options.args = strings(&["--replicaof", "127.0.0.1", &port.to_string()]);
        let mut redis = launch(launch_options);
        redis._missing_master = Some(missing_master);
        redis
    }

    /// Runs redis-cli against this server (with its credentials and TLS settings) and returns
    /// its output without the final newline. Error replies (NOAUTH, LOADING...) are output too;
    /// panics only if redis-cli itself fails, e.g. cannot connect.
    pub fn cli(&self, args: &[&str]) -> String {
        self.client()
            .run(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// `redis://[user]:[password]@127.0.0.1:PORT/0` (credentials only when set; percent-encoded),
    /// `rediss://` for TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_cert.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let userinfo = match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                format!("{}:{}@", encode_userinfo(user), encode_userinfo(password))
            }
            (None, Some(password)) => format!(":{}@", encode_userinfo(password)),
            _ => String::new(),
        };
        format!("{scheme}://{userinfo}127.0.0.1:{}/0", self.port)
    }

    /// Whether the server still answers PING with LOADING.
    pub fn is_loading(&self) -> bool {
        self.client()
            .run(&["ping"])
            .is_ok_and(|reply| reply.starts_with("LOADING"))
    }

    /// Whether this replica's link to its master is up (`master_link_status:up`).
    pub fn master_link_up(&self) -> bool {
        self.client().master_link_up()
    }

    /// redis-cli settings for this server.
    fn client(&self) -> Client {
        Client {
            port: self.port,
            auth: self.auth.clone(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

impl Drop for Redis {
    /// Kills the server (no shutdown save); the TempDir then removes its files.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a TLS server's certificate comes from.
enum TlsCert {
    /// Plain TCP.
    Off,
    /// A fresh self-signed certificate.
    New,
    /// Copies server.crt and server.key from another server's directory.
    CopyFrom(PathBuf),
}

/// What `launch` starts.
struct Launch {
    auth: Auth,
    tls: TlsCert,
    /// A dump.rdb to load at startup.
    rdb: Option<&'static [u8]>,
    /// Extra redis-server arguments.
    args: Vec<String>,
    ready: Ready,
}

impl Launch {
    /// A plain server with `auth`, ready once it answers.
    fn new(auth: Auth) -> Launch {
        Launch {
            auth,
            tls: TlsCert::Off,
            rdb: None,
            args: Vec::new(),
            ready: Ready::Answers,
        }
    }
}

/// Starts redis-server in the foreground as a child and waits until it is ready. A port taken
/// between `free_port` and the server's bind (by another test, or a client's ephemeral port)
/// is retried with a new one.
fn launch(options: Launch) -> Redis {
    require_program(REDIS_SERVER, "redis-server");
    require_program(REDIS_CLI, "redis-tools");
    let dir = tempfile::Builder::new()
        .prefix("initbox-redis-")
        .tempdir()
        .unwrap();
    let ca_cert = match &options.tls {
        TlsCert::Off => None,
        TlsCert::New => Some(self_signed_cert(dir.path()).0),
        TlsCert::CopyFrom(source) => {
            for file in ["server.crt", "server.key"] {
                fs::copy(source.join(file), dir.path().join(file)).unwrap();
            }
            Some(dir.path().join("server.crt"))
        }
    };
    if let Some(rdb) = options.rdb {
        fs::write(dir.path().join("dump.rdb"), rdb).unwrap();
    }
    let log = dir.path().join("redis.log");
    let mut attempt = 0;
    let (port, child) = loop {
        attempt += 1;
        let port = free_port();
        let _ = fs::remove_file(&log);
        let mut child = server_command(&options, dir.path(), port, ca_cert.is_some())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let client = Client {
            port,
            auth: options.auth.clone(),
            ca_cert: ca_cert.clone(),
        };
        match wait_started(&mut child, &client, options.ready) {
            Ok(()) => break (port, child),
            Err(error) => {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Address already in use") && attempt < 3 {
                    continue;
                }
                panic!("{error}; log:\n{text}");
            }
        }
    };
    let (user, password) = match &options.auth {
        Auth::None => (None, None),
        Auth::Password(password) => (None, Some(password.clone())),
        Auth::AclUser { user, password, .. } => (Some(user.clone()), Some(password.clone())),
    };
    Redis {
        port,
        user,
        password,
        ca_cert,
        auth: options.auth,
        child,
        dir,
        _missing_master: None,
    }
}

/// The redis-server command line: loopback only, no persistence, files in `dir`, TLS files
/// (server.crt, server.key) from `dir` when `tls`.
fn server_command(options: &Launch, dir: &Path, port: u16, tls: bool) -> Command {
    let mut command = Command::new(REDIS_SERVER);
    command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--enable-debug-command", "local"])
        // A master otherwise waits 5 s for more replicas before a full sync.
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"));
    if tls {
        let cert = dir.join("server.crt");
        command
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(dir.join("server.key"))
            // Needed for TLS replication; clients need no certificate of their own.
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .args(["--tls-auth-clients", "no"]);
    } else {
        command.args(["--port", &port.to_string()]);
    }
    match &options.auth {
        Auth::None => {}
        Auth::Password(password) => {
            command.args(["--requirepass", password]);
        }
        Auth::AclUser {
            user,
            password,
            default_password,
        } => {
            // redis-server quotes each argument, so a password may contain spaces.
            command.args(["--requirepass", default_password]);
            command.args(["--user", user, "on", &format!(">{password}")]);
            command.args(["~*", "&*", "+@all"]);
        }
    }
    command.args(&options.args);
    command
}

/// Polls every 5 ms until the server is `ready`; Err if it exits or takes longer than
/// START_TIMEOUT (it is killed then).
fn wait_started(child: &mut Child, client: &Client, ready: Ready) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("redis-server exited ({status})"));
        }
        if client.is_ready(ready) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("redis-server not ready in time".to_string());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How redis-cli reaches one server.
struct Client {
    port: u16,
    auth: Auth,
    ca_cert: Option<PathBuf>,
}

impl Client {
    /// redis-cli's output (error replies included), or Err when redis-cli fails (cannot
    /// connect, bad TLS).
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(REDIS_CLI);
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        // REDISCLI_AUTH would log in with a password the test did not choose.
        command.env_remove("REDISCLI_AUTH");
        match &self.auth {
            Auth::None => {}
            Auth::Password(password) => {
                command.args(["--pass", password, "--no-auth-warning"]);
            }
            Auth::AclUser { user, password, .. } => {
                command.args(["--user", user, "--pass", password, "--no-auth-warning"]);
            }
        }
        if let Some(ca_cert) = &self.ca_cert {
            command.arg("--tls").arg("--cacert").arg(ca_cert);
        }
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            Ok(stdout.trim_end_matches('\n').to_string())
        } else {
            Err(format!(
                "redis-cli -p {} {args:?} failed: {}",
                self.port,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Whether the server has reached `ready` (false while redis-cli cannot connect).
    fn is_ready(&self, ready: Ready) -> bool {
        match ready {
            Ready::Answers => self.run(&["ping"]).is_ok_and(|reply| !reply.is_empty()),
            Ready::Loading => self
                .run(&["ping"])
                .is_ok_and(|reply| reply.starts_with("LOADING")),
            Ready::LinkUp => self.master_link_up(),
        }
    }

    /// `master_link_status:up` in INFO replication.
    fn master_link_up(&self) -> bool {
        self.run(&["info", "replication"]).is_ok_and(|info| {
            info.lines()
                .any(|line| line.trim() == "master_link_status:up")
        })
    }
}

/// The dump.rdb `start_loading` servers load: made once per test process by a throwaway
/// server (DEBUG POPULATE, SAVE), then copied into each server's directory.
fn loading_rdb() -> &'static [u8] {
    static RDB: OnceLock<Vec<u8>> = OnceLock::new();
    RDB.get_or_init(|| {
        let source = Redis::start();
        source.cli(&["debug", "populate", LOADING_KEYS, "key", "100"]);
        source.cli(&["save"]);
        fs::read(source.dir.path().join("dump.rdb")).unwrap()
    })
}

/// Owned copies of command-line arguments.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

/// A random suffix for passwords nobody is meant to know.
fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}
