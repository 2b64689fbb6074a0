"""200 migrate runners started at once against one PostgreSQL 15 with max_connections=100, as
200 replicas' init containers would: the first deploy (every file pending) and a restart
(nothing pending). For initbox, dbmate and sqlx-cli, and one initbox runner alone: time until
the last runner exits, how many failed, the peak number of client connections on the server,
and the most connections any one runner held. Writes a Markdown section to OUT.

    python3 migrate_replicas.py OUT.md INITBOX DBMATE SQLX
"""

import os
import statistics
import subprocess
import sys
import threading
import time

import servers
from migrate_bench import fresh_database, scratch_base, version, write_migrations, write_report

RUNNERS = 200
FILES = 50
RUNS = 3


class ConnectionWatch:
    """Samples pg_stat_activity every 10 ms over one superuser session (a reserved slot): the
    peak of client connections, and the most any one application_name held at once."""

    def __init__(self, primary):
        self.peak = 0
        self.per_runner = 0
        self.stop = threading.Event()
        self.psql = subprocess.Popen(
            [f"{servers.PG_BIN}/psql", "-X", "-At", "-h", primary.sock_dir, "-p", str(primary.port),
             "-U", servers.SUPERUSER, "-d", "postgres"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        query = ("SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                 "AND usename = 'app') || ' ' || coalesce((SELECT max(n) FROM (SELECT count(*) AS n "
                 "FROM pg_stat_activity WHERE usename = 'app' AND application_name <> '' "
                 "GROUP BY application_name) c), 0);\n")
        while not self.stop.is_set():
            self.psql.stdin.write(query)
            line = self.psql.stdout.readline().split()
            if len(line) == 2:
                self.peak = max(self.peak, int(line[0]))
                self.per_runner = max(self.per_runner, int(line[1]))
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join()
        self.psql.stdin.close()
        self.psql.wait()
        return self.peak, self.per_runner


def stampede(primary, argv_for, runners, env):
    """Starts `runners` processes at once; returns (seconds, failures, peak, per-runner peak)."""
    watch = ConnectionWatch(primary)
    started = time.monotonic()
    procs = [subprocess.Popen(argv_for(i), env=dict(env, HOSTNAME=f"replica-{i}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(runners)]
    codes = [proc.wait(timeout=600) for proc in procs]
    elapsed = time.monotonic() - started
    peak, per_runner = watch.finish()
    return elapsed, sum(1 for code in codes if code != 0), peak, per_runner


def main():
    out, initbox, dbmate, sqlx = sys.argv[1:5]
    with scratch_base("initbox-bench-replicas-") as base:
        primary = servers.PgPrimary(base)
        servers.append_conf(primary.data, [("max_connections", 100), ("superuser_reserved_connections", 3)])
        primary.setup()
        plain = os.path.join(base, "plain")
        sections = os.path.join(base, "dbmate")
        write_migrations(plain, FILES)
        write_migrations(sections, FILES, dbmate_sections=True)
        tools = {
            "initbox migrate, 1 runner": (1, lambda url, i: [initbox, "-q", "migrate", "--dir", plain]),
            f"initbox migrate, {RUNNERS} runners": (RUNNERS, lambda url, i: [initbox, "-q", "migrate", "--dir", plain]),
            # application_name tells each runner's connections apart in pg_stat_activity
            # (initbox names its own sessions).
            f"dbmate up, {RUNNERS} runners": (RUNNERS, lambda url, i: [dbmate, "--url", f"{url}&application_name=replica-{i}",
                                                                  "--migrations-dir", sections, "--no-dump-schema", "up"]),
            f"sqlx migrate run, {RUNNERS} runners": (RUNNERS, lambda url, i: [sqlx, "migrate", "run", "--source", plain,
                                                                         "--database-url", f"{url}&application_name=replica-{i}"]),
        }
        results = {}
        for run in range(RUNS):
            for name, (runners, argv) in tools.items():
                url = fresh_database(primary, f"bench_{run}")
                env = dict(os.environ, DATABASE_URL=url)
                for case in ("first deploy", "restart"):
                    results.setdefault((name, case), []).append(
                        stampede(primary, lambda i: argv(url, i), runners, env))
        lines = [
            "## migrate: every replica at once",
            "",
            f"{RUNNERS} runners started together against one PostgreSQL 15 with max_connections=100 "
            f"(3 reserved for superusers), as {RUNNERS} replicas' init containers would, on "
            f"127.0.0.1 (`bench/migrate-replicas`, `bench/migrate_replicas.py`). {FILES} small files "
            "(a CREATE TABLE, INSERTs and ALTER TABLE ADD COLUMNs). First deploy: an empty database, "
            "every file pending. Restart: the same runners again, nothing pending. Connections are "
            "sampled every 10 ms from pg_stat_activity. Median of "
            f"{RUNS} runs; failures are summed over the runs.",
            "",
            f"- initbox: {version(initbox)}",
            f"- dbmate: {version(dbmate)}",
            f"- sqlx-cli: {version(sqlx)}",
            f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine inflates the times)",
            "",
            "| tool | case | time until all exit (ms) | failed runners | peak server connections | most held by one runner |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for (name, case), samples in results.items():
            times = [sample[0] * 1000 for sample in samples]
            lines.append(
                f"| {name} | {case} | {statistics.median(times):.0f} | "
                f"{sum(sample[1] for sample in samples)} | {max(sample[2] for sample in samples)} | "
                f"{max(sample[3] for sample in samples)} |")
        lines.append("")
        write_report(out, lines)


if __name__ == "__main__":
    main()
