"""Real PostgreSQL 15 and Redis 7 servers for the benchmarks in bench/, on 127.0.0.1 only.

The recipes are those of tests/support/postgres.rs and tests/support/redis.rs: a self-signed
EC P-256 certificate with CA:FALSE, initdb as `postgres` (runuser), fsync/synchronous_commit/
full_page_writes off, superuser_reserved_connections=0, SCRAM logins over TCP; a standby
without WAL that answers 57P03 until it is given its primary; redis-server in the foreground
with --save '' and a populated RDB loaded with --key-load-delay for LOADING.

Used as a module by pg_lag.py, redis_lag.py; from the shell:

    python3 servers.py pg-primary DIR    initdb + start a primary in DIR/primary; prints its port
    python3 servers.py stop-all DIR      stops every PostgreSQL (immediate) and redis-server
                                         (by its pid file) found under DIR; for exit traps

Every wait here is bounded; nothing waits on anything but 127.0.0.1.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime

HOST = "127.0.0.1"  # the only address ever used
PG_BIN = "/usr/lib/postgresql/15/bin"  # the real programs (/usr/bin has Perl wrappers)
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"

SUPERUSER, SUPERUSER_PASSWORD = "postgres", "pw"
APP_USER, APP_PASSWORD, APP_DB = "app", "app-secret", "app"
REDIS_PASSWORD = "pw"

START_TIMEOUT = 30.0

PG_HBA = """\
local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""

SETUP_SQL = f"""\
CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
CREATE DATABASE {APP_DB} OWNER {APP_USER} STRATEGY FILE_COPY;
"""


class ServerError(Exception):
    pass


# --- common -----------------------------------------------------------------------------------

def clean_env(extra_path=None):
    """The environment for every program run here: no PG*, INITBOX_* or REDISCLI_AUTH setting
    from the caller (they would change where and how the tools connect)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PG", "INITBOX_")) and key != "REDISCLI_AUTH"}
    env["INITBOX_TERMINATION_LOG"] = ""
    if extra_path:
        env["PATH"] = f"{extra_path}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def run_ok(argv, stdin_text=None, timeout=60):
    result = subprocess.run(argv, input=stdin_text, capture_output=True, text=True,
                            timeout=timeout, env=clean_env())
    if result.returncode != 0:
        raise ServerError(f"{argv} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def wait_until(what, condition, timeout=START_TIMEOUT, every=0.005, log=None):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            text = read(log) if log else ""
            raise ServerError(f"timed out waiting for {what}" + (f"; log:\n{text}" if text else ""))
        time.sleep(every)


def read(path):
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def self_signed_cert(directory):
    """server.crt and server.key in `directory`: EC P-256, CN/SAN localhost, SAN IP 127.0.0.1,
    CA:FALSE (rustls rejects a CA:TRUE certificate as a server's)."""
    cert = os.path.join(directory, "server.crt")
    key = os.path.join(directory, "server.key")
    run_ok(["openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth",
            "-keyout", key, "-out", cert])
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


# --- PostgreSQL ---------------------------------------------------------------------------------

def is_root():
    return os.geteuid() == 0


def give_to_postgres(path):
    if not is_root():
        return
    shutil.chown(path, "postgres", "postgres")
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), "postgres", "postgres")


def as_postgres(program, *args):
    argv = [f"{PG_BIN}/{program}", *args]
    return ["runuser", "-u", "postgres", "--", *argv] if is_root() else argv


def append_conf(data, settings):
    text = "\n" + "".join(f"{name} = '{str(value).replace(chr(39), chr(39) * 2)}'\n"
                          for name, value in settings)
    with open(os.path.join(data, "postgresql.conf"), "a") as handle:
        handle.write(text)


def pid_file(data):
    return os.path.join(data, "postmaster.pid")


def pm_status(data):
    """Line 8 of postmaster.pid: starting, stopping, ready or standby (what pg_ctl -w reads)."""
    lines = read(pid_file(data)).splitlines()
    return lines[7].strip() if len(lines) > 7 else None


def postmaster_pid(data):
    lines = read(pid_file(data)).splitlines()
    return int(lines[0]) if lines and lines[0].strip().isdigit() else None


def pg_ctl(data, *args, timeout=60):
    return run_ok(as_postgres("pg_ctl", "-D", data, *args), timeout=timeout)


def pg_isready(port, timeout=2):
    """pg_isready's exit code over TCP: 0 accepting, 1 rejecting (e.g. 57P03), 2 no answer."""
    result = subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", HOST, "-p", str(port),
                             "-t", str(timeout)], env=clean_env(), capture_output=True,
                            timeout=timeout + 5)
    return result.returncode


def stop_immediately(data):
    """Stops a server at once (no checkpoint) and waits up to 10 s for it to exit."""
    if not os.path.exists(pid_file(data)):
        return
    subprocess.run(as_postgres("pg_ctl", "-D", data, "stop", "-m", "immediate", "-W"),
                   capture_output=True, env=clean_env(), timeout=30)
    deadline = time.monotonic() + 10
    while os.path.exists(pid_file(data)) and time.monotonic() < deadline:
        time.sleep(0.005)


def pg_url(port, user=APP_USER, password=APP_PASSWORD, db=APP_DB, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"postgres://{user}:{password}@{HOST}:{port}/{db}" + (f"?{query}" if query else "")


class PgPrimary:
    """A primary in BASE/primary with TLS, roles `postgres` (password pw) and `app` (SCRAM
    password app-secret, owner of database `app`)."""

    def __init__(self, base):
        self.base = os.path.join(base, "primary")
        os.makedirs(self.base)
        os.chmod(self.base, 0o755)
        self.sock_dir = os.path.join(self.base, "sock")
        os.mkdir(self.sock_dir)
        self.cert, self.key = self_signed_cert(self.base)
        with open(os.path.join(self.base, "pwfile"), "w") as handle:
            handle.write(SUPERUSER_PASSWORD)
        give_to_postgres(self.base)
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "log")
        run_ok(as_postgres("initdb", "-D", self.data, "-U", SUPERUSER, "--auth-local=trust",
                           "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                           "--no-sync", f"--pwfile={self.base}/pwfile"))
        self.port = free_port()
        append_conf(self.data, [
            ("listen_addresses", HOST),
            ("port", self.port),
            ("unix_socket_directories", self.sock_dir),
            ("ssl", "on"),
            ("ssl_cert_file", self.cert),
            ("ssl_key_file", self.key),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("superuser_reserved_connections", "0"),
        ])
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba, "w") as handle:
            handle.write(PG_HBA)
        give_to_postgres(hba)

    def start(self):
        """Starts the server (pg_ctl -W start: returns once the postmaster is launched)."""
        if os.path.exists(self.log):
            os.remove(self.log)
        pg_ctl(self.data, "start", "-W", "-l", self.log)

    def wait_ready(self):
        def ready():
            if pm_status(self.data) == "ready":
                return True
            if any("FATAL" in line and "starting up" not in line
                   for line in read(self.log).splitlines()):
                raise ServerError(f"PostgreSQL did not start:\n{read(self.log)}")
            return False
        wait_until("the server to accept connections", ready, log=self.log)

    def setup(self):
        """Starts, creates the roles and database, leaves it running."""
        self.start()
        self.wait_ready()
        self.psql(SETUP_SQL)

    def psql(self, sql, db="postgres"):
        return run_ok([f"{PG_BIN}/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h",
                       self.sock_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", db,
                       "-f", "-"], stdin_text=sql)

    def stop(self):
        """Fast shutdown, waiting until the postmaster has exited."""
        if not os.path.exists(pid_file(self.data)):
            return
        pg_ctl(self.data, "stop", "-m", "fast", "-W")
        wait_until("the server to stop", lambda: not os.path.exists(pid_file(self.data)),
                   log=self.log)

    def stop_immediately(self):
        stop_immediately(self.data)


class PgStandby:
    """A base backup of `primary` (no WAL: -X none) started as a hot standby with no source of
    WAL: every connection gets FATAL 57P03 "the database system is starting up" until
    release() gives it primary_conninfo and reloads."""

    def __init__(self, primary, base, port):
        self.primary = primary
        self.base = base
        os.makedirs(base)
        os.chmod(base, 0o755)
        self.sock_dir = os.path.join(base, "sock")
        os.mkdir(self.sock_dir)
        cert = os.path.join(base, "server.crt")
        key = os.path.join(base, "server.key")
        shutil.copy(primary.cert, cert)
        shutil.copy(primary.key, key)
        give_to_postgres(base)
        self.data = os.path.join(base, "data")
        self.log = os.path.join(base, "log")
        self.port = port
        run_ok(as_postgres("pg_basebackup", "-h", primary.sock_dir, "-p", str(primary.port),
                           "-U", SUPERUSER, "-X", "none", "-c", "fast", "--no-sync",
                           "-D", self.data))
        append_conf(self.data, [
            ("port", port),
            ("unix_socket_directories", self.sock_dir),
            ("ssl_cert_file", cert),
            ("ssl_key_file", key),
            ("hot_standby", "on"),
        ])
        signal_file = os.path.join(self.data, "standby.signal")
        open(signal_file, "w").close()
        give_to_postgres(signal_file)

    def start_held(self):
        """pg_ctl -W start, then waits until it listens and pg_isready says "rejecting"."""
        pg_ctl(self.data, "start", "-W", "-l", self.log)

        def starting():
            if any("FATAL" in line and "starting up" not in line
                   for line in read(self.log).splitlines()):
                raise ServerError(f"standby did not start:\n{read(self.log)}")
            return pm_status(self.data) == "starting"
        wait_until("the standby to listen", starting, log=self.log)
        wait_until("the standby to reject connections", lambda: pg_isready(self.port) == 1,
                   log=self.log)

    def release(self):
        """Gives the standby its primary (over the primary's socket) and reloads (pg_ctl reload:
        a SIGHUP to the postmaster). Returns as soon as the signal is sent."""
        append_conf(self.data, [("primary_conninfo",
                                  f"host={self.primary.sock_dir} port={self.primary.port} "
                                  f"user={SUPERUSER}")])
        pg_ctl(self.data, "reload")

    def stop_immediately(self):
        stop_immediately(self.data)


# --- Redis --------------------------------------------------------------------------------------

def redis_cli(port, *args, password=REDIS_PASSWORD, timeout=5):
    """redis-cli's (returncode, stdout without the final newline)."""
    argv = [REDIS_CLI, "-h", HOST, "-p", str(port)]
    if password is not None:
        argv += ["-a", password, "--no-auth-warning"]
    result = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                            env=clean_env(), stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout.rstrip("\n")


class RedisServer:
    """redis-server in the foreground, a child of this process, in its own directory."""

    def __init__(self, directory, password=REDIS_PASSWORD, extra=(), rdb=None):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        if rdb:
            shutil.copy(rdb, os.path.join(directory, "dump.rdb"))
        self.log = os.path.join(directory, "redis.log")
        self.password = password
        self.port = free_port()
        argv = [REDIS_SERVER, "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--enable-debug-command", "local",
                "--repl-diskless-sync-delay", "0", "--dir", directory,
                "--logfile", self.log, "--pidfile", os.path.join(directory, "redis.pid"),
                "--port", str(self.port)]
        if password is not None:
            argv += ["--requirepass", password]
        self.proc = subprocess.Popen(argv + list(extra), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=clean_env())

    def cli(self, *args):
        return redis_cli(self.port, *args, password=self.password)

    def wait_answering(self, accept=lambda reply: bool(reply), every=0.005):
        """Polls PING until `accept(reply)`; returns the monotonic time it did."""
        def answered():
            if self.proc.poll() is not None:
                raise ServerError(f"redis-server exited ({self.proc.returncode}):\n"
                                  f"{read(self.log)}")
            code, reply = self.cli("ping")
            return code == 0 and accept(reply)
        wait_until("redis-server to answer", answered, timeout=10, every=every, log=self.log)
        return time.monotonic()

    def log_time(self, needle):
        """The wall-clock time (epoch seconds) of the first log line containing `needle`, from
        the line's own millisecond timestamp, or None."""
        for line in read(self.log).splitlines():
            if needle in line:
                # "1234:M 21 Nov 2026 23:15:19.123 * DB loaded from disk: 3.012 seconds"
                parts = line.split()
                stamp = " ".join(parts[1:5])
                return datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").timestamp()
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def make_loading_rdb(directory, keys):
    """A dump.rdb of `keys` keys of 100 bytes (DEBUG POPULATE, SAVE) made by a throwaway
    server without a password; returns its path."""
    source = RedisServer(os.path.join(directory, "rdb-source"), password=None)
    try:
        source.wait_answering()
        code, reply = source.cli("debug", "populate", str(keys), "key", "100")
        if code != 0 or reply != "OK":
            raise ServerError(f"debug populate: {reply}")
        code, reply = source.cli("save")
        if code != 0 or reply != "OK":
            raise ServerError(f"save: {reply}")
    finally:
        source.stop()
    path = os.path.join(directory, "loading.rdb")
    shutil.move(os.path.join(source.dir, "dump.rdb"), path)
    shutil.rmtree(source.dir, ignore_errors=True)
    return path


# --- clean-up and command line ---------------------------------------------------------------

def stop_all(base):
    """Every PostgreSQL data directory (postmaster.pid) under base: immediate stop. Every
    redis.pid under base whose process is still a redis-server: SIGKILL."""
    for root, dirs, files in os.walk(base):
        if "postmaster.pid" in files:
            stop_immediately(root)
            dirs[:] = []
            continue
        if "redis.pid" in files:
            pid = read(os.path.join(root, "redis.pid")).strip()
            if pid.isdigit() and read(f"/proc/{pid}/comm").startswith("redis-server"):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def exit_on_signals():
    """SIGTERM (and SIGHUP) end the program through SystemExit, so `finally` blocks run and
    stop the servers."""
    def leave(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


def main(argv):
    if len(argv) == 3 and argv[1] == "pg-primary":
        primary = PgPrimary(argv[2])
        try:
            primary.setup()
        except BaseException:
            primary.stop_immediately()
            raise
        print(primary.port)
        return 0
    if len(argv) == 3 and argv[1] == "stop-all":
        stop_all(argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
