"""Shared pieces of pg_lag.py and redis_lag.py: their command line, initbox's rows among the
tools, running a waiting tool, seeing its exit to the millisecond, rounds of trials in shuffled
order, and the Markdown tables.

A tool is (label, how it retries, argv builder taking the target). Each trial starts the tool
while the server is not ready, then the scenario makes (or lets) the server become ready, and
the lag is the tool's exit time minus one or more reference moments of that trial. The exit is
seen through a pidfd, so no polling interval is added; both the monotonic and the wall-clock
time of the exit are kept (Redis stamps its log with wall-clock time).
"""

import argparse
import json
import os
import random
import select
import statistics
import subprocess
import sys
import time

from servers import clean_env, exit_on_signals, stop_all
from summarize import quantile


def main(doc, scenarios, run, extra_args=()):
    """The command line both scripts share; returns the exit code. `run(args)` runs the chosen
    scenario under --base and returns (Markdown text, data for --json, whether a trial failed);
    every server under --base is stopped afterwards. extra_args: [(flag, argparse keywords)]."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--initbox", required=True)
    parser.add_argument("--base", required=True, help="an empty directory for the servers")
    parser.add_argument("--scenario", required=True, choices=scenarios)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    for flag, keywords in extra_args:
        parser.add_argument(flag, **keywords)
    parser.add_argument("--json")
    args = parser.parse_args()
    args.initbox = os.path.abspath(args.initbox)
    exit_on_signals()
    try:
        text, data, failed = run(args)
    finally:
        stop_all(args.base)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(data, handle, indent=1)
    print(text)
    return 1 if failed else 0


def seeded_delays(args, low, high):
    """The random generator seeded with --seed, and --runs delays drawn from it (seconds)."""
    rng = random.Random(args.seed)
    return rng, [rng.uniform(low, high) for _ in range(args.runs)]


def initbox_tools(initbox, command):
    """initbox's two rows of a tool catalog: its default backoff, and a fixed 100 ms pause."""
    return [
        (f"initbox {command}",
         "its own backoff, defaults (`--interval 100ms --max-interval 1s`, jittered)",
         lambda t: [initbox, "--timeout", "30s", command, "--url", t.url]),
        (f"initbox {command} --max-interval 100ms",
         "its own loop, `--interval 100ms --max-interval 100ms`: a 100 ms pause",
         lambda t: [initbox, "--timeout", "30s", "--max-interval", "100ms", command,
                    "--url", t.url]),
    ]


def run_tool(argv, path=None, timeout=20):
    """Runs one check to the end; (the completed process, its wall time in ms)."""
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            env=clean_env(path), stdin=subprocess.DEVNULL)
    return result, (time.monotonic() - started) * 1000


def printed(result, stream):
    """What a check printed on `stream` ("stdout", "stderr" or "stderr, last line"), as one
    line: all its non-empty lines joined, or only the last one."""
    text = result.stdout if stream == "stdout" else result.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if "last line" in stream and lines else " ".join(lines)


def timing_rows(timings):
    """Markdown table of {tool: [ms, ...]}: median, IQR, min-max and count per tool."""
    rows = ["| tool | median (ms) | IQR (ms) | min-max (ms) | n |",
            "| --- | ---: | --- | --- | ---: |"]
    for label, values in timings.items():
        median, iqr, rng_ = spread(values)
        rows.append(f"| {label} | {median} | {iqr} | {rng_} | {len(values)} |")
    return rows


def spawn(argv, path=None):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=clean_env(path))


def wait_exit(proc, timeout):
    """Waits up to `timeout` s for proc to exit; returns (monotonic, wall clock) of the exit as
    seen here, or None if it is still running."""
    fd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if poller.poll(max(0, timeout) * 1000):
            return time.monotonic(), time.time()
        return None
    finally:
        os.close(fd)


def kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def shell_loop(check, sleep, max_tries, arg):
    """argv builder of a bounded sh loop: `until CHECK; do sleep SLEEP; done`, giving up (exit 1)
    after max_tries failed checks. CHECK may use "$1", which is arg(target)."""
    script = (f'n=0; until {check}; do n=$((n+1)); [ "$n" -lt "$2" ] || exit 1; '
              f'sleep "$3"; done')
    return lambda target: ["sh", "-c", script, "sh", str(arg(target)), str(max_tries), str(sleep)]


def run_rounds(catalog, delays, rng, one_trial, tag):
    """For each delay, every tool once in a shuffled order; one_trial(label, argv_for, delay)
    returns a dict with at least "error" (None or text). Returns {label: [trial, ...]}."""
    trials = {label: [] for label, _, _ in catalog}
    for round_no, delay in enumerate(delays, 1):
        order = catalog[:]
        rng.shuffle(order)
        for label, _, argv_for in order:
            result = one_trial(label, argv_for, delay)
            result["round"] = round_no
            trials[label].append(result)
            shown = result["error"] and "FAILED: " + result["error"]
            if not shown:
                shown = ", ".join(f"{key} {value:.1f} ms" for key, value in result["lags_ms"].items())
            print(f"[{tag}] round {round_no}/{len(delays)} {label}: {shown}", file=sys.stderr)
    return trials


def spread(values):
    """(median, "q1-q3", "min-max") in whole milliseconds."""
    return (f"{statistics.median(values):.0f}",
            f"{quantile(values, 0.25):.0f}-{quantile(values, 0.75):.0f}",
            f"{min(values):.0f}-{max(values):.0f}")


def spread_ms(values):
    """The median, IQR and min-max of `values` as text: "M ms (IQR A-B, min-max C-D)"."""
    median, iqr, rng_ = spread(values)
    return f"{median} ms (IQR {iqr}, min-max {rng_})"


def lag_table(catalog, trials, refs):
    """Markdown table: per tool the median, IQR and min-max of the lag after the first
    reference, the median and IQR after the others, and ok/runs. refs: [(key, name)]."""
    head = ["tool", "how it retries"]
    align = ["---", "---"]
    first_key, first_name = refs[0]
    head += [f"median lag after {first_name} (ms)", "IQR (ms)", "min-max (ms)"]
    align += ["---:", "---", "---"]
    for _, name in refs[1:]:
        head += [f"median lag after {name} (ms)", "IQR (ms)"]
        align += ["---:", "---"]
    head.append("ok/runs")
    align.append("---:")
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    failed = False
    for label, how, _ in catalog:
        done = [t for t in trials[label] if t["error"] is None]
        ok = f"{len(done)}/{len(trials[label])}"
        failed |= len(done) != len(trials[label])
        cells = [label, how]
        if done:
            cells += list(spread([t["lags_ms"][first_key] for t in done]))
            for key, _ in refs[1:]:
                cells += list(spread([t["lags_ms"][key] for t in done]))[:2]
        else:
            cells += ["n/a"] * (3 + 2 * (len(refs) - 1))
        cells.append(ok)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), failed


def lags_of(trials, label, key):
    """One tool's lags after reference `key`, over its successful trials."""
    return [t["lags_ms"][key] for t in trials[label] if t["error"] is None]


def pooled(trials, key):
    """Every value of trial[key] over all tools' successful trials."""
    return [t[key] for runs in trials.values() for t in runs
            if t["error"] is None and t.get(key) is not None]


def md_code(text):
    """Inline code for a table cell: no pipes or newlines, backticks avoided."""
    text = " ".join(text.replace("|", "\\|").split())
    return f"`{text}`" if text else "(nothing)"
