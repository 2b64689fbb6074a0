"""Detection lag of wait-tcp tools: how long after a port starts listening each tool exits 0.

Each trial picks a free loopback port (closed), starts the tool against 127.0.0.1:PORT so that
it is already retrying, sleeps a random 0.5-2.0 s, then binds and listens on that port in this
same process. The lag is the tool's exit time minus the moment listen() returned, both read from
time.monotonic() in this process; the exit is seen through a pidfd, so no polling interval is
added. Every tool gets the same sequence of delays (seeded), in a shuffled order each round.
Every trial is bounded: a tool still running --deadline seconds after the listener started is
killed and the trial counts as a failure.

    python3 detection_lag.py --initbox PATH [--runs 10] [--seed 1] [--json OUT.json]

Prints a Markdown table on stdout; --json also writes every trial.
"""

import argparse
import json
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"  # the only address ever used


def tools(initbox):
    """(label, how it retries, argv builder taking the port)."""
    nc_loop = (
        'n=0; until nc -z 127.0.0.1 "$1"; do '
        'n=$((n+1)); [ "$n" -lt "$2" ] || exit 1; sleep "$3"; done'
    )
    return [
        (
            "initbox wait-tcp",
            "its own backoff, defaults (`--interval 100ms --max-interval 1s`, jittered)",
            lambda port: [initbox, "--timeout", "30s", "wait-tcp", f"{HOST}:{port}"],
        ),
        (
            "wait-for-it",
            "its own loop: one `/dev/tcp` attempt per second",
            lambda port: ["wait-for-it", "-q", "-t", "30", f"{HOST}:{port}"],
        ),
        (
            "nc -z loop, sleep 1",
            "`until nc -z 127.0.0.1 PORT; do sleep 1; done` (sh)",
            lambda port: ["sh", "-c", nc_loop, "sh", str(port), "30", "1"],
        ),
        (
            "nc -z loop, sleep 0.1",
            "`until nc -z 127.0.0.1 PORT; do sleep 0.1; done` (sh)",
            lambda port: ["sh", "-c", nc_loop, "sh", str(port), "300", "0.1"],
        ),
    ]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Listener:
    """Listens on HOST:port; a thread accepts and closes connections until stop()."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(128)
        self.started = time.monotonic()  # connections complete from here on
        self.sock.settimeout(0.05)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.close()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=2)
        self.sock.close()


def wait_exit(proc, timeout):
    """Waits up to `timeout` s for proc to exit; returns the monotonic time seen, or None."""
    fd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if poller.poll(timeout * 1000):
            return time.monotonic()
        return None
    finally:
        os.close(fd)


def trial(argv_for, delay, deadline):
    port = free_port()
    proc = subprocess.Popen(
        argv_for(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launched = time.monotonic()
    try:
        time.sleep(max(0.0, launched + delay - time.monotonic()))
        if proc.poll() is not None:
            return {"port": port, "delay_s": delay, "lag_ms": None,
                    "error": f"exited {proc.returncode} before the port listened"}
        listener = Listener(port)
        try:
            exited = wait_exit(proc, deadline)
        finally:
            listener.stop()
        if exited is None:
            return {"port": port, "delay_s": delay, "lag_ms": None,
                    "error": f"still running {deadline} s after the port listened"}
        code = proc.wait(timeout=5)
        if code != 0:
            return {"port": port, "delay_s": delay, "lag_ms": None, "error": f"exit code {code}"}
        return {"port": port, "delay_s": round(listener.started - launched, 4),
                "lag_ms": round((exited - listener.started) * 1000, 3), "error": None}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def quantile(values, q):
    data = sorted(values)
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--initbox", required=True, help="path of the initbox binary")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-delay", type=float, default=0.5)
    parser.add_argument("--max-delay", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=15.0,
                        help="seconds a tool may keep running after the port listens")
    parser.add_argument("--json", help="write every trial here")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    delays = [rng.uniform(args.min_delay, args.max_delay) for _ in range(args.runs)]
    catalog = tools(os.path.abspath(args.initbox))
    trials = {label: [] for label, _, _ in catalog}
    for round_no, delay in enumerate(delays, 1):
        order = catalog[:]
        rng.shuffle(order)
        for label, _, argv_for in order:
            result = trial(argv_for, delay, args.deadline)
            result["round"] = round_no
            trials[label].append(result)
            shown = "FAILED: " + result["error"] if result["error"] else f"{result['lag_ms']:.1f} ms"
            print(f"[lag] round {round_no}/{args.runs} {label}: listen after "
                  f"{delay:.2f} s, {shown}", file=sys.stderr)

    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seed": args.seed, "delays_s": delays, "trials": trials}, handle, indent=1)

    lines = [
        "| tool | how it retries | median lag (ms) | IQR (ms) | min-max (ms) | ok/runs |",
        "| --- | --- | ---: | --- | --- | ---: |",
    ]
    failed = False
    for label, how, _ in catalog:
        lags = [t["lag_ms"] for t in trials[label] if t["error"] is None]
        ok = f"{len(lags)}/{len(trials[label])}"
        failed |= len(lags) != len(trials[label])
        if not lags:
            lines.append(f"| {label} | {how} | n/a | n/a | n/a | {ok} |")
            continue
        median = statistics.median(lags)
        lines.append(
            f"| {label} | {how} | {median:.0f} | {quantile(lags, 0.25):.0f}-"
            f"{quantile(lags, 0.75):.0f} | {min(lags):.0f}-{max(lags):.0f} | {ok} |"
        )
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
