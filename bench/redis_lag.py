"""Detection lag of Redis waiters: how long after Redis has loaded its dataset each one exits 0.

    python3 redis_lag.py --initbox PATH --base DIR --scenario loading|states
                         [--runs 10] [--seed 1] [--keys 5000] [--json OUT.json]

A dump.rdb of KEYS keys (DEBUG POPULATE ... 100, SAVE) is made first in DIR. Scenarios:
  loading  each trial starts redis-server (password `pw`) on a copy of that RDB with
           `--key-load-delay 500 --loading-process-events-interval-bytes 1024`, so that it
           answers `LOADING Redis is loading the dataset in memory` for a few seconds; once it
           does, after a random 0.0-1.0 s, the tool is started. The reference moment is the
           server's log line "DB loaded from disk" (Redis logs it right after it clears its
           loading flag, with a wall-clock timestamp to the millisecond); the lag is the tool's
           exit (wall clock, seen through a pidfd) minus that. A tool that exits 0 before that
           line exists exited while the server was still loading: the trial fails.
  states   what redis-cli ping (with and without the password) and initbox wait-redis
           (--timeout 1s) say while the port is closed, while the server is LOADING and once it
           is ready, plus how long one check takes against a ready server.

Every tool sees the same seeded delays, in a shuffled order each round; a tool still running
30 s after it was started is killed and the trial fails. Prints Markdown on stdout; --json
writes every trial.
"""

import os
import shutil
import socket
import statistics
import sys
import time
from types import SimpleNamespace

import servers as S
from server_lag import (initbox_tools, kill, lag_table, lags_of, main, md_code, pooled,
                        printed, run_rounds, run_tool, seeded_delays, shell_loop, spawn,
                        spread_ms, timing_rows, wait_exit)

DEADLINE = 30.0  # seconds a tool may run in all
LOADING_ARGS = ["--key-load-delay", "500", "--loading-process-events-interval-bytes", "1024"]
LOADED = "DB loaded from disk"


def tools(initbox):
    ping = ('[ "$(redis-cli -h 127.0.0.1 -p "$1" -a pw --no-auth-warning ping)" = PONG ]')

    def port(target):
        return target.port

    return initbox_tools(initbox, "wait-redis") + [
        ("redis-cli ping loop, sleep 1",
         "`until [ \"$(redis-cli -h 127.0.0.1 -p PORT -a pw --no-auth-warning ping)\" = PONG ]; "
         "do sleep 1; done` (sh)",
         shell_loop(ping, 1, 30, port)),
        ("redis-cli ping loop, sleep 0.1", "the same with `sleep 0.1`",
         shell_loop(ping, 0.1, 300, port)),
        ("redis-cli ping poller, sleep 0.01", "the same with `sleep 0.01`: the tight poller",
         shell_loop(ping, 0.01, 3000, port)),
    ]


def redis_url(port):
    return f"redis://:{S.REDIS_PASSWORD}@{S.HOST}:{port}/0"


def start_loading(directory, rdb):
    """A server on the RDB, returned once it answers LOADING, with the wall-clock time of that."""
    server = S.RedisServer(directory, extra=LOADING_ARGS, rdb=rdb)
    try:
        server.wait_answering(lambda reply: reply.startswith("LOADING"))
    except BaseException:
        server.stop()
        raise
    return server, time.time()


def scenario_loading(args, rdb, catalog, delays, rng):
    count = [0]

    def one(label, argv_for, delay):
        count[0] += 1
        directory = os.path.join(args.base, f"trial-{count[0]}")
        server, loading_seen = start_loading(directory, rdb)
        proc = None
        try:
            time.sleep(delay)
            target = SimpleNamespace(port=server.port, url=redis_url(server.port))
            launched = time.time()
            proc = spawn(argv_for(target))
            exited = wait_exit(proc, DEADLINE)
            if exited is None:
                return {"delay_s": delay, "error": f"still running after {DEADLINE:.0f} s"}
            code = proc.wait(timeout=5)
            loaded = server.log_time(LOADED)
            if code != 0:
                return {"delay_s": delay, "error": f"exit code {code}"}
            if loaded is None or loaded > exited[1]:
                return {"delay_s": delay, "error": "exited 0 while the server was LOADING"}
            if loaded < launched:
                return {"delay_s": delay, "error": "loading ended before the tool started"}
            return {"delay_s": delay, "error": None,
                    "loading_ms": round((loaded - loading_seen) * 1000, 1),
                    "waited_ms": round((loaded - launched) * 1000, 1),
                    "lags_ms": {"loaded": round((exited[1] - loaded) * 1000, 3)}}
        finally:
            if proc is not None:
                kill(proc)
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)

    return run_rounds(catalog, delays, rng, one, "redis LOADING")


def lag_output(catalog, trials):
    table, failed = lag_table(catalog, trials, [("loaded", "\"DB loaded from disk\"")])
    loading = pooled(trials, "loading_ms")
    waited = pooled(trials, "waited_ms")
    poller = lags_of(trials, "redis-cli ping poller, sleep 0.01", "loaded")
    lines = [table, ""]
    if loading:
        lines.append(f"LOADING lasted {spread_ms(loading)} from the first "
                     f"LOADING reply to the log line; the tools had been waiting "
                     f"{statistics.median(waited):.0f} ms (median; min-max "
                     f"{min(waited):.0f}-{max(waited):.0f}) when it came, over all "
                     f"{len(loading)} successful trials.")
    if poller:
        lines.append(f"The tight redis-cli poller first saw PONG {statistics.median(poller):.0f}"
                     " ms (median) after the log line: what a client needs at least to notice.")
    return "\n".join(lines), failed


# --- states -------------------------------------------------------------------------------------

def checks(initbox, port):
    base = ["redis-cli", "-h", S.HOST, "-p", str(port)]
    return [
        ("redis-cli -a pw ping", "stdout", base + ["-a", S.REDIS_PASSWORD, "--no-auth-warning",
                                                   "ping"]),
        ("redis-cli ping (no password)", "stdout", base + ["ping"]),
        ("initbox wait-redis --timeout 1s", "stderr, last line",
         [initbox, "--timeout", "1s", "wait-redis", "--url", redis_url(port)]),
    ]


def state_rows(initbox, port, state, codes):
    """Table rows for one server state; codes[(state, label)] gets each exit code."""
    rows = []
    for label, stream, argv in checks(initbox, port):
        result, _ = run_tool(argv)
        codes[(state, label)] = result.returncode
        if stream == "stdout" and not result.stdout.strip():
            stream = "stderr"
        text = printed(result, stream)
        rows.append(f"| {state} | {label} | {result.returncode} | {md_code(text)} ({stream}) |")
    return rows


def round_trip_ms(port, count=10):
    """Median time of one PING round trip on an authenticated connection (raw RESP)."""
    times = []
    with socket.create_connection((S.HOST, port), timeout=10) as conn:
        reader = conn.makefile("rb")
        conn.sendall(f"AUTH {S.REDIS_PASSWORD}\r\n".encode())
        reader.readline()
        for _ in range(count):
            started = time.monotonic()
            conn.sendall(b"PING\r\n")
            reader.readline()
            times.append((time.monotonic() - started) * 1000)
    return statistics.median(times)


def verdict(codes):
    """A sentence on whether redis-cli ping's exit code tells LOADING from ready."""
    loading = codes[("LOADING", "redis-cli -a pw ping")]
    ready = codes[("ready", "redis-cli -a pw ping")]
    closed = codes[("port closed (server stopped)", "redis-cli -a pw ping")]
    if loading == ready:
        return (f"`redis-cli ping` exits {loading} on LOADING, as it does on PONG (and "
                f"{codes[('LOADING', 'redis-cli ping (no password)')]} on NOAUTH): its exit "
                "code does not tell a loading server from a ready one, so `until redis-cli "
                "ping; do sleep 1; done` stops at once while the dataset is still loading; only "
                f"comparing its output with PONG works. It exits {closed} when it cannot "
                "connect.")
    return (f"`redis-cli ping` exits {loading} on LOADING and {ready} on PONG here, so its exit "
            f"code alone tells them apart (and {closed} when it cannot connect).")


def scenario_states(args, rdb):
    rows = ["| server state | tool | exit code | what it prints |",
            "| --- | --- | ---: | --- |"]
    codes = {}
    server, _ = start_loading(os.path.join(args.base, "states"), rdb)
    try:
        rows += state_rows(args.initbox, server.port, "LOADING", codes)
        rtt_loading = round_trip_ms(server.port)
        if server.log_time(LOADED) is not None:
            raise S.ServerError("loading ended while the LOADING checks ran; use more --keys")
        server.wait_answering(lambda reply: reply == "PONG")
        rows += state_rows(args.initbox, server.port, "ready", codes)
        rtt_ready = round_trip_ms(server.port)
        timings = {}
        for _ in range(10):
            for label, _, argv in checks(args.initbox, server.port):
                if "no password" in label:
                    continue
                result, elapsed = run_tool(argv)
                if result.returncode != 0:
                    raise S.ServerError(f"{label} failed against a ready server")
                timings.setdefault(label, []).append(elapsed)
    finally:
        server.stop()
    rows += state_rows(args.initbox, server.port, "port closed (server stopped)", codes)
    slow = (f"While LOADING, one PING round trip on an open connection took {rtt_loading:.1f} ms "
            f"(median of 10), against {rtt_ready:.2f} ms once ready: a loading server answers "
            "clients only between chunks of the RDB file (every 1 KiB here, "
            "`--loading-process-events-interval-bytes 1024`), so each check that gets LOADING "
            "spends two such round trips (AUTH, then PING) in flight, and a check still in "
            "flight when loading ends is answered PONG at once. That is why some lags above are "
            "near 0 ms, for whichever tool happened to have a check in flight.")
    text = "\n".join(rows) + "\n\n" + verdict(codes) + "\n\n" + slow + "\n\nOne check " \
        "against the ready server, wall time (python3 subprocess, 10 runs per tool, " \
        "interleaved; initbox succeeds on its first attempt):\n\n" + "\n".join(timing_rows(timings))
    return text, {"timings_ms": timings, "round_trip_ms": {"loading": rtt_loading,
                                                           "ready": rtt_ready},
                  "exit_codes": {f"{state}: {label}": code
                                 for (state, label), code in codes.items()}}


def run(args):
    rdb = S.make_loading_rdb(args.base, args.keys)
    if args.scenario == "states":
        text, data = scenario_states(args, rdb)
        return text, data, False
    rng, delays = seeded_delays(args, 0.0, 1.0)
    catalog = tools(args.initbox)
    trials = scenario_loading(args, rdb, catalog, delays, rng)
    text, failed = lag_output(catalog, trials)
    return text, {"seed": args.seed, "keys": args.keys, "delays_s": delays,
                  "trials": trials}, failed


if __name__ == "__main__":
    sys.exit(main(__doc__, ["loading", "states"], run,
                  [("--keys", {"type": int, "default": 5000})]))
