"""Detection lag of PostgreSQL waiters: how long after PostgreSQL can answer each one exits 0.

    python3 pg_lag.py --initbox PATH --base DIR --scenario closed|starting|states
                      [--runs 10] [--seed 1] [--json OUT.json]

Scenarios (a primary is made in DIR first: initdb, TLS, SCRAM role `app`, database `app`):
  closed    the server is stopped (its port closed); each tool is started, and after a random
            0.5-2.0 s the server is started (`pg_ctl -W start`); the reference moment is taken
            just before that command runs.
  starting  each trial makes a standby (pg_basebackup -X none, standby.signal) that answers
            57P03 "the database system is starting up"; the tool is started, and after a
            random 0.5-2.0 s the standby is released (primary_conninfo + `pg_ctl reload`); the
            reference moment is taken when `pg_ctl reload` has sent its SIGHUP and returned.
  states    what pg_isready, psql -c 'SELECT 1' and initbox wait-pg (--timeout 1s) say while
            the port is closed and while the server answers 57P03, plus how long one check
            takes against a ready server.

In both lag scenarios a thread also reads postmaster.pid every 2 ms and notes when the server
marks itself ready (status line "ready"/"standby", what pg_ctl -w waits for): the lag is given
after the release/start and after that mark. Every tool sees the same seeded delays, in a
shuffled order each round; a tool still running 15 s after the release is killed and the trial
fails. Prints Markdown on stdout; --json writes every trial.
"""

import os
import shutil
import statistics
import sys
import threading
import time
from types import SimpleNamespace

import servers as S
from server_lag import (initbox_tools, kill, lag_table, lags_of, main, md_code, pooled,
                        printed, run_rounds, run_tool, seeded_delays, shell_loop, spawn,
                        spread_ms, timing_rows, wait_exit)

DEADLINE = 15.0  # seconds a tool may keep running after the release


def tools(initbox):
    isready = 'pg_isready -h 127.0.0.1 -p "$1" -U app -d app'
    psql = "psql -X -q -o /dev/null -c 'SELECT 1' \"$1\""

    def port(target):
        return target.port

    def url(target):
        return target.url

    return initbox_tools(initbox, "wait-pg") + [
        ("pg_isready loop, sleep 1",
         "`until pg_isready -h 127.0.0.1 -p PORT -U app -d app; do sleep 1; done` (sh)",
         shell_loop(isready, 1, 30, port)),
        ("pg_isready loop, sleep 0.1",
         "the same with `sleep 0.1`",
         shell_loop(isready, 0.1, 300, port)),
        ("psql probe, sleep 0.01",
         "`until psql -X -q -o /dev/null -c 'SELECT 1' URL; do sleep 0.01; done` (sh)",
         shell_loop(psql, 0.01, 3000, url)),
    ]


class ReadyMark(threading.Thread):
    """Notes the monotonic time at which postmaster.pid first says ready (or standby)."""

    def __init__(self, data):
        super().__init__(daemon=True)
        self.data = data
        self.at = None
        self.done = threading.Event()

    def run(self):
        end = time.monotonic() + 60
        while not self.done.is_set() and time.monotonic() < end:
            if S.pm_status(self.data) in ("ready", "standby"):
                self.at = time.monotonic()
                return
            time.sleep(0.002)

    def stop(self):
        self.done.set()
        self.join(timeout=5)


def finish(proc, released, mark):
    """Waits for the tool after the release; the trial's result."""
    exited = wait_exit(proc, DEADLINE - (time.monotonic() - released))
    if exited is None:
        return {"error": f"still running {DEADLINE:.0f} s after the release"}
    code = proc.wait(timeout=5)
    if code != 0:
        return {"error": f"exit code {code}"}
    mark.join(timeout=10)
    if mark.at is None:
        return {"error": "the server never marked itself ready"}
    return {"error": None,
            "server_ready_ms": round((mark.at - released) * 1000, 3),
            "lags_ms": {"release": round((exited[0] - released) * 1000, 3),
                        "ready": round((exited[0] - mark.at) * 1000, 3)}}


def scenario_closed(args, primary, catalog, delays, rng):
    target = SimpleNamespace(port=primary.port, url=S.pg_url(primary.port))
    primary.stop()

    def one(label, argv_for, delay):
        proc = spawn(argv_for(target), S.PG_BIN)
        launched = time.monotonic()
        mark = ReadyMark(primary.data)
        try:
            time.sleep(max(0.0, launched + delay - time.monotonic()))
            if proc.poll() is not None:
                return {"delay_s": delay, "error": f"exited {proc.returncode} before the start"}
            released = time.monotonic()
            mark.start()
            primary.start()
            result = finish(proc, released, mark)
            result["delay_s"] = round(released - launched, 4)
            return result
        finally:
            kill(proc)
            if mark.is_alive():
                mark.stop()
            primary.stop()

    return run_rounds(catalog, delays, rng, one, "pg closed")


def scenario_starting(args, primary, catalog, delays, rng):
    count = [0]

    def one(label, argv_for, delay):
        count[0] += 1
        standby = S.PgStandby(primary, os.path.join(args.base, f"standby-{count[0]}"),
                              S.free_port())
        proc = None
        mark = ReadyMark(standby.data)
        try:
            standby.start_held()
            target = SimpleNamespace(port=standby.port, url=S.pg_url(standby.port))
            proc = spawn(argv_for(target), S.PG_BIN)
            launched = time.monotonic()
            time.sleep(max(0.0, launched + delay - time.monotonic()))
            if proc.poll() is not None:
                return {"delay_s": delay,
                        "error": f"exited {proc.returncode} while the server answered 57P03"}
            mark.start()
            standby.release()
            released = time.monotonic()
            result = finish(proc, released, mark)
            result["delay_s"] = round(released - launched, 4)
            return result
        finally:
            if proc is not None:
                kill(proc)
            if mark.is_alive():
                mark.stop()
            standby.stop_immediately()
            shutil.rmtree(standby.base, ignore_errors=True)

    return run_rounds(catalog, delays, rng, one, "pg 57P03")


def lag_output(args, catalog, trials, what):
    table, failed = lag_table(catalog, trials,
                              [("release", what), ("ready", "the server's ready mark")])
    ready = pooled(trials, "server_ready_ms")
    probe = lags_of(trials, "psql probe, sleep 0.01", "release")
    lines = [table, ""]
    if ready:
        lines.append(f"The server marked itself ready {spread_ms(ready)} after {what}, over all "
                     f"{len(ready)} successful trials.")
    if probe:
        lines.append(f"The direct psql probe first succeeded {statistics.median(probe):.0f} ms "
                     f"(median) after {what}: the server's own start time as a client sees "
                     "it, which the other rows include too.")
    return "\n".join(lines), failed


# --- states -------------------------------------------------------------------------------------

def checks(initbox, port, user=S.APP_USER, db=S.APP_DB):
    url = S.pg_url(port, user=user, db=db)
    return [
        ("pg_isready", "stdout",
         ["pg_isready", "-h", S.HOST, "-p", str(port), "-U", user, "-d", db]),
        ("psql -c 'SELECT 1'", "stderr", ["psql", "-X", "-At", "-c", "SELECT 1", url]),
        ("initbox wait-pg --timeout 1s", "stderr, last line",
         [initbox, "--timeout", "1s", "wait-pg", "--url", url]),
    ]


def state_rows(initbox, port, state, codes, **who):
    """Table rows for one server state; codes[(state, label)] gets each exit code."""
    rows = []
    for label, stream, argv in checks(initbox, port, **who):
        result, _ = run_tool(argv, S.PG_BIN)
        codes[(state, label)] = result.returncode
        text = printed(result, stream)
        says_ready = "yes" if result.returncode == 0 else "no"
        rows.append(f"| {state} | {label} | {result.returncode} | {says_ready} "
                    f"| {stream}: {md_code(text)} |")
    return rows


STARTING = "57P03 starting up (standby held)"
CLOSED = "port closed (server stopped)"
READY = "ready (primary)"
NOBODY = "ready, but user `nobody` and database `nowhere` do not exist"


def verdict(codes):
    """Sentences on whether pg_isready and psql tell 57P03 and a closed port from ready."""
    out = []
    for label, name in (("pg_isready", "`pg_isready`"),
                        ("psql -c 'SELECT 1'", "`psql -c 'SELECT 1'`")):
        starting, closed = codes[(STARTING, label)], codes[(CLOSED, label)]
        ready = codes[(READY, label)]
        wrong = [state for state, code in (("57P03", starting), ("port closed", closed))
                 if code == ready]
        if wrong:
            out.append(f"{name} exits {ready} (as when ready) while {' and '.join(wrong)}: "
                       "a loop on its exit code stops too early.")
        else:
            out.append(f"{name} exits {starting} during 57P03 and {closed} while the port is "
                       f"closed, {ready} only once the server is ready: a loop on its exit code "
                       "does not stop early in either state.")
    if codes[(NOBODY, "pg_isready")] == codes[(READY, "pg_isready")]:
        out.append("But `pg_isready` does not log in: it exits "
                   f"{codes[(NOBODY, 'pg_isready')]} for a user and a database that do not "
                   "exist too.")
    return " ".join(out)


def scenario_states(args, primary):
    rows = ["| server state | tool | exit code | says ready? | what it prints |",
            "| --- | --- | ---: | --- | --- |"]
    # A ready server: one check each, timed (10 runs, interleaved), and what they print.
    timings = {}
    for _ in range(10):
        for label, _, argv in checks(args.initbox, primary.port):
            result, elapsed = run_tool(argv, S.PG_BIN)
            if result.returncode != 0:
                raise S.ServerError(f"{label} failed against a ready server:\n{result.stderr}")
            timings.setdefault(label, []).append(elapsed)
    codes = {}
    rows += state_rows(args.initbox, primary.port, READY, codes)
    rows += state_rows(args.initbox, primary.port, NOBODY, codes, user="nobody", db="nowhere")
    standby = S.PgStandby(primary, os.path.join(args.base, "standby-states"), S.free_port())
    try:
        standby.start_held()
        rows += state_rows(args.initbox, standby.port, STARTING, codes)
    finally:
        standby.stop_immediately()
    primary.stop()
    rows += state_rows(args.initbox, primary.port, CLOSED, codes)
    text = "\n".join(rows) + "\n\n" + verdict(codes) + "\n\nOne check against the ready " \
        "primary, wall time (python3 subprocess, 10 runs per tool, interleaved; initbox " \
        "succeeds on its first attempt):\n\n" + "\n".join(timing_rows(timings))
    return text, {"timings_ms": timings,
                  "exit_codes": {f"{state}: {label}": code
                                 for (state, label), code in codes.items()}}


def run(args):
    primary = S.PgPrimary(args.base)
    primary.setup()
    if args.scenario == "states":
        text, data = scenario_states(args, primary)
        return text, data, False
    rng, delays = seeded_delays(args, 0.5, 2.0)
    catalog = tools(args.initbox)
    if args.scenario == "closed":
        trials = scenario_closed(args, primary, catalog, delays, rng)
        text, failed = lag_output(args, catalog, trials, "the start")
    else:
        trials = scenario_starting(args, primary, catalog, delays, rng)
        text, failed = lag_output(args, catalog, trials, "the release")
    return text, {"seed": args.seed, "delays_s": delays, "trials": trials}, failed


if __name__ == "__main__":
    sys.exit(main(__doc__, ["closed", "starting", "states"], run))
