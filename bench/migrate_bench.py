"""Time to apply 200 small migrations to an empty database: initbox migrate vs sqlx-cli
(`sqlx migrate run`) vs psql applying the same files one by one; and 16 concurrent initbox
runners vs one. Real PostgreSQL 15 on 127.0.0.1 (servers.py). Writes a Markdown section to
the path given as the first argument.

    python3 migrate_bench.py OUT.md INITBOX SQLX
"""

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import servers

RUNS = 5
FILES = 200


def write_migrations(directory, files=FILES, dbmate_sections=False):
    """`files` files: a table, then inserts and ALTERs, the same SQL for every tool; with
    dbmate_sections, each wrapped in dbmate's `-- migrate:up` / `-- migrate:down`."""
    os.makedirs(directory)
    for n in range(1, files + 1):
        if n == 1:
            sql = "CREATE TABLE bench_items (id bigint PRIMARY KEY, note text);\n"
        elif n % 10 == 0:
            sql = f"ALTER TABLE bench_items ADD COLUMN c{n} int;\n"
        else:
            sql = f"INSERT INTO bench_items (id, note) VALUES ({n}, 'migration {n}');\n"
        if dbmate_sections:
            sql = f"-- migrate:up\n{sql}\n-- migrate:down\n"
        with open(os.path.join(directory, f"{n:04d}_step_{n}.sql"), "w") as handle:
            handle.write(sql)


@contextlib.contextmanager
def scratch_base(prefix):
    """A fresh directory for the servers (on /dev/shm where there is one); every server in it
    is stopped and it is removed afterwards."""
    base = tempfile.mkdtemp(prefix=prefix, dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        servers.stop_all(base)
        shutil.rmtree(base, ignore_errors=True)


def version(program):
    """What `program --version` prints, on one line."""
    return subprocess.run([program, "--version"], capture_output=True, text=True).stdout.strip()


def write_report(out, lines):
    """Writes the Markdown section to `out` and shows it."""
    with open(out, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


def fresh_database(primary, name):
    primary.psql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} OWNER app;")
    return servers.pg_url(primary.port, db=name, sslmode="disable")


def timed(argv, env=None):
    started = time.monotonic()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            timeout=300, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def psql_apply(url, directory):
    """psql applying each file in order, each in its own transaction (-1), like the others."""
    started = time.monotonic()
    for name in sorted(os.listdir(directory)):
        subprocess.run([f"{servers.PG_BIN}/psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1",
                        "-d", url, "-f", os.path.join(directory, name)], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
    return time.monotonic() - started


def concurrent(initbox, url, directory, runners):
    env = dict(os.environ, DATABASE_URL=url)
    started = time.monotonic()
    procs = [subprocess.Popen([initbox, "-q", "migrate", "--dir", directory],
                              env=dict(env, HOSTNAME=f"bench-{i}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(runners)]
    codes = [proc.wait(timeout=300) for proc in procs]
    elapsed = time.monotonic() - started
    if any(codes):
        raise SystemExit(f"a concurrent runner failed: {codes}")
    return elapsed


def summary(values):
    values = sorted(values)
    return statistics.median(values) * 1000, values[0] * 1000, values[-1] * 1000


def main():
    out, initbox, sqlx = sys.argv[1], sys.argv[2], sys.argv[3]
    with scratch_base("initbox-bench-migrate-") as base:
        primary = servers.PgPrimary(base)
        primary.setup()
        files = os.path.join(base, "migrations")
        write_migrations(files)
        results = {}
        tools = {
            "initbox migrate": lambda url: timed([initbox, "-q", "migrate", "--dir", files],
                                                 env=dict(os.environ, DATABASE_URL=url)),
            "sqlx migrate run": lambda url: timed([sqlx, "migrate", "run", "--source", files,
                                                   "--database-url", url]),
            "psql -1 -f per file": lambda url: psql_apply(url, files),
        }
        for run in range(RUNS):
            for name, apply in tools.items():
                url = fresh_database(primary, f"bench_{run}")
                results.setdefault(name, []).append(apply(url))
                count = primary.psql("SELECT count(*) FROM bench_items;", db=f"bench_{run}").strip()
                assert count == str(FILES - 1 - FILES // 10), f"{name} applied {count} rows"
        one, sixteen = [], []
        for run in range(RUNS):
            one.append(concurrent(initbox, fresh_database(primary, f"bench_c{run}"), files, 1))
            sixteen.append(concurrent(initbox, fresh_database(primary, f"bench_c{run}"), files, 16))
        base_median = statistics.median(results["initbox migrate"])
        lines = [
            "## migrate",
            "",
            f"Applying {FILES} small migrations (a CREATE TABLE, then INSERTs and ALTER TABLE ADD "
            "COLUMNs) to an empty database on PostgreSQL 15 on 127.0.0.1 (`bench/migrate`, "
            "`bench/migrate_bench.py`). Each tool runs each file in its own transaction and "
            "records it in its own ledger (psql has none: it only runs the files with "
            f"`psql -1 -f`, one process per file). {RUNS} runs each, a fresh database every time.",
            "",
            f"- initbox: {version(initbox)}",
            f"- sqlx-cli: {version(sqlx)} (`cargo install sqlx-cli --no-default-features --features postgres,rustls`)",
            f"- psql: {version(servers.PG_BIN + '/psql')}",
            f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}, {os.cpu_count()} CPUs",
            "",
            "| tool | median (ms) | min-max (ms) | ratio to initbox |",
            "| --- | ---: | --- | ---: |",
        ]
        for name, values in results.items():
            median, low, high = summary(values)
            lines.append(f"| {name} | {median:.0f} | {low:.0f}-{high:.0f} | "
                         f"{statistics.median(values) / base_median:.2f} |")
        m1, l1, h1 = summary(one)
        m16, l16, h16 = summary(sixteen)
        lines += [
            "",
            "Many replicas at once: the same 200 files, 1 runner vs 16 initbox runners started "
            "together against one empty database (time until the last one exits; every run "
            "applied each file exactly once, the others waited on the lock and then found "
            "nothing to do).",
            "",
            "| runners | median (ms) | min-max (ms) |",
            "| --- | ---: | --- |",
            f"| 1 | {m1:.0f} | {l1:.0f}-{h1:.0f} |",
            f"| 16 | {m16:.0f} | {l16:.0f}-{h16:.0f} |",
            "",
        ]
        write_report(out, lines)


if __name__ == "__main__":
    main()
