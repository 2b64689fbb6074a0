//! Real PostgreSQL 15 servers for tests, each with its own port, socket and data directory.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_port, is_root, require_program};

/// Where Debian's postgresql-15 package puts the server programs (psql too: the /usr/bin one is
/// a Perl wrapper that costs a few tens of milliseconds per call).
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The superuser, created by initdb; local (socket) connections need no password.
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "pw";
/// Owner of database `app`; password stored as SCRAM-SHA-256.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-secret";
pub const APP_DB: &str = "app";
/// Password stored as MD5, and pg_hba asks for `md5` authentication.
pub const MD5_USER: &str = "md5user";
pub const MD5_PASSWORD: &str = "md5-secret";
/// May only log in over TLS (pg_hba rejects it without TLS).
pub const SSL_ONLY_USER: &str = "ssl_only";
pub const SSL_ONLY_PASSWORD: &str = "ssl-secret";

/// How long a server may take to come up before the test fails with its log.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// First match wins, so the per-role lines (roles of the constants above) come before the
/// catch-all ones.
const PG_HBA: &str = "\
local all all trust
local replication all trust
hostssl all ssl_only 127.0.0.1/32 scram-sha-256
hostnossl all ssl_only 127.0.0.1/32 reject
host all md5user 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
";

/// The roles and database of the constants above. Separate statements (psql runs each on its
/// own) because CREATE DATABASE cannot run in a transaction; FILE_COPY because with fsync off
/// its checkpoints are cheap, ~30 ms faster than the default WAL_LOG.
fn setup_sql() -> String {
    format!(
        "CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
CREATE DATABASE {APP_DB} OWNER {APP_USER} STRATEGY FILE_COPY;
SET password_encryption = 'md5';
CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}';
RESET password_encryption;
CREATE ROLE {SSL_ONLY_USER} LOGIN PASSWORD '{SSL_ONLY_PASSWORD}';
"
    )
}

/// A running primary server, stopped (immediate mode) and deleted on drop.
pub struct Postgres {
    pub port: u16,
    pub sock_dir: PathBuf,
    /// The server's self-signed certificate (CN and SAN `localhost`, SAN IP 127.0.0.1), to be
    /// trusted as the root CA.
    pub ca_cert: PathBuf,
    data: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// A primary on 127.0.0.1 with TLS and the roles described by the constants above.
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// Like `start`, with extra postgresql.conf settings such as `("max_connections", "3")`;
    /// they come last, so they override the defaults set here.
    pub fn start_with(settings: &[(&str, &str)]) -> Postgres {
        Postgres::launch(settings, None)
    }

    /// Like `start`, on a given port: for clients that cannot be told one, such as the e2e
    /// pods, whose libpq settings name only a host (the port is the default 5432).
    pub fn start_on(port: u16) -> Postgres {
        Postgres::launch(&[], Some(port))
    }

    fn launch(settings: &[(&str, &str)], port: Option<u16>) -> Postgres {
        require_program(&format!("{BIN}/initdb"), "postgresql-15");
        require_program("/usr/bin/openssl", "openssl");
        let dir = server_dir("initbox-pg-");
        let base = dir.path().to_path_buf();
        let sock_dir = base.join("sock");
        fs::create_dir(&sock_dir).unwrap();
        let (cert, key) = self_signed_cert(&base);
        fs::write(base.join("pwfile"), SUPERUSER_PASSWORD).unwrap();
        give_to_postgres(&base);

        let data = base.join("data");
        run_ok(
            as_postgres("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", base.join("pwfile").display())),
        );

        let mut conf = vec![
            ("listen_addresses".to_string(), "127.0.0.1".to_string()),
            ("unix_socket_directories".into(), path_str(&sock_dir)),
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), path_str(&cert)),
            ("ssl_key_file".into(), path_str(&key)),
            // Durability is not under test, and these make initdb-to-ready much faster.
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            // So that max_connections can be tiny and every slot can be held (53300).
            ("superuser_reserved_connections".into(), "0".into()),
        ];
        conf.extend(
            settings
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        append_conf(&data, &conf);
        write_as_postgres(&data.join("pg_hba.conf"), PG_HBA);

        let log = base.join("log");
        let port = start_postmaster(&data, &log, "ready", port);
        let postgres = Postgres {
            port,
            sock_dir,
            ca_cert: cert,
            data,
            log,
            dir,
        };
        postgres.psql("postgres", &setup_sql());
        postgres
    }

    /// `postgres://user:password@127.0.0.1:PORT/db`, user and password percent-encoded.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        pg_url(self.port, user, password, db)
    }

    /// Runs SQL (one or more statements, each in its own transaction) as the superuser over the
    /// unix socket; returns psql's unaligned, tuples-only output. Panics with stderr on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.sock_dir, self.port, db, sql).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Stops the server (fast mode: sessions are ended) and waits until it has exited.
    pub fn stop(&self) {
        // -W and polling the pid file: pg_ctl's own wait checks only every 100 ms.
        run_ok(pg_ctl(&self.data).args(["stop", "-m", "fast", "-W"]));
        wait_for("the server to stop", &self.log, || {
            !pid_file(&self.data).exists()
        });
    }

    /// Starts the server again on the same port, waiting until it accepts connections (it is
    /// stopped first if it is still running).
    pub fn restart(&self) {
        if pid_file(&self.data).exists() {
            self.stop();
        }
        let _ = fs::remove_file(&self.log);
        run_ok(
            pg_ctl(&self.data)
                .args(["start", "-W", "-l"])
                .arg(&self.log),
        );
        wait_for("the server to accept connections", &self.log, || {
            pm_status(&self.data).as_deref() == Some("ready")
        });
    }

    /// A standby of this server that answers every connection with FATAL 57P03 "the database
    /// system is starting up" until `Standby::release`: it is a base backup without WAL and
    /// no source of WAL, so recovery cannot begin. Same certificate as this server.
    pub fn standby_stuck_starting(&self) -> Standby {
        let dir = server_dir("initbox-pg-standby-");
        let base = dir.path().to_path_buf();
        let sock_dir = base.join("sock");
        fs::create_dir(&sock_dir).unwrap();
        let ca_cert = base.join("server.crt");
        let key = base.join("server.key");
        fs::copy(&self.ca_cert, &ca_cert).unwrap();
        fs::copy(self.dir.path().join("server.key"), &key).unwrap();
        give_to_postgres(&base);

        let data = base.join("data");
        run_ok(
            as_postgres("pg_basebackup")
                .arg("-h")
                .arg(&self.sock_dir)
                .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-X", "none"])
                .args(["-c", "fast", "--no-sync", "-D"])
                .arg(&data),
        );
        append_conf(
            &data,
            &[
                ("unix_socket_directories".into(), path_str(&sock_dir)),
                ("ssl_cert_file".into(), path_str(&ca_cert)),
                ("ssl_key_file".into(), path_str(&key)),
                ("hot_standby".into(), "on".into()),
            ],
        );
        write_as_postgres(&data.join("standby.signal"), "");

        let log = base.join("log");
        // "starting" is written once the sockets listen; from then on, until recovery can
        // begin, every connection gets 57P03. pg_isready confirms it ("rejecting", exit 1).
        let port = start_postmaster(&data, &log, "starting", None);
        let standby = Standby {
            port,
            sock_dir,
            ca_cert,
            primary_sock_dir: self.sock_dir.clone(),
            primary_port: self.port,
            data,
            log,
            _dir: dir,
        };
        wait_for("the standby to reject connections", &standby.log, || {
            pg_isready(port) == 1
        });
        standby
    }

    /// Opens `n` sessions (as the superuser, over TCP with its password) that stay busy in
    /// `pg_sleep` until the handle is dropped: with `max_connections = n` every further
    /// connection fails with 53300 "sorry, too many clients already". Returns once all `n` are
    /// established; a session that cannot connect fails the test with psql's error.
    pub fn hold_connections(&self, n: usize) -> HeldConnections {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let application_name = format!(
            "initbox-hold-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres sslmode=disable \
             application_name={application_name}",
            self.port
        );
        let mut held = HeldConnections {
            children: Vec::new(),
            sock_dir: self.sock_dir.clone(),
            port: self.port,
            application_name,
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        for _ in 0..n {
            let mut child = pg_command("psql")
                .args([
                    "-X",
                    "-At",
                    "-c",
                    "SELECT 'held'",
                    "-c",
                    "SELECT pg_sleep(600)",
                ])
                .arg(&conninfo)
                .env("PGPASSWORD", SUPERUSER_PASSWORD)
                // A killed psql otherwise leaves its backend, and its slot, busy for the
                // whole pg_sleep; with this the server notices the closed socket quickly.
                .env("PGOPTIONS", "-c client_connection_check_interval=100ms")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start psql");
            // psql flushes each -c result, so the first line means the session is
            // established; EOF means psql gave up (its error is on stderr).
            let stdout = child.stdout.take().unwrap();
            let stderr = child.stderr.take().unwrap();
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let mut error = String::new();
                if line.trim() != "held" {
                    let _ = BufReader::new(stderr).read_to_string(&mut error);
                }
                let _ = ready_tx.send((line, error));
            });
            held.children.push(child);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for _ in 0..n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match ready_rx.recv_timeout(remaining) {
                Ok((line, _)) if line.trim() == "held" => {}
                Ok((_, error)) => panic!("holding a connection failed: {error}"),
                Err(_) => panic!("timed out holding {n} connections"),
            }
        }
        held
    }
}

impl Postgres {
    /// A session, as the superuser in `db`, that holds `pg_advisory_lock(key)` (as another
    /// migration tool would) until the returned child is killed or `seconds` pass. Returns once
    /// the lock is held.
    pub fn hold_advisory_lock(&self, db: &str, key: i64, seconds: u32) -> std::process::Child {
        let mut child = pg_command("psql")
            .args(["-X", "-At", "-c"])
            .arg(format!("SELECT pg_advisory_lock({key})"))
            .args(["-c", "SELECT 'held'", "-c"])
            .arg(format!("SELECT pg_sleep({seconds})"))
            .arg("-h")
            .arg(&self.sock_dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", db])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start psql");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The first -c prints an empty value for the void function, the second 'held'.
        let held = lines.any(|line| line.is_ok_and(|line| line.trim() == "held"));
        assert!(held, "psql could not take advisory lock {key}");
        child
    }
}

impl Drop for Postgres {
    /// Stops the server at once; the TempDir then removes its files.
    fn drop(&mut self) {
        stop_immediately(&self.data);
    }
}

/// A standby stuck in startup; see `Postgres::standby_stuck_starting`.
pub struct Standby {
    pub port: u16,
    pub sock_dir: PathBuf,
    /// A copy of the primary's certificate.
    pub ca_cert: PathBuf,
    primary_sock_dir: PathBuf,
    primary_port: u16,
    data: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Standby {
    /// Gives the standby its primary (over the primary's socket) and reloads; it then streams
    /// the missing WAL and accepts read-only connections some 30-110 ms later. Returns at
    /// once, so a client that is already waiting sees the change; `wait_ready` waits for it.
    pub fn release(&self) {
        append_conf(
            &self.data,
            &[(
                "primary_conninfo".into(),
                format!(
                    "host={} port={} user={SUPERUSER}",
                    self.primary_sock_dir.display(),
                    self.primary_port
                ),
            )],
        );
        run_ok(pg_ctl(&self.data).arg("reload"));
    }

    /// Waits until the standby accepts connections (after `release`).
    pub fn wait_ready(&self) {
        wait_for("the standby to accept connections", &self.log, || {
            pg_isready(self.port) == 0
        });
    }

    /// `postgres://user:password@127.0.0.1:PORT/db` for the standby.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        pg_url(self.port, user, password, db)
    }

    /// Runs SQL as the superuser over the standby's socket (read-only, once released).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.sock_dir, self.port, db, sql).unwrap_or_else(|error| panic!("{error}"))
    }
}

impl Drop for Standby {
    /// Stops the standby at once; the TempDir then removes its files.
    fn drop(&mut self) {
        stop_immediately(&self.data);
    }
}

/// Sessions held by `Postgres::hold_connections`; dropping ends them and waits (up to 5 s)
/// until the server has freed their slots.
pub struct HeldConnections {
    children: Vec<Child>,
    sock_dir: PathBuf,
    port: u16,
    application_name: String,
}

impl Drop for HeldConnections {
    /// Kills the psql processes, then ends their sessions and waits for the slots to be free.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Terminating the backends outright frees the slots without waiting for the
        // connection check; the loop ends when none is left or the server is gone.
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{}'",
            self.application_name
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match psql(&self.sock_dir, self.port, "postgres", &sql) {
                Ok(count) if count.trim() == "0" => return,
                Ok(_) => {}
                // No free slot yet (53300): try again. Any other failure (server stopped by
                // the test) leaves nothing to free.
                Err(error) if error.contains("too many clients") => {}
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Writes a fresh self-signed certificate and key (EC P-256, CN=localhost, SAN DNS:localhost
/// and IP:127.0.0.1) into `dir` as server.crt and server.key; returns their paths.
///
/// The certificate says CA:FALSE: OpenSSL's `req -x509` default of CA:TRUE makes rustls
/// (webpki) reject it as a server certificate (CaUsedAsEndEntity), while a CA:FALSE one is
/// accepted as its own trust anchor by rustls and OpenSSL (psql, redis-cli) alike. P-256
/// because generating an RSA key takes 50-500 ms and this one ~6 ms.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "keyUsage=critical,digitalSignature"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    // PostgreSQL refuses a key that others can read; the certificate is meant to be read by
    // clients, whichever user they run as.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
    (cert, key)
}

/// Percent-encodes a URL userinfo part (user or password): everything but RFC 3986 unreserved
/// characters.
pub fn encode_userinfo(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `postgres://user:password@127.0.0.1:PORT/db`.
fn pg_url(port: u16, user: &str, password: &str, db: &str) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/{db}",
        encode_userinfo(user),
        encode_userinfo(password)
    )
}

/// A private directory for one server.
///
/// On tmpfs (/dev/shm, when it has room) when possible: initdb and CREATE DATABASE write
/// tens of MB of files, and on this machine's ext4 /tmp that cost up to ~1 s of kernel time
/// per server (0.35 s on tmpfs). Otherwise in the temporary directory, if the `postgres` user
/// can reach it: a server running as `postgres` cannot use a data directory under, say, a
/// TMPDIR in /root, hence /tmp then.
fn server_dir(prefix: &str) -> tempfile::TempDir {
    let parent = [PathBuf::from("/dev/shm"), std::env::temp_dir()]
        .into_iter()
        .find(|dir| traversable_by_all(dir) && (dir != Path::new("/dev/shm") || roomy_tmpfs(dir)))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .unwrap();
    // Others may read the certificate (tests can run clients as another user).
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A tmpfs with at least 1 GiB free (a container's default 64 MB /dev/shm is too small for
/// several servers at once).
fn roomy_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|fs| {
        fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
            && fs.blocks_available() * fs.block_size() as u64 >= 1 << 30
    })
}

/// Whether every directory from `path` up to / lets others through (o+x).
fn traversable_by_all(path: &Path) -> bool {
    path.ancestors().all(|dir| {
        fs::metadata(dir)
            .map(|meta| meta.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// As root, the server's files must belong to `postgres` (initdb refuses to run as root).
fn give_to_postgres(path: &Path) {
    if !is_root() {
        return;
    }
    let user = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("a `postgres` user (created by the postgresql-15 package)");
    chown_tree(path, user.uid, user.gid);
}

/// chown -R.
fn chown_tree(path: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) {
    nix::unistd::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// Writes a file the server will read or own.
fn write_as_postgres(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap();
    give_to_postgres(path);
}

/// Appends `name = 'value'` lines; a later line for the same setting wins.
fn append_conf(data: &Path, settings: &[(String, String)]) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    let mut text = String::from("\n");
    for (name, value) in settings {
        text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    file.write_all(text.as_bytes()).unwrap();
}

/// A program from BIN with no PG* variables from the environment (PGHOST, PGSSLMODE, ...
/// would change where and how it connects).
fn pg_command(program: &str) -> Command {
    let mut command = Command::new(format!("{BIN}/{program}"));
    clear_pg_env(&mut command);
    command
}

/// A server program run as `postgres` when the tests run as root.
fn as_postgres(program: &str) -> Command {
    if !is_root() {
        return pg_command(program);
    }
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(format!("{BIN}/{program}"));
    clear_pg_env(&mut command);
    command
}

/// Removes every PG* variable the test process has from `command`'s environment.
fn clear_pg_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
}

/// `pg_ctl -D data`, as `postgres`.
fn pg_ctl(data: &Path) -> Command {
    let mut command = as_postgres("pg_ctl");
    command.arg("-D").arg(data);
    command
}

/// Starts the postmaster on `fixed_port`, or else a free port, and waits until postmaster.pid reports `status`
/// ("starting": listening but not ready; "ready"). A port taken between `free_port` and the
/// server's bind (by another test, or a client's ephemeral port) is retried with a new one.
fn start_postmaster(data: &Path, log: &Path, status: &str, fixed_port: Option<u16>) -> u16 {
    for attempt in 1.. {
        let port = fixed_port.unwrap_or_else(free_port);
        append_conf(data, &[("port".into(), port.to_string())]);
        let _ = fs::remove_file(log);
        // -W and polling the pid file: `pg_ctl -w` checks only every 100 ms, and would wait
        // forever for a standby that is meant to stay stuck.
        run_ok(pg_ctl(data).args(["start", "-W", "-l"]).arg(log));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if pm_status(data).as_deref() == Some(status) {
                return port;
            }
            let text = read_log(log);
            if text.contains("could not create any TCP/IP sockets") && attempt < 3 {
                wait_for("the failed server to exit", log, || {
                    !pid_file(data).exists()
                });
                break;
            }
            let failed = text
                .lines()
                .any(|line| line.contains("FATAL") && !line.contains("starting up"));
            if failed || Instant::now() > deadline {
                stop_immediately(data);
                panic!("PostgreSQL did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    unreachable!()
}

/// postmaster.pid: present from the postmaster's start until it has fully exited.
fn pid_file(data: &Path) -> PathBuf {
    data.join("postmaster.pid")
}

/// The postmaster's own status line in postmaster.pid (what `pg_ctl -w` reads): "starting",
/// "stopping", "ready" or "standby".
fn pm_status(data: &Path) -> Option<String> {
    let text = fs::read_to_string(pid_file(data)).ok()?;
    text.lines().nth(7).map(|line| line.trim().to_string())
}

/// Polls `condition` every 5 ms up to START_TIMEOUT; fails with the server log.
fn wait_for(what: &str, log: &Path, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !condition() {
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; server log:\n{}",
                read_log(log)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// pg_isready's exit code over TCP: 0 accepting, 1 rejecting (e.g. 57P03), 2 no answer.
fn pg_isready(port: u16) -> i32 {
    pg_command("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
        .status()
        .expect("run pg_isready")
        .code()
        .unwrap_or(2)
}

/// Stops the server at once, without a shutdown checkpoint, and waits (up to 5 s, never
/// panicking: this runs in Drop) for it to exit before its directory is removed.
fn stop_immediately(data: &Path) {
    let _ = pg_ctl(data)
        .args(["stop", "-m", "immediate", "-W"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_file(data).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// psql as the superuser over the socket (trust), the script on stdin, stopping at the first
/// error. Err carries psql's stderr, which includes the SQLSTATE-bearing server message.
fn psql(sock_dir: &Path, port: u16, db: &str, sql: &str) -> Result<String, String> {
    let mut child = pg_command("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
        ])
        .arg("-h")
        .arg(sock_dir)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    // psql may have exited already (cannot connect): its stderr says why, not the EPIPE.
    let _ = child.stdin.take().unwrap().write_all(sql.as_bytes());
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "psql -d {db} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Runs a command to the end; fails the test with its output if it does not succeed.
pub fn run_ok(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {:?}: {error}", command.get_program()));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The server log, or nothing if it is not there (yet).
fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// A path as a postgresql.conf value.
fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}
