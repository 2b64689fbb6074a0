//! Real MariaDB 10.11 servers for tests (Debian's mariadb-server), each with its own port,
//! socket and data directory, run as the `mysql` user.
//!
//! mariadb-install-db takes seconds, so it runs once per test binary into a template directory
//! that each server copies (a copy takes milliseconds).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::postgres::{encode_userinfo, self_signed_cert};
use super::{free_port, require_program};

pub const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
const CLIENT: &str = "/usr/bin/mariadb";

/// Owner of database `shop`, password stored for mysql_native_password.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-s3cret";
pub const APP_DB: &str = "shop";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running mariadbd, killed and its directory removed on drop.
pub struct MariaDb {
    pub port: u16,
    /// The server's self-signed certificate (CN and SAN localhost, SAN IP 127.0.0.1), to trust
    /// as the CA.
    pub ca_cert: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A server's directory, before it runs: data copied from the template, TLS files beside it.
pub struct Prepared {
    pub port: u16,
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl MariaDb {
    /// A server on 127.0.0.1 with TLS and the `app` user and `shop` database, once it answers.
    pub fn start() -> MariaDb {
        MariaDb::start_with(&[])
    }

    /// Like `start`, with more server options.
    pub fn start_with(extra: &[&str]) -> MariaDb {
        let server = MariaDb::prepare().launch(extra);
        server.wait_ready();
        server
    }

    /// A data directory and a port, for a test that starts the server itself later (a wait
    /// that begins before the server exists).
    pub fn prepare() -> Prepared {
        require_program(MARIADBD, "mariadb-server");
        let dir = tempfile::Builder::new()
            .prefix("initbox-mariadb-")
            .tempdir_in(scratch_root())
            .unwrap();
        let data = dir.path().join("data");
        copy_tree(template(), &data);
        let (cert, key) = self_signed_cert(dir.path());
        give_to_mysql(dir.path());
        Prepared {
            port: free_port(),
            dir,
            cert,
            key,
        }
    }

    /// Runs SQL as root over the socket; panics with the client's error on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|error| panic!("{sql}: {error}\nserver log:\n{}", self.log_text()))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let output = Command::new(CLIENT)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `mysql://user:password@127.0.0.1:PORT/db`, user and password percent-encoded.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{db}",
            encode_userinfo(user),
            encode_userinfo(password),
            self.port
        )
    }

    /// Waits until root can run a query over the socket.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while self.try_sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Prepared {
    /// Starts mariadbd on this directory; `extra` are more server options. Returns at once.
    pub fn launch(self, extra: &[&str]) -> MariaDb {
        let base = self.dir.path();
        let socket = base.join("sock");
        let log = base.join("error.log");
        let child = Command::new("runuser")
            .args(["-u", "mysql", "--", MARIADBD, "--no-defaults"])
            .arg(format!("--datadir={}", base.join("data").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", base.join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--ssl-cert={}", self.cert.display()))
            .arg(format!("--ssl-key={}", self.key.display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=4M",
                "--innodb-flush-log-at-trx-commit=0",
                "--performance-schema=OFF",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        MariaDb {
            port: self.port,
            ca_cert: self.cert,
            socket,
            log,
            child,
            _dir: self.dir,
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // runuser's child is mariadbd; SIGKILL to runuser would orphan it, so the server is
        // killed by its pid file when it has one.
        let pid_file = self.socket.with_file_name("pid");
        if let Ok(pid) = fs::read_to_string(pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The system tables, the `app` user and the `shop` database, made once per test binary.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        require_program(INSTALL_DB, "mariadb-server");
        let dir = tempfile::Builder::new()
            .prefix("initbox-mariadb-template-")
            .tempdir_in(scratch_root())
            .unwrap()
            .keep();
        remove_at_exit(&dir);
        give_to_mysql(&dir);
        let data = dir.join("data");
        let output = Command::new(INSTALL_DB)
            .args([
                "--no-defaults",
                "--user=mysql",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--innodb-log-file-size=4M",
            ])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "mariadb-install-db failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Bootstrap mode reads one statement per line, with grants off until FLUSH PRIVILEGES.
        let setup = format!(
            "FLUSH PRIVILEGES;\n\
             CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}';\n\
             CREATE DATABASE {APP_DB};\n\
             GRANT ALL ON {APP_DB}.* TO '{APP_USER}'@'%';\n"
        );
        let mut bootstrap = Command::new("runuser")
            .args([
                "-u",
                "mysql",
                "--",
                MARIADBD,
                "--no-defaults",
                "--bootstrap",
            ])
            .arg(format!("--datadir={}", data.display()))
            .args(["--innodb-log-file-size=4M", "--skip-log-bin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        bootstrap
            .stdin
            .take()
            .unwrap()
            .write_all(setup.as_bytes())
            .unwrap();
        let output = bootstrap.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !log.contains("ERROR"),
            "mariadbd --bootstrap failed:\n{log}"
        );
        data
    })
}

/// Removes the template when the test binary exits (tests have no other shared teardown).
fn remove_at_exit(dir: &Path) {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove() {
        if let Some(dir) = DIR.get() {
            let _ = fs::remove_dir_all(dir);
        }
    }
    if DIR.set(dir.to_path_buf()).is_ok() {
        // SAFETY: registers a plain function with no arguments, as atexit(3) expects.
        unsafe { nix::libc::atexit(remove) };
    }
}

/// tmpfs when there is one (install and start write tens of MB), else the temporary directory.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn give_to_mysql(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "mysql:mysql"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown mysql {}", path.display());
    // tempfile makes directories 0700; mysql must reach its own below them.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}
