"""`make pod-test`: the deploy/k8s manifests played as real pods by `podman kube play`.

No cluster runs on these machines, so this plays what podman 4.3 can play of the
rendered overlay (Deployment, ConfigMap, PersistentVolumeClaim) with the image
`make image` built, and checks the pods the way a cluster would use them:

1. ``kubectl kustomize deploy/k8s/overlays/example``; every document podman cannot play
   (Namespace, Service, HPA, PDB, ServiceMonitor) is left out and named in the report
   (tests/project/test_deploy_k8s.py validates them offline against the Kubernetes schemas);
   the Services' target ports must be container ports of the played pods.
2. The Deployment becomes two single-replica Deployments (pods A and B) mounting the one
   PVC (one podman volume); each published on free 127.0.0.1 ports (``hostPort``). What
   else changes, and why, is printed as "played differently" (see ``playable``).
3. Ready through the manifest's own probes: podman 4.3 turns only ``livenessProbe`` into
   a container healthcheck (and, without systemd, never schedules it), so this driver
   does what the kubelet would: the startup probe (from container start, every
   ``periodSeconds``, at most ``failureThreshold`` failures), then the readiness probe
   (from ``initialDelaySeconds``) as HTTP GETs on the published ports, and the liveness
   probe as podman's own healthcheck (``podman healthcheck run``, status from ``podman
   inspect``).
4. Per pod: ``/readyz``, ``POST /predict`` (401 without the token, 200 with it), gRPC
   health SERVING and ``har.v1.ActivityRecognition/Predict``; the uid of the container's
   PID 1 is ``runAsUser``; a write to the root filesystem fails with EROFS while the
   profile volume takes one.
5. Windows sent to A and to B are counted by ``/monitoring/drift`` (``rows``) and
   ``/monitoring/shadow`` (``windows``, summed over both pods' writers) on both pods
   (shared volume; polled). The shadow only when the image's Bento has one (``make image``
   with ``HAR_SHADOW_MODEL_TAG``): otherwise it must answer "off" and the report says so.
6. ``podman kube down`` + volume removal, also on failure; nothing of it may be left.

Run by container/pod-test.sh (which installs podman/catatonit and sets CONTAINERS_CONF).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import yaml

CONTAINER_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = CONTAINER_DIR.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(CONTAINER_DIR))

import smoke  # noqa: E402  (container/smoke.py, beside this file)

from har.v1 import har_pb2, har_pb2_grpc  # noqa: E402

#: What podman 4.3 `kube play` takes; the rest is validated offline.
PLAYED_KINDS = {"Deployment", "ConfigMap", "Secret", "PersistentVolumeClaim"}
#: Names of what this test creates (fixed, so that a leftover of an aborted run is found).
PREFIX = "har-podtest"
POD_NAMES = (f"{PREFIX}-a", f"{PREFIX}-b")
VOLUME = f"{PREFIX}-profiles"
#: Extra windows sent to pod A and to pod B (besides one HTTP and one gRPC smoke window each).
EXTRA_WINDOWS = {"a": 6, "b": 3}


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


class PodTestError(Exception):
    """A check failed; the message says which."""


def run(
    cmd: list[str], *, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise PodTestError(
            f"{' '.join(cmd)} -> exit {r.returncode}: {(r.stderr or r.stdout).strip()}"
        )
    return r


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], check=check, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the spec
@dataclass
class Pod:
    """One played pod: its Deployment's name, published ports and what it was sent."""

    key: str  # "a" / "b"
    name: str  # the Deployment's name; podman names the pod <name>-pod-0
    ports: dict[str, int]  # container port name -> 127.0.0.1 host port
    container_ports: dict[str, int] = field(default_factory=dict)
    sent: int = 0  # windows this pod served (as answered with predictions)
    started_at: float = 0.0  # epoch seconds, container start
    startup_at: float | None = None
    ready_at: float | None = None
    liveness: str = ""

    @property
    def pod(self) -> str:
        return f"{self.name}-pod-0"

    @property
    def container(self) -> str:
        return f"{self.pod}-har"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"


def render(kustomization: Path) -> list[dict[str, Any]]:
    out = run(["kubectl", "kustomize", str(kustomization)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def http_exec_probe(probe: dict[str, Any], ports: dict[str, int]) -> dict[str, Any]:
    """An ``httpGet`` probe as the ``exec`` probe podman 4.3 can run: its own conversion
    of ``httpGet`` calls ``curl`` (not in the image) on ``<scheme>://<host>:<int port>`` and
    has no scheme, host or port number for a named port. podman joins ``exec.command``
    with spaces and runs it with ``/bin/sh -c``: one element, a shell command line."""
    get = probe["httpGet"]
    port = get["port"] if isinstance(get["port"], int) else ports[get["port"]]
    url = f"http://127.0.0.1:{port}{get.get('path', '/')}"
    timeout = int(probe.get("timeoutSeconds", 1))
    line = f"python3 -c \"import urllib.request as u; u.urlopen('{url}', timeout={timeout})\""
    out = {k: v for k, v in probe.items() if k != "httpGet"}
    out["exec"] = {"command": [line]}
    return out


def playable(
    docs: list[dict[str, Any]],
    image: str,
    pods: list[Pod],
    settings: dict[str, str],
    token: str,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The documents to play, what was played differently (and why), what was not played.

    Kept from the manifest: the pod and container security contexts (runAsUser/Group,
    runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, capabilities, seccomp),
    the three probes (timings unchanged), resources, volumes and mounts (emptyDir +
    subPath, the profile PVC), the ConfigMap's settings, annotations and labels.
    """
    changed: list[str] = []
    skipped: list[str] = []
    out: list[dict[str, Any]] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        if d["kind"] not in PLAYED_KINDS:
            skipped.append(f"{d['kind']} {d['metadata']['name']}")

    (dep,) = by_kind["Deployment"]
    (pvc,) = by_kind["PersistentVolumeClaim"]
    claim = pvc["metadata"]["name"]

    for cm in by_kind.get("ConfigMap", []):
        cm = copy.deepcopy(cm)
        cm["data"] = {**cm.get("data", {}), **settings}
        out.append(cm)
        if settings:
            changed.append(
                f"ConfigMap {cm['metadata']['name']}: for the test "
                + ", ".join(f"{k}={v!r}" for k, v in settings.items())
            )

    secret_env: dict[str, dict[str, str]] = {}
    for s in by_kind.get("Secret", []):
        values = secret_values(s)
        if "HAR_API_TOKENS" in values:
            values["HAR_API_TOKENS"] = token  # the base's value is a placeholder
        secret_env[s["metadata"]["name"]] = values
        skipped.append(
            f"Secret {s['metadata']['name']} (podman 4.3 cannot feed it to envFrom: its values went into env)"
        )

    pvc = copy.deepcopy(pvc)
    pvc["metadata"]["name"] = VOLUME
    out.append(pvc)
    changed.append(
        f"PVC {claim} -> podman volume {VOLUME} (one local volume, mounted by both pods: "
        f"{'/'.join(pvc['spec']['accessModes'])}; storageClassName ignored)"
    )

    for pod in pods:
        d = copy.deepcopy(dep)
        d["metadata"]["name"] = pod.name
        d["spec"]["replicas"] = 1
        spec = d["spec"]["template"]["spec"]
        # podman appends "|| kill 1" to a liveness command under restartPolicy Always (the
        # first failure would kill the service, where the kubelet waits for
        # failureThreshold); with Never it appends "|| exit 1" and counts failures.
        spec["restartPolicy"] = "Never"
        (c,) = spec["containers"]
        c["image"] = image
        c["imagePullPolicy"] = "Never"  # no registry is reachable: the local image only
        for p in c["ports"]:
            pod.container_ports[p["name"]] = p["containerPort"]
            p["hostPort"] = pod.ports[p["name"]]
            p["hostIP"] = "127.0.0.1"
        env_from, env = [], list(c.get("env", []))
        for ref in c.get("envFrom", []):
            if "secretRef" in ref:
                for k, v in secret_env[ref["secretRef"]["name"]].items():
                    env.append({"name": k, "value": v})
            else:
                env_from.append(ref)
        c["envFrom"], c["env"] = env_from, env
        c["livenessProbe"] = http_exec_probe(c["livenessProbe"], pod.container_ports)
        for v in spec["volumes"]:
            if v.get("persistentVolumeClaim", {}).get("claimName") == claim:
                v["persistentVolumeClaim"]["claimName"] = VOLUME
        out.append(d)

    names = ", ".join(p.name for p in pods)
    changed += [
        f"Deployment {dep['metadata']['name']} (replicas {dep['spec'].get('replicas')}) -> "
        f"{names}, replicas 1 each (one host port per replica)",
        f"image {image}, imagePullPolicy Never",
        "containerPorts http/grpc get hostIP 127.0.0.1 + a free hostPort",
        "envFrom secretRef -> env entries with the Secret's values (podman 4.3 fails on a "
        "played Secret read through envFrom); HAR_API_TOKENS = a token made for this run",
        "livenessProbe httpGet -> exec of python3 urllib (podman's own httpGet conversion "
        "calls curl, absent from the image, and cannot resolve a named port)",
        "restartPolicy Never (podman's liveness command kills PID 1 on the first failure "
        "under Always)",
        "startupProbe/readinessProbe unchanged: podman 4.3 ignores them; this driver runs "
        "them (HTTP GET on the published port, the manifest's timings)",
    ]
    return out, changed, skipped


def check_offline(docs: list[dict[str, Any]], pods: list[Pod]) -> list[str]:
    """What is not played but checked here: the Services' target ports are ports of the
    played container, and their selectors match the pod template's labels."""
    notes = []
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    for svc in (d for d in docs if d["kind"] == "Service"):
        sel = svc["spec"].get("selector", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            raise PodTestError(
                f"Service {svc['metadata']['name']} selects {sel}, pods have {labels}"
            )
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            if (
                target not in pods[0].container_ports
                and target not in pods[0].container_ports.values()
            ):
                raise PodTestError(
                    f"Service {svc['metadata']['name']} targets {target!r}: no such port"
                )
        notes.append(
            f"Service {svc['metadata']['name']}: targets "
            + ", ".join(str(p.get("targetPort")) for p in svc["spec"]["ports"])
            + " = the played, probed ports; selector matches the pod labels"
        )
    return notes


# ------------------------------------------------------------------------- the probes
def http_probe(url: str, timeout: float) -> bool:
    """The kubelet's httpGet: success on a status in [200, 400)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= int(r.status) < 400
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def inspect(name: str) -> dict[str, Any]:
    out = json.loads(podman("container", "inspect", name).stdout)
    return dict(out[0])


def go_time(s: str) -> float:
    """podman's time ``2026-12-07 10:00:00.123456789 +0000 UTC`` (or RFC 3339) -> epoch s."""
    s = s.strip()
    if "T" in s:
        head, _, rest = s.partition(".")
        zone = rest.lstrip("0123456789") if rest else ""
        frac = rest[: len(rest) - len(zone)] if rest else "0"
        t = datetime.fromisoformat(head + (zone.replace("Z", "+00:00") or "+00:00"))
        return t.timestamp() + float("0." + (frac or "0"))
    date, clock, offset = s.split()[:3]
    whole, _, frac = clock.partition(".")
    t = datetime.strptime(f"{date} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z")
    return t.astimezone(UTC).timestamp() + float("0." + (frac or "0"))


def health_status(state: dict[str, Any]) -> str:
    h = state.get("Health") or state.get("Healthcheck") or {}
    return str(h.get("Status", ""))


def probe_until_ready(
    pod: Pod, container: dict[str, Any], deadline: float, stop: threading.Event
) -> None:
    """The kubelet's startup -> readiness sequence for one pod, liveness as podman's check."""
    sp, rp = container["startupProbe"], container["readinessProbe"]
    t0 = pod.started_at

    def url(probe: dict[str, Any]) -> str:
        get = probe["httpGet"]
        port = get["port"]
        host_port = pod.ports[port] if isinstance(port, str) else port
        return f"http://127.0.0.1:{host_port}{get['path']}"

    failures = 0
    next_at = t0 + sp.get("initialDelaySeconds", 0)
    while pod.startup_at is None:
        if stop.wait(max(0.0, next_at - time.time())) or time.time() > deadline:
            return
        st = inspect(pod.container)["State"]
        if not st.get("Running"):
            raise PodTestError(
                f"{pod.container} exited ({st.get('Status')}, code {st.get('ExitCode')})"
            )
        if http_probe(url(sp), sp.get("timeoutSeconds", 1)):
            pod.startup_at = time.time()
            break
        failures += 1
        if failures >= sp.get("failureThreshold", 3):
            raise PodTestError(f"{pod.name}: startup probe failed {failures} times")
        next_at += sp.get("periodSeconds", 10)

    # podman's healthcheck = the manifest's livenessProbe (exec'd in the container)
    r = podman("healthcheck", "run", pod.container, check=False, timeout=60)
    pod.liveness = health_status(inspect(pod.container)["State"]) or r.stdout.strip()
    if r.returncode != 0 or pod.liveness != "healthy":
        raise PodTestError(
            f"{pod.name}: liveness healthcheck {pod.liveness!r} ({r.stdout.strip()})"
        )

    next_at = max(t0 + rp.get("initialDelaySeconds", 0), time.time())
    while pod.ready_at is None:
        if stop.wait(max(0.0, next_at - time.time())) or time.time() > deadline:
            return
        if http_probe(url(rp), rp.get("timeoutSeconds", 1)):
            pod.ready_at = time.time()
            return
        next_at += rp.get("periodSeconds", 10)


def wait_ready(pods: list[Pod], container: dict[str, Any], timeout: float) -> None:
    deadline = time.time() + timeout
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(p: Pod) -> None:
        try:
            probe_until_ready(p, container, deadline, stop)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    late = [p.name for p in pods if p.ready_at is None]
    if late:
        raise PodTestError(f"not ready after {timeout:.0f} s: {', '.join(late)}")


# ------------------------------------------------------------------------- the checks
def post_json(url: str, body: Any, token: str | None, timeout: float = 60) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def get_json(url: str, token: str, timeout: float = 30) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def predict_http(pod: Pod, windows: list[Any], token: str) -> str:
    status, answer = post_json(f"{pod.http}/predict", {"windows": windows}, token)
    if status != 200:
        raise PodTestError(f"{pod.name} POST /predict: {status} {answer!r}")
    preds = answer["predictions"]
    if len(preds) != len(windows):
        raise PodTestError(f"{pod.name} /predict: {len(preds)} predictions for {len(windows)}")
    for p in preds:
        smoke.check_prediction(f"{pod.name} /predict", p["activity"], float(p["confidence"]))
    pod.sent += len(windows)
    return f"{preds[0]['activity']} ({preds[0]['confidence']:.3f}), model {answer['model']}"


def predict_grpc(pod: Pod, windows: list[Any], token: str) -> str:
    with grpc.insecure_channel(pod.grpc) as channel:
        smoke.check_grpc_health(channel, 60)  # grpc.health.v1 needs no token
        stub = har_pb2_grpc.ActivityRecognitionStub(channel)
        req = har_pb2.PredictRequest(
            windows=[har_pb2.Window(values=[v for row in w for v in row]) for w in windows]
        )
        try:
            stub.Predict(req, timeout=30)
            raise PodTestError(
                f"{pod.name} gRPC Predict without a token: OK, expected UNAUTHENTICATED"
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise PodTestError(
                    f"{pod.name} gRPC Predict without a token: {exc.code().name}"
                ) from exc
        try:
            answer = stub.Predict(req, timeout=60, metadata=[("authorization", f"Bearer {token}")])
        except grpc.RpcError as exc:
            raise PodTestError(
                f"{pod.name} gRPC Predict: {exc.code().name}: {exc.details()}"
            ) from exc
    if len(answer.predictions) != len(windows):
        raise PodTestError(f"{pod.name} gRPC Predict: {len(answer.predictions)} predictions")
    for p in answer.predictions:
        smoke.check_prediction(f"{pod.name} gRPC Predict", p.activity, p.confidence)
    pod.sent += len(windows)
    first = answer.predictions[0]
    return f"{first.activity} ({first.confidence:.3f}), model {answer.model}"


def container_uid(pod: Pod) -> tuple[int, str]:
    status = podman("exec", pod.container, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    if len(set(uids)) != 1:
        raise PodTestError(f"{pod.name}: PID 1 has uids {uids}")
    cmd = podman("exec", pod.container, "cat", "/proc/1/cmdline").stdout.replace("\0", " ").strip()
    return int(uids[0]), cmd


def check_read_only(pod: Pod, writable: str) -> str:
    if not inspect(pod.container)["HostConfig"].get("ReadonlyRootfs"):
        raise PodTestError(f"{pod.name}: HostConfig.ReadonlyRootfs is not true")
    # /home/bentoml is the service user's own folder on the root filesystem: a write there
    # fails only because the root filesystem is read-only (not for lack of permission).
    r = podman("exec", pod.container, "sh", "-c", "echo x > /home/bentoml/.podtest", check=False)
    if r.returncode == 0 or "Read-only file system" not in r.stderr:
        raise PodTestError(f"{pod.name}: write to the root fs: exit {r.returncode} {r.stderr!r}")
    probe = f"{writable}/.podtest-{pod.key}"
    podman("exec", pod.container, "sh", "-c", f"echo x > {probe} && rm {probe}")
    return f"write to /home/bentoml: '{r.stderr.strip()}'; {writable} (profile volume) writable"


def quantity(q: str | int) -> float:
    """A Kubernetes quantity (``2``, ``500m``, ``3Gi``, ``2G``) as a number."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    q = str(q)
    for unit in sorted(units, key=len, reverse=True):
        if q.endswith(unit):
            return float(q[: -len(unit)]) * units[unit]
    return float(q)


def check_config(pod: Pod, config: dict[str, str], secret_keys: list[str]) -> None:
    """The ConfigMap's data (envFrom) and the Secret's keys (env) are in the container's env."""
    env = dict(e.split("=", 1) for e in inspect(pod.container)["Config"]["Env"])
    wrong = {k: (v, env.get(k)) for k, v in config.items() if env.get(k) != str(v)}
    missing = [k for k in secret_keys if not env.get(k)]
    if wrong or missing:
        raise PodTestError(f"{pod.name}: env differs from the ConfigMap {wrong}, lacks {missing}")


def check_resources(pod: Pod, resources: dict[str, Any]) -> str:
    """The limits the manifest sets are the container's cgroup limits."""
    hc = inspect(pod.container)["HostConfig"]
    limits = resources.get("limits", {})
    memory = int(hc.get("Memory") or 0)
    cpus = (hc.get("NanoCpus") or 0) / 1e9 or (
        hc.get("CpuQuota", 0) / hc["CpuPeriod"] if hc.get("CpuPeriod") else 0.0
    )
    if "memory" in limits and memory != quantity(limits["memory"]):
        raise PodTestError(f"{pod.name}: memory limit {memory}, manifest {limits['memory']}")
    if "cpu" in limits and abs(cpus - quantity(limits["cpu"])) > 1e-6:
        raise PodTestError(f"{pod.name}: cpu limit {cpus}, manifest {limits['cpu']}")
    return (
        f"limits memory {memory / 2**30:g} GiB, cpu {cpus:g}; "
        f"memory reservation {int(hc.get('MemoryReservation') or 0) / 2**30:g} GiB, "
        f"cpu shares {hc.get('CpuShares')}"
    )


def profile_writers(pod: Pod, folder: str) -> dict[str, int]:
    """Profile and shadow files in the shared folder, per writer (as ``pod`` lists them)."""
    out = podman(
        "exec",
        pod.container,
        "sh",
        "-c",
        f"ls -1 {folder} {folder}/shadow 2>/dev/null",
        check=False,
    ).stdout
    writers: dict[str, int] = {}
    for name in out.split():
        m = re.match(r"^(har-profile|har-shadow)_.*_(?P<w>[A-Za-z0-9.\-]+)\.(bin|npz)$", name)
        if m:
            key = f"{m[1]}:{m['w']}"
            writers[key] = writers.get(key, 0) + 1
    return writers


def memory_in_use(pods: list[Pod]) -> str:
    """``podman stats`` memory per container (one sample)."""
    r = podman(
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        *(p.container for p in pods),
        check=False,
        timeout=60,
    )
    lines = [line.split(" ", 1) for line in r.stdout.splitlines() if " " in line]
    short = {p.container: p.name for p in pods}
    return "; ".join(f"{short.get(n, n)} {u.split(' / ')[0]}" for n, u in lines) or "n/a"


def wait_counted(
    pods: list[Pod], token: str, total: int, timeout: float, shadow_on: bool
) -> dict[str, dict[str, Any]]:
    """Poll drift and shadow on every pod until each counts ``total`` windows (shadow:
    ``status`` "off" when ``shadow_on`` is false)."""
    deadline = time.time() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while True:
        for p in pods:
            drift = get_json(f"{p.http}/monitoring/drift", token)
            shadow = get_json(f"{p.http}/monitoring/shadow", token)
            seen[p.key] = {
                "rows": drift.get("rows"),
                "drift_status": drift.get("status"),
                "windows": shadow.get("windows"),
                "shadow_status": shadow.get("status"),
                "dropped": shadow.get("dropped"),
                "workers": shadow.get("workers"),
            }
        if not shadow_on and any(s["shadow_status"] != "off" for s in seen.values()):
            raise PodTestError(f"shadow not configured, yet /monitoring/shadow says {seen}")
        if all(
            s["rows"] == total
            and (not shadow_on or (s["windows"] == total and (s["workers"] or 0) >= len(pods)))
            for s in seen.values()
        ):
            return seen
        if time.time() > deadline:
            raise PodTestError(
                f"after {timeout:.0f} s, expected {total} windows everywhere: {seen}"
            )
        time.sleep(1)


# ------------------------------------------------------------------------- play / down
class Play:
    """The played YAML and its teardown (idempotent, also from a signal handler)."""

    def __init__(self, path: Path, pods: list[Pod]) -> None:
        self.path, self.pods = path, pods
        self.down_done = False

    def leftovers(self) -> list[str]:
        found = []
        for what, args in (
            ("pod", ["pod", "ps", "-a", "--format", "{{.Name}}"]),
            ("container", ["ps", "-a", "--format", "{{.Names}}"]),
            ("volume", ["volume", "ls", "--format", "{{.Name}}"]),
        ):
            names = podman(*args, check=False).stdout.split()
            found += [f"{what} {n}" for n in names if n.startswith(PREFIX)]
        return found

    def down(self) -> float:
        if self.down_done:
            return 0.0
        t = time.time()
        if self.path.is_file():
            podman("kube", "down", str(self.path), check=False, timeout=180)
        for p in self.pods:  # if the YAML could not be read back
            podman("pod", "rm", "-f", "-t", "10", p.pod, check=False, timeout=120)
        podman("volume", "rm", "-f", VOLUME, check=False)
        self.down_done = True
        return time.time() - t

    def dump_logs(self) -> None:
        for p in self.pods:
            r = podman("logs", "--tail", "60", p.container, check=False)
            print(
                f"\n---- log of {p.container} ----\n{r.stdout}{r.stderr}---- end ----",
                file=sys.stderr,
            )


def bento_services(image: str, env: dict[str, str]) -> list[str]:
    """The services the image's Bento declares (its bento.yaml)."""
    bento = env.get("BENTO_PATH", "/home/bentoml/bento")
    r = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "cat", image, f"{bento}/bento.yaml"
    )
    return [str(svc.get("name")) for svc in yaml.safe_load(r.stdout).get("services") or []]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument(
        "--kustomization", type=Path, default=PROJECT_ROOT / "deploy/k8s/overlays/example"
    )
    ap.add_argument("--window", type=Path, default=smoke.DEFAULT_WINDOW_FILE)
    ap.add_argument("--workdir", type=Path, default=PROJECT_ROOT / ".image" / "pod-test")
    ap.add_argument("--ready-timeout", type=float, default=240)
    ap.add_argument("--count-timeout", type=float, default=60)
    ap.add_argument(
        "--profile-interval-s",
        help="HAR_PROFILE_INTERVAL_S for the test (default: the ConfigMap's; partial "
        "profiles reach the volume every HAR_PROFILE_FLUSH_S, 5 s, anyway)",
    )
    ap.add_argument(
        "--shadow",
        choices=("auto", "on", "off"),
        default="auto",
        help="set HAR_SHADOW_MODEL_TAG to the served tag (auto: if the image's Bento has the "
        "har-shadow service, which service.py declares only when the tag is set at build time)",
    )
    args = ap.parse_args(argv)

    t_start = time.time()
    windows = smoke.load_windows(args.window)
    image_env = dict(
        e.split("=", 1)
        for e in json.loads(podman("image", "inspect", args.image).stdout)[0]["Config"]["Env"]
    )
    served = image_env.get("HAR_MODEL_TAG")
    if not served:
        raise PodTestError(f"{args.image} sets no HAR_MODEL_TAG")
    token = secrets.token_urlsafe(24)
    settings = {}
    if args.profile_interval_s:
        settings["HAR_PROFILE_INTERVAL_S"] = args.profile_interval_s
    shadow_on = args.shadow == "on" or (
        args.shadow == "auto" and "har-shadow" in bento_services(args.image, image_env)
    )
    # An image built with a shadow (make image with HAR_SHADOW_MODEL_TAG/_URI) carries its
    # tag in its env; otherwise the served tag is its own shadow (forced with --shadow on).
    image_shadow = image_env.get("HAR_SHADOW_MODEL_TAG", "")
    if shadow_on and not image_shadow:
        settings["HAR_SHADOW_MODEL_TAG"] = served
    elif not shadow_on and image_shadow:
        settings["HAR_SHADOW_MODEL_TAG"] = ""  # empty: no shadow
    shadow_tag = (settings.get("HAR_SHADOW_MODEL_TAG") or image_shadow) if shadow_on else ""

    docs = render(args.kustomization)
    used: set[int] = set()

    def port() -> int:
        while (p := free_port()) in used:
            pass
        used.add(p)
        return p

    pods = [
        Pod(k, n, {"http": port(), "grpc": port()}) for k, n in zip("ab", POD_NAMES, strict=True)
    ]
    played, changed, skipped = playable(docs, args.image, pods, settings, token)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    tmpl = dep["spec"]["template"]["spec"]
    (container,) = tmpl["containers"]
    run_as = int(tmpl["securityContext"]["runAsUser"])
    profile_mount = next(
        m["mountPath"]
        for m in container["volumeMounts"]
        if m["name"] == next(v["name"] for v in tmpl["volumes"] if "persistentVolumeClaim" in v)
    )
    offline = check_offline(docs, pods)

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "play.yaml"
    play = Play(path, pods)
    stale = play.leftovers()
    if stale:
        log(f"removing leftovers of an earlier run: {', '.join(stale)}")
        play.down()
        play.down_done = False
    path.write_text(yaml.safe_dump_all(played, sort_keys=False))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: ignored when run in the background
        signal.signal(sig, on_signal)
    ok = False
    report: list[str] = []
    try:
        log(f"podman kube play {path.relative_to(PROJECT_ROOT)} ({args.image})")
        t_play = time.time()
        out = podman("kube", "play", str(path), timeout=300)
        play_s = time.time() - t_play
        log(f"played in {play_s:.1f} s: {' '.join(out.stdout.split())[:300]}")
        for p in pods:
            p.started_at = go_time(inspect(p.container)["State"]["StartedAt"])
            state = json.loads(podman("pod", "inspect", p.pod).stdout)
            state = state[0] if isinstance(state, list) else state
            log(f"{p.pod}: {state.get('State')}, HTTP {p.http}, gRPC {p.grpc}")
        hc = inspect(pods[0].container)["Config"].get("Healthcheck") or {}
        log(
            f"podman healthcheck from livenessProbe: {hc.get('Test')}, interval {hc.get('Interval')}"
        )

        wait_ready(pods, container, args.ready_timeout)
        for p in pods:
            assert p.startup_at is not None and p.ready_at is not None
            log(
                f"{p.pod} ready {p.ready_at - p.started_at:.1f} s after its container started "
                f"(startup probe passed at {p.startup_at - p.started_at:.1f} s; liveness {p.liveness})"
            )

        for p in pods:
            if not http_probe(f"{p.http}/readyz", 10):
                raise PodTestError(f"{p.name}: /readyz not 200")
            status, _ = post_json(f"{p.http}/predict", {"windows": windows}, None)
            if status != 401:
                raise PodTestError(
                    f"{p.name}: /predict without the token -> {status}, expected 401"
                )
            log(f"{p.name} HTTP  /predict: {predict_http(p, windows, token)}")
            log(f"{p.name} gRPC  Predict: {predict_grpc(p, windows, token)}")
            uid, cmd = container_uid(p)
            if uid != run_as or uid == 0:
                raise PodTestError(f"{p.name}: PID 1 runs as uid {uid}, the manifest sets {run_as}")
            log(f"{p.name} PID 1 uid {uid} ({cmd[:80]})")
            log(f"{p.name} read-only root: {check_read_only(p, profile_mount)}")

        mounts = {
            p.key: [m for m in inspect(p.container)["Mounts"] if m["Destination"] == profile_mount]
            for p in pods
        }
        config = next(d for d in played if d["kind"] == "ConfigMap")["data"]
        secret_keys = [k for d in docs if d["kind"] == "Secret" for k in secret_values(d)]
        for p in pods:
            check_config(p, config, secret_keys)
            log(f"{p.name} resources: {check_resources(p, container.get('resources', {}))}")
        log(f"env: the ConfigMap's {len(config)} keys (envFrom) and {', '.join(secret_keys)} (env)")
        names = {m[0].get("Name") for m in mounts.values() if m}
        if names != {VOLUME}:
            raise PodTestError(
                f"{profile_mount} is not the one volume {VOLUME} in both pods: {mounts}"
            )

        for p in pods:
            n = EXTRA_WINDOWS[p.key]
            predict_http(p, windows * (n - n // 2), token)
            predict_grpc(p, windows * (n // 2), token)
        total = sum(p.sent for p in pods)
        log(
            "windows served: "
            + ", ".join(f"{p.name} {p.sent}" for p in pods)
            + f"; waiting for drift{' + shadow' if shadow_on else ''} to count {total} on every pod"
        )
        t_count = time.time()
        try:
            counted = wait_counted(pods, token, total, args.count_timeout, shadow_on)
        finally:
            writers = profile_writers(pods[0], config["HAR_PROFILE_DIR"])
            log(f"files in the shared profile folder, per writer: {writers}")
        count_s = time.time() - t_count

        report += [
            "",
            f"pod test of {args.image} ({args.kustomization.relative_to(PROJECT_ROOT)}), "
            f"kube play {play_s:.1f} s",
        ]
        for p in pods:
            assert p.ready_at is not None and p.startup_at is not None
            c = counted[p.key]
            report.append(
                f"  {p.pod}: ready {p.ready_at - p.started_at:.1f} s (startup probe "
                f"{p.startup_at - p.started_at:.1f} s, readiness probe, liveness {p.liveness}); "
                f"served {p.sent} windows; drift rows {c['rows']} ({c['drift_status']}), "
                + (
                    f"shadow windows {c['windows']} ({c['shadow_status']}, {c['workers']} "
                    f"writers, dropped {c['dropped']})"
                    if shadow_on
                    else f"shadow {c['shadow_status']}"
                )
            )
        if shadow_on:
            report.append(f"  shadow model {shadow_tag} (served {served})")
        else:
            report.append(
                "  shadow NOT checked (/monitoring/shadow answered off): "
                + (
                    "--shadow off"
                    if args.shadow == "off"
                    else "the image's Bento has no har-shadow service, which service.py "
                    "declares only when a shadow is set at build time (HAR_SHADOW_MODEL_TAG=... "
                    "make image); on such an image a shadow set at deploy time cannot start"
                )
            )
        report += [
            f"  both pods counted {total} = {' + '.join(str(p.sent) for p in pods)} windows "
            f"within {count_s:.1f} s (shared volume {VOLUME} at {profile_mount}; "
            f"HAR_PROFILE_INTERVAL_S {config.get('HAR_PROFILE_INTERVAL_S')}; files per writer "
            f"{writers})",
            f"  memory in use at the end: {memory_in_use(pods)} (limit "
            f"{container.get('resources', {}).get('limits', {}).get('memory')} each)",
            f"  uid of PID 1: {run_as} in both (runAsUser {run_as}); root filesystem read-only "
            f"(EROFS on /home/bentoml), {profile_mount} writable",
            "  played differently:",
            *(f"    - {c}" for c in changed),
            "  not played (validated offline by tests/project/test_deploy_k8s.py: kubectl "
            "kustomize + kubernetes-validate strict):",
            *(f"    - {s}" for s in skipped),
            "  checked here without playing:",
            *(f"    - {n}" for n in offline),
        ]
        ok = True
    except (
        PodTestError,
        KeyboardInterrupt,
        subprocess.TimeoutExpired,
        OSError,
        smoke.SmokeError,
    ) as exc:
        print(f"pod test FAILED: {exc}", file=sys.stderr)
        play.dump_logs()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # let the teardown finish
            signal.signal(sig, signal.SIG_IGN)
        down_s = play.down()
        left = play.leftovers()
        if left:
            print(f"pod test: left after teardown: {', '.join(left)}", file=sys.stderr)
            ok = False
        else:
            report.append(
                f"  torn down in {down_s:.1f} s (kube down + volume rm); no pod, container or volume left"
            )
    report.append(f"  total {time.time() - t_start:.0f} s: {'PASSED' if ok else 'FAILED'}")
    print("\n".join(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
