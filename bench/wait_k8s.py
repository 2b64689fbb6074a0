#!/usr/bin/env python3
"""wait-k8s: how soon a waiter notices a change to a Kubernetes object, and what it costs.

Run inside the test node's network namespace (bench/wait-k8s does this through
scripts/kube-exec). For each tool and each repeat: a ConfigMap is created, the waiter is
started and given 1.5 s to settle, then the ConfigMap is deleted through the API (python's
own HTTPS client, the admin certificate) and the time from sending the DELETE to the
waiter's exit is the lag. Max RSS comes from /usr/bin/time. Tools:

- initbox wait-k8s configmap/NAME --for delete (a watch);
- kubectl wait --for=delete configmap/NAME (kubectl 1.20, a watch too);
- a k8s-wait-for-style loop: `until ! kubectl get configmap NAME; do sleep 2; done` (its
  polling interval), in sh.
"""

import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPEATS = int(os.environ.get("REPEATS", "9"))
NAMESPACE = "bench-wait-k8s"
STATE = os.environ.get("INITBOX_KUBE_STATE", "/var/lib/initbox-kube")
PKI = f"{STATE}/pki"
INITBOX = sys.argv[1]


def api_delete(name):
    context = ssl.create_default_context(cafile=f"{PKI}/ca.crt")
    context.load_cert_chain(f"{PKI}/admin.crt", f"{PKI}/admin.key")
    url = f"https://127.0.0.1:6443/api/v1/namespaces/{NAMESPACE}/configmaps/{name}"
    request = urllib.request.Request(url, method="DELETE")
    urllib.request.urlopen(request, context=context).read()


def kubectl(*args):
    subprocess.run(["kubectl", *args], check=True, capture_output=True)


TOOLS = {
    "initbox wait-k8s": lambda name: [INITBOX, "wait-k8s", f"configmap/{name}", "--for=delete",
                                      "-n", NAMESPACE, "--timeout=60s", "-q"],
    "kubectl wait": lambda name: ["kubectl", "wait", "--for=delete", f"configmap/{name}",
                                  "-n", NAMESPACE, "--timeout=60s"],
    "kubectl get loop (2 s)": lambda name: ["sh", "-c",
                                            f"until ! kubectl get configmap {name} -n {NAMESPACE} "
                                            ">/dev/null 2>&1; do sleep 2; done"],
}


def measure(tool, command, index):
    name = f"c{index}"
    kubectl("create", "configmap", name, "-n", NAMESPACE)
    with tempfile.NamedTemporaryFile("r") as rss:
        waiter = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *command(name)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        started = time.monotonic()
        api_delete(name)
        code = waiter.wait()
        lag = time.monotonic() - started
        assert code == 0, f"{tool} exited {code}"
        return lag * 1000, int(rss.read().split()[-1])


def summary(values):
    values = sorted(values)
    quartiles = statistics.quantiles(values, n=4)
    return statistics.median(values), quartiles[0], quartiles[2], values[0], values[-1]


def main():
    subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=true"],
                   capture_output=True)
    kubectl("create", "namespace", NAMESPACE)
    results = {}
    index = 0
    # Interleaved, so that load changes on the machine touch every tool alike.
    for _ in range(REPEATS):
        for tool, command in TOOLS.items():
            index += 1
            results.setdefault(tool, []).append(measure(tool, command, index))
    subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=false"],
                   capture_output=True)
    base_lag = summary([lag for lag, _ in results["initbox wait-k8s"]])[0]
    base_rss = summary([rss for _, rss in results["initbox wait-k8s"]])[0]
    print(f"{REPEATS} runs per tool, interleaved; lag from sending the DELETE to the waiter's exit.\n")
    print("| tool | lag median ms | IQR | min-max | lag vs initbox | max RSS median KiB | RSS vs initbox |")
    print("|---|---|---|---|---|---|---|")
    for tool, runs in results.items():
        median, q1, q3, low, high = summary([lag for lag, _ in runs])
        rss = summary([rss for _, rss in runs])[0]
        print(f"| {tool} | {median:.0f} | {q1:.0f}-{q3:.0f} | {low:.0f}-{high:.0f} | "
              f"{median / base_lag:.1f}x | {rss:.0f} | {rss / base_rss:.1f}x |")
    print("\nraw (ms, KiB): " + json.dumps({tool: [[round(lag), rss] for lag, rss in runs]
                                            for tool, runs in results.items()}), file=sys.stderr)


main()
