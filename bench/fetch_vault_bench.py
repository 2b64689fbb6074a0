"""Fetching 5 secrets from a real OpenBao dev server on 127.0.0.1: initbox fetch-vault (one
process, 5 files) vs the `bao` CLI doing the same reads (`bao kv get -field=...`, 5 processes,
as a shell loop would); wall time and peak RSS, and the size of each binary. Writes a Markdown
section to the path given as the first argument.

    python3 fetch_vault_bench.py OUT.md INITBOX BAO
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 15
SECRETS = 5


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_rss(argv, env):
    """Wall time (s) and peak RSS (KiB) of one command, via /usr/bin/time."""
    started = time.monotonic()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {result.stderr[-1000:]}")
    return elapsed, int(result.stderr.strip().splitlines()[-1])


def main():
    out, initbox, bao = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="initbox-bench-vault-")
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([bao, "server", "-dev", "-dev-root-token-id=root",
                               f"-dev-listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, HOME=work))
    env = dict(os.environ, VAULT_ADDR=addr, VAULT_TOKEN="root", BAO_ADDR=addr, BAO_TOKEN="root",
               HOME=work)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([bao, "status"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("OpenBao did not start")
            time.sleep(0.1)
        for n in range(SECRETS):
            subprocess.run([bao, "kv", "put", f"secret/app/s{n}", f"value=secret-{n}"], env=env,
                           check=True, capture_output=True)
        initbox_argv = [initbox, "-q", "fetch-vault"]
        for n in range(SECRETS):
            initbox_argv += ["--secret", f"secret/app/s{n}#value={work}/s{n}"]
        # The bao side: the same 5 reads, one process each, as `for s in ...; do bao kv get ...`.
        bao_script = " && ".join(
            f"{bao} kv get -field=value secret/app/s{n} > {work}/b{n}" for n in range(SECRETS))
        samples = {"initbox fetch-vault (1 process)": [], "bao kv get x5 (5 processes)": []}
        rss = {"initbox fetch-vault (1 process)": [], "bao kv get (1 process, peak)": []}
        for _ in range(RUNS):
            elapsed, peak = timed_rss(initbox_argv, env)
            samples["initbox fetch-vault (1 process)"].append(elapsed)
            rss["initbox fetch-vault (1 process)"].append(peak)
            for n in range(SECRETS):
                os.remove(f"{work}/s{n}")
            started = time.monotonic()
            subprocess.run(["sh", "-c", bao_script], env=env, check=True, timeout=120)
            samples["bao kv get x5 (5 processes)"].append(time.monotonic() - started)
            _, peak = timed_rss([bao, "kv", "get", "-field=value", "secret/app/s0"], env)
            rss["bao kv get (1 process, peak)"].append(peak)
        for n in range(SECRETS):
            assert open(f"{work}/b{n}").read().strip() == f"secret-{n}"
        base = statistics.median(samples["initbox fetch-vault (1 process)"])
        version = subprocess.run([bao, "version"], capture_output=True, text=True).stdout.strip()
        lines = [
            "## fetch-vault",
            "",
            f"Reading {SECRETS} KV v2 secrets from a real OpenBao dev server on 127.0.0.1 "
            "(`bench/fetch-vault`, `bench/fetch_vault_bench.py`) and writing each to a file: "
            "initbox in one process (token auth, KV version detection per secret, atomic "
            f"writes) against the `bao` CLI reading the same fields, one process per secret. "
            f"{RUNS} runs; wall time from process start to exit; peak RSS from `/usr/bin/time -f %M`.",
            "",
            f"- {subprocess.run([initbox, '--version'], capture_output=True, text=True).stdout.strip()}; {version}",
            f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}, {os.cpu_count()} CPUs",
            "",
            "| run | median (ms) | min-max (ms) | ratio to initbox |",
            "| --- | ---: | --- | ---: |",
        ]
        for name, values in samples.items():
            values = sorted(values)
            lines.append(f"| {name} | {statistics.median(values) * 1000:.1f} | "
                         f"{values[0] * 1000:.1f}-{values[-1] * 1000:.1f} | "
                         f"{statistics.median(values) / base:.1f} |")
        lines += ["", "| process | median peak RSS (KiB) | min-max (KiB) |", "| --- | ---: | --- |"]
        for name, values in rss.items():
            values = sorted(values)
            lines.append(f"| {name} | {statistics.median(values):.0f} | {values[0]}-{values[-1]} |")
        lines += ["", "| binary | bytes | MiB |", "| --- | ---: | ---: |"]
        for name, path in [("initbox (static, every subcommand)", initbox),
                           ("bao (OpenBao's CLI and server in one binary)", bao)]:
            size = os.path.getsize(path)
            lines.append(f"| {name} | {size} | {size / 1048576:.1f} |")
        lines.append("")
        with open(out, "w") as handle:
            handle.write("\n".join(lines))
        print("\n".join(lines))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
