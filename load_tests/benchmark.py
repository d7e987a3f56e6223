"""Benchmark the served model against the raw model and a naive FastAPI app, on this machine.

Run from the repository root::

    .venv/bin/python load_tests/benchmark.py            # full run, ~8 min on 2 cores (+8 min with --monitoring both)
    .venv/bin/python load_tests/benchmark.py --quick    # smoke run, ~4 min
    .venv/bin/python load_tests/benchmark.py --monitoring both   # + monitoring on/off rounds
    .venv/bin/python load_tests/benchmark.py --only-ab --quick   # only the on/off rounds

One run measures, one thing at a time:

1. the raw model: ``har.inference.CompiledModel`` (XLA, padded buckets warmed up) with
   ``configure_tensorflow(1, 1)`` in a subprocess, batch sizes 1-128, windows/s
   (median of ``--raw-runs`` runs); the best is *the ceiling*;
2. the naive baseline (``load_tests/naive_baseline/app.py``: FastAPI + ``model.predict``
   per request) with ``wrk`` at concurrency 1, 16, 64;
3. ``bentoml serve service:HARService`` (started once per configuration with
   ``tests/serve_helpers.bentoml_serve``): HTTP ``POST /predict`` with ``wrk`` and gRPC
   ``Predict`` with ``h2load``, one window per request, closed loop at 1, 16, 64 requests
   in flight (HTTP then gRPC at each level): requests/s, p50, p99, errors, and the mean
   batch the model service formed (BentoML's ``adaptive_batch_size`` histogram on
   ``/metrics``); then HTTP c=1 again right after the c=64 cells (BentoML's dispatcher
   remembers how long recent batches waited);
4. ``POST /predict_recording`` with a synthetic one-hour 50 Hz recording: windows/s end
   to end (median of ``--uploads``) and as a fraction of the ceiling; failed uploads are
   counted and retried;
5. with ``--monitoring both`` (what ``make bench`` runs): monitoring on vs off, two
   servers up at once and loaded in turn, HTTP and gRPC at c=64, ``--ab-rounds`` rounds
   (order alternating), medians and the on/off ratio of every round.

Every row also shows where the CPU went while it was measured (percent of one core):
the server's processes (API worker / model worker / BentoML's supervisor), the load
generator, and everything else on the machine. The load generators run on the same
cores as the server. Results go to stdout and to ``load_tests/RESULTS.md``.

The model served is the bundled ``models/pretrained/har-cnn-bilstm.keras`` (imported into
the environment's BentoML store if absent). Until it exists, an untrained model of the
same architecture is imported under the same name into a temporary ``BENTOML_HOME``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `har` importable without installing
    sys.path.insert(0, str(ROOT))
RESULTS_FILE = ROOT / "load_tests" / "RESULTS.md"
NAIVE_APP = ROOT / "load_tests" / "naive_baseline" / "app.py"
CONCURRENCIES = (1, 16, 64)
RAW_BATCHES = (1, 8, 32, 64, 128)
#: BentoML service names in service.py (``@bentoml.service(name=...)``), to tell workers apart.
API_SERVICE_NAME = "har"
MODEL_SERVICE_NAME = "har-model"
BATCHED_METHOD = "predict_proba"
GRPC_PATH = "/har.v1.ActivityRecognition/Predict"
STANDIN_CLASSES = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
#: Targets (printed beside the figures).
TARGET_SPEEDUP = 20.0
TARGET_P50_C1_MS = 10.0
TARGET_P99_C16_MS = 250.0
TARGET_RECORDING_FRACTION = 0.60
CLIENT_TIMEOUT_S = 30
#: Cell names (rows are looked up by them when targets are checked).
RAW_CELL = "raw model (CompiledModel, XLA, 1 thread)"
NAIVE_CELL = "naive /predict (FastAPI, model.predict)"
RECORDING_CELL = "HTTP /predict_recording (1 h at 50 Hz)"
AB_PROTOCOLS = ("HTTP /predict", "gRPC Predict")
AB_SUFFIX = "(interleaved A/B)"
TARGET_MONITORING_RATIO = 0.90


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One measured cell of the results table.

    Attributes:
        cell: what was measured (``raw model``, ``naive /predict``, ``HTTP /predict``...).
        load: ``c=16`` (requests in flight) or ``batch=32``.
        throughput: windows per second (one window per request for the request cells).
        p50_ms, p99_ms: latency percentiles (None where it does not apply).
        errors: failed requests during the measurement (None where it does not apply).
        mean_batch: requests per batch the model service formed (None if not batched).
        cpu: percent of one core per process group while measured.
        note: anything else worth printing.
    """

    cell: str
    load: str
    throughput: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    mean_batch: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class LoadResult:
    """What a load generator reported for one measurement."""

    ok: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    loadgen_cpu: float
    loadgen_cpu_s: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class Options:
    """Command-line options (see :func:`parse_args`)."""

    quick: bool
    duration: int
    warmup: int
    raw_runs: int
    raw_run_s: float
    uploads: int
    monitoring: str
    ab_rounds: int
    ab_duration: int
    only_ab: bool
    results: Path | None
    profile: Path | None
    keep_tmp: bool
    command: str


# --------------------------------------------------------------------------- tools


def ensure_tools() -> None:
    """Make sure ``wrk`` and ``h2load`` exist: install them with apt-get (as root) or exit."""
    missing = [t for t in ("wrk", "h2load") if shutil.which(t) is None]
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "wrk", "nghttp2-client"]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {missing}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=False)
    if any(shutil.which(t) is None for t in missing):
        sys.exit(f"missing load generator(s) {missing}; install with: sudo {' '.join(cmd)}")


def tail(path: Path, n: int = 40) -> str:
    """The last ``n`` lines of a log file."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers 200 (or ``proc`` exits, or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's reaped children so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_child(cmd: Sequence[str], timeout: float) -> tuple[str, float, float]:
    """Run a load generator; return its stdout, wall seconds and CPU seconds.

    CPU is the delta of ``RUSAGE_CHILDREN`` around the run: nothing else is reaped meanwhile.
    """
    cpu0, t0 = children_cpu_seconds(), time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    wall, cpu = time.monotonic() - t0, children_cpu_seconds() - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout, wall, cpu


# --------------------------------------------------------------------------- CPU accounting


class CpuSampler:
    """CPU used by named groups of processes (and by everything else) over an interval.

    Percentages are of one core: 200 % is both cores of a 2-core machine.
    """

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self._me = psutil.Process()
        self._t0 = 0.0
        self._c0: dict[str, float] = {}
        self._busy0 = 0.0
        self._me0 = 0.0

    @staticmethod
    def _cpu(procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    @staticmethod
    def busy() -> float:
        """CPU seconds the whole machine has been busy (all cores, excluding idle and steal)."""
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq

    def _me_cpu(self) -> float:
        t = self._me.cpu_times()
        return t.user + t.system

    def start(self) -> None:
        self._c0 = {name: self._cpu(procs) for name, procs in self.groups.items()}
        self._busy0, self._me0, self._t0 = self.busy(), self._me_cpu(), time.monotonic()

    def stop(self, loadgen_cpu_s: float | None = None) -> dict[str, float]:
        """Per-group percent of one core since :meth:`start`; ``loadgen`` and ``others`` too.

        Args:
            loadgen_cpu_s: CPU seconds of an external load generator; None means this
                process was the load generator (its own CPU is counted as ``loadgen``).
        """
        wall = max(time.monotonic() - self._t0, 1e-9)
        used = {name: self._cpu(procs) - self._c0[name] for name, procs in self.groups.items()}
        me = self._me_cpu() - self._me0
        if loadgen_cpu_s is None:
            loadgen_cpu_s, me = me, 0.0
        others = self.busy() - self._busy0 - sum(used.values()) - me - loadgen_cpu_s
        out = {name: 100 * s / wall for name, s in used.items()}
        out["loadgen"] = 100 * loadgen_cpu_s / wall
        out["others"] = max(0.0, 100 * others / wall)
        return out


def server_groups(root_pid: int) -> dict[str, list[psutil.Process]]:
    """The processes of a ``bentoml serve`` tree, grouped as api / model / supervisor."""
    root = psutil.Process(root_pid)
    groups: dict[str, list[psutil.Process]] = {"api": [], "model": [], "supervisor": [root]}
    for p in root.children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        name = cmd[cmd.index("--service-name") + 1] if "--service-name" in cmd else None
        key = {API_SERVICE_NAME: "api", MODEL_SERVICE_NAME: "model"}.get(name or "", "supervisor")
        groups[key].append(p)
    return groups


# --------------------------------------------------------------------------- model set-up


@dataclass
class ModelSetup:
    """The model under test: its store tag, ``.keras`` file and card, and where it came from."""

    tag: str
    model_path: Path
    card_path: Path
    source: str


def prepare_model(tmp: Path) -> ModelSetup:
    """Put the model in a BentoML store and return where it is.

    The bundled model goes into the environment's store (``ensure_bundled_model``). If it
    is not there yet, an untrained model of the same architecture is saved in ``tmp`` and
    imported as ``har-cnn-bilstm`` into a temporary ``BENTOML_HOME`` (set in ``os.environ``
    before BentoML is imported, so the server started later sees the same store).
    """
    from har.settings import PRETRAINED_DIR

    bundled = (PRETRAINED_DIR / "har-cnn-bilstm.keras").is_file() and (
        PRETRAINED_DIR / "card.json"
    ).is_file()
    if not bundled:
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from har import registry

    if bundled:
        tag = registry.ensure_bundled_model()
        source = "bundled models/pretrained/har-cnn-bilstm.keras"
    else:
        import keras

        from har.card import ModelCard, Scaler
        from har.training.architecture import build_model

        keras.utils.set_random_seed(0)
        build_model(len(STANDIN_CLASSES)).save(tmp / "standin.keras")
        ModelCard(
            name="har-cnn-bilstm",
            classes=STANDIN_CLASSES,
            window=200,
            hop=100,
            sample_rate_hz=50,
            scaler=Scaler(mean=[0, 0, 9.8, 0, 0, 0], scale=[3, 3, 3, 60, 60, 60]),
        ).to_file(tmp / "standin-card.json")
        tag = registry.import_model(tmp / "standin.keras", tmp / "standin-card.json")
        source = "STAND-IN: untrained har.architecture.build_model(7) (bundled model absent)"
    folder = registry.model_folder(tag)
    return ModelSetup(tag, folder / registry.MODEL_FILE, folder / registry.CARD_FILE, source)


def example_window(seed: int = 0) -> np.ndarray:
    """One plausible ``(200, 6)`` window in canonical units (m/s², deg/s), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(200) / 50.0
    acc = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t), 9.81 + 0.3 * t / 4], axis=1)
    gyro = 40 * np.stack([np.cos(2 * np.pi * t), np.sin(np.pi * t), 0.2 * t], axis=1)
    x = np.concatenate([acc, gyro], axis=1) + rng.normal(0, 0.05, (200, 6))
    return np.round(x, 4).astype(np.float32)


def write_bodies(tmp: Path, window: np.ndarray) -> tuple[Path, Path]:
    """The HTTP JSON body and the gRPC framed body of a one-window request."""
    from har.v1 import har_pb2

    json_body = tmp / "predict-1.json"
    rounded = np.round(window.astype(np.float64), 4)  # ~10 KB, like a real client's JSON
    json_body.write_text(json.dumps({"windows": [rounded.tolist()]}))
    msg = har_pb2.PredictRequest(windows=[har_pb2.Window(values=window.ravel().tolist())])
    raw = msg.SerializeToString()
    grpc_body = tmp / "predict-1.grpc"
    grpc_body.write_bytes(b"\x00" + len(raw).to_bytes(4, "big") + raw)
    return json_body, grpc_body


def write_recording(path: Path, hours: float = 1.0, rate_hz: float = 50.0) -> int:
    """Write a synthetic IMU-like canonical CSV recording; return its number of samples.

    Every 30 s the motion changes (frequency 0.3-2.5 Hz, amplitude 0.2-4 m/s²) on top of
    gravity, with gyroscope rates to match and a little noise.
    """
    n = int(hours * 3600 * rate_hz)
    rng = np.random.default_rng(1)
    t = np.arange(n) / rate_hz
    seg = (t // 30).astype(int)
    freq = rng.uniform(0.3, 2.5, seg[-1] + 1)[seg]
    amp = rng.uniform(0.2, 4.0, seg[-1] + 1)[seg]
    ph = 2 * np.pi * freq * t
    noise = rng.normal(0, 0.05, (n, 6))
    acc = np.stack([amp * np.sin(ph), 0.5 * amp * np.cos(ph), 9.81 + 0.3 * amp * np.sin(2 * ph)])
    gyro = np.stack([60 * amp * np.cos(ph), 30 * amp * np.sin(ph), 10 * amp * np.cos(2 * ph)])
    data = np.column_stack([t, acc.T + noise[:, :3], gyro.T + noise[:, 3:]])
    np.savetxt(
        path,
        data,
        fmt=["%.3f"] + ["%.4f"] * 6,
        delimiter=",",
        header="timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z",
        comments="",
    )
    return n


# --------------------------------------------------------------------------- 1. raw model


def raw_worker(model_path: Path, batches: Sequence[int], runs: int, run_s: float) -> None:
    """(Subprocess) windows/s of the compiled model per batch size; prints one JSON line.

    TensorFlow threading is configured exactly as in the served model worker.
    """
    from har.inference import CompiledModel, configure_tensorflow
    from har.registry import load_keras
    from har.settings import get_settings

    configure_tensorflow(intra_op_threads=1, inter_op_threads=1)
    model = load_keras(model_path)
    compiled = CompiledModel(model, xla=True, max_batch_size=get_settings().max_batch_size)
    compiled.warmup()
    rng = np.random.default_rng(0)
    _, window, channels = model.input_shape
    rates: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for b in batches:
        x = rng.normal(size=(b, window, channels)).astype(np.float32)
        compiled(x)
        t0 = time.perf_counter()
        compiled(x)
        calls = max(1, int(run_s / max(time.perf_counter() - t0, 1e-6)))
        rates[str(b)] = []
        c0, busy0, w0 = time.process_time(), CpuSampler.busy(), time.perf_counter()
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(calls):
                compiled(x)
            rates[str(b)].append(b * calls / (time.perf_counter() - t0))
        wall, own = time.perf_counter() - w0, time.process_time() - c0
        cpu[str(b)] = {
            "model": 100 * own / wall,
            "others": max(0.0, 100 * (CpuSampler.busy() - busy0 - own) / wall),
        }
    print("RAW_JSON " + json.dumps({"rates": rates, "cpu": cpu}), flush=True)


def bench_raw(setup: ModelSetup, opts: Options) -> list[Row]:
    """Run :func:`raw_worker` in a subprocess; one row per batch size."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--raw-worker",
        str(setup.model_path),
        "--raw-runs",
        str(opts.raw_runs),
        "--raw-run-s",
        str(opts.raw_run_s),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RAW_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"raw model benchmark failed:\n{out.stderr[-3000:]}")
    data = json.loads(line.removeprefix("RAW_JSON "))
    rows = []
    for b in RAW_BATCHES:
        runs = data["rates"][str(b)]
        rows.append(
            Row(
                RAW_CELL,
                f"batch={b}",
                statistics.median(runs),
                cpu=data["cpu"][str(b)],
                note=f"median of {len(runs)} runs (min {min(runs):.0f}, max {max(runs):.0f})",
            )
        )
    return rows


# --------------------------------------------------------------------------- load generators

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("@BODY@", "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(url: str, lua: Path, concurrency: int, duration: int) -> LoadResult:
    """Closed-loop POSTs with ``wrk -t1 -cN``; errors = socket errors + HTTP status >= 400."""
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s"]
    cmd += ["--timeout", f"{CLIENT_TIMEOUT_S}s", "--latency", "-s", str(lua), url]
    stdout, wall, cpu = run_child(cmd, timeout=duration + CLIENT_TIMEOUT_S + 30)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout}")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    done = d["requests"] > 0
    return LoadResult(
        ok=d["requests"] - d["status"],
        errors=errors,
        duration_s=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1e3 if done else float("nan"),
        p99_ms=d["p99_us"] / 1e3 if done else float("nan"),
        loadgen_cpu=100 * cpu / wall,
        loadgen_cpu_s=cpu,
    )


def _h2load_cmd(url: str, body: Path, streams: int, *extra: str) -> list[str]:
    return [
        "h2load",
        "-c1",
        "-t1",
        f"-m{streams}",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-d",
        str(body),
        *extra,
        url,
    ]


def _h2load_numbers(stdout: str) -> dict[str, float]:
    """Parse h2load's summary: duration, done/succeeded/failed/errored/timeout, data bytes."""

    def grab(pattern: str) -> float:
        m = re.search(pattern, stdout)
        if m is None:
            raise RuntimeError(f"unexpected h2load output (no {pattern!r}):\n{stdout}")
        return float(m.group(1))

    unit = re.search(r"finished in ([\d.]+)(ms|s),", stdout)
    if unit is None:
        raise RuntimeError(f"unexpected h2load output:\n{stdout}")
    seconds = float(unit.group(1)) / (1000 if unit.group(2) == "ms" else 1)
    return {
        "duration_s": seconds,
        "done": grab(r"(\d+) done"),
        "succeeded": grab(r"(\d+) succeeded"),
        "failed": grab(r"(\d+) failed"),
        "errored": grab(r"(\d+) errored"),
        "timeout": grab(r"(\d+) timeout"),
        "data": grab(r"\((\d+)\) data"),
    }


def grpc_response_bytes(url: str, body: Path) -> int:
    """DATA bytes of one Predict answer as h2load counts them (one request, no load)."""
    stdout, _, _ = run_child(_h2load_cmd(url, body, 1, "-n1"), timeout=60)
    n = _h2load_numbers(stdout)
    if n["succeeded"] != 1:
        raise RuntimeError(f"h2load's single gRPC request failed:\n{stdout}")
    return int(n["data"])


def run_h2load(
    url: str, body: Path, concurrency: int, duration: int, resp_bytes: int, log: Path
) -> LoadResult:
    """Closed-loop gRPC unary calls over one HTTP/2 connection with ``concurrency`` streams.

    h2load only sees HTTP statuses (always 200 for gRPC): a call that failed with a
    grpc-status in the trailers carries no DATA. So OK calls = DATA bytes / the bytes of
    one OK answer (measured by :func:`grpc_response_bytes`), and errors = the rest.
    Latency percentiles come from h2load's per-request log.
    """
    log.unlink(missing_ok=True)
    cmd = _h2load_cmd(url, body, concurrency, f"-D{duration}", f"--log-file={log}")
    stdout, wall, cpu = run_child(cmd, timeout=duration + CLIENT_TIMEOUT_S + 30)
    n = _h2load_numbers(stdout)
    ok = min(int(round(n["data"] / resp_bytes)), int(n["succeeded"]))
    errors = int(n["done"] - n["succeeded"] + n["errored"] + n["timeout"]) + (
        int(n["succeeded"]) - ok
    )
    lat = np.loadtxt(log, usecols=2, ndmin=1) / 1e3 if log.stat().st_size else np.zeros(1)
    return LoadResult(
        ok=ok,
        errors=errors,
        duration_s=n["duration_s"],
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        loadgen_cpu=100 * cpu / wall,
        loadgen_cpu_s=cpu,
    )


def grpc_check(target: str, body: Path, calls: int) -> tuple[int, int, set[str]]:
    """Fire ``calls`` concurrent Predict calls with a real gRPC client: (ok, total, codes)."""
    import grpc

    from har.v1 import har_pb2, har_pb2_grpc

    raw = body.read_bytes()[5:]
    req = har_pb2.PredictRequest.FromString(raw)
    codes: set[str] = set()
    ok = 0
    with grpc.insecure_channel(target) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        futures = [stub.Predict.future(req, timeout=CLIENT_TIMEOUT_S) for _ in range(calls)]
        for f in futures:
            try:
                resp = f.result()
                ok += int(len(resp.predictions) == 1)
            except grpc.RpcError as exc:
                codes.add(str(exc.code()))
    return ok, calls, codes


# --------------------------------------------------------------------------- BentoML metrics


def batch_counters(url: str) -> tuple[float, float] | None:
    """(sum, count) of BentoML's adaptive_batch_size histogram for the batched method."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    total, count, seen = 0.0, 0.0, False
    for fam in text_string_to_metric_families(text):
        if "adaptive_batch_size" not in fam.name:
            continue
        for s in fam.samples:
            if s.labels.get("method_name") != BATCHED_METHOD:
                continue
            if s.name.endswith("_sum"):
                total, seen = total + s.value, True
            elif s.name.endswith("_count"):
                count += s.value
    return (total, count) if seen else None


def mean_batch(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float:
    """Mean batch size between two :func:`batch_counters` readings (nan if unknown)."""
    if before is None or after is None or after[1] <= before[1]:
        return float("nan")
    return (after[0] - before[0]) / (after[1] - before[1])


# --------------------------------------------------------------------------- py-spy (optional)


@contextlib.contextmanager
def profiled(
    opts: Options, name: str, groups: dict[str, list[psutil.Process]], seconds: int
) -> Iterator[None]:
    """With ``--profile DIR``: sample the API and model workers with py-spy during a cell."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if opts.profile is None or not Path(spy).is_file():
        yield
        return
    opts.profile.mkdir(parents=True, exist_ok=True)
    procs = []
    for role in ("api", "model"):
        for p in groups.get(role, []):
            out = opts.profile / f"{name}-{role}-{p.pid}.txt"
            cmd = [spy, "record", "-r", "50", "-d", str(seconds), "-f", "raw", "-o", str(out)]
            cmd += ["--nonblocking", "-p", str(p.pid)]
            procs.append(
                (out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            )
    try:
        yield
    finally:
        for out, proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=seconds + 30)
            if out.is_file():
                print(f"\n  py-spy {out.name}: top self time\n" + summarize_collapsed(out))


def summarize_collapsed(path: Path, top: int = 12) -> str:
    """Top functions by self samples (and by inclusive samples) of a collapsed py-spy file."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_str = line.rpartition(" ")
        if not n_str.isdigit():
            continue
        n = int(n_str)
        frames = stack.split(";")
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    lines = [
        f"    {100 * n / total:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda kv: -kv[1])
    ]
    return "\n".join(lines[:top]) if total else "    (no samples)"


# --------------------------------------------------------------------------- cells


def measure_cell(
    name: str,
    load: Callable[[], LoadResult],
    warm: Callable[[], Any],
    groups: dict[str, list[psutil.Process]],
    metrics_url: str | None,
    concurrency: int,
) -> Row:
    """Warm up, then measure one cell with CPU accounting and batch-size counters."""
    warm()
    sampler = CpuSampler(groups)
    before = batch_counters(metrics_url) if metrics_url else None
    sampler.start()
    res = load()
    cpu = sampler.stop(loadgen_cpu_s=res.loadgen_cpu_s)
    cpu["loadgen"] = res.loadgen_cpu  # over the load generator's own lifetime
    after = batch_counters(metrics_url) if metrics_url else None
    row = Row(
        name,
        f"c={concurrency}",
        res.rate,
        res.p50_ms,
        res.p99_ms,
        res.errors,
        mean_batch(before, after) if metrics_url else None,
        cpu,
        res.note,
    )
    print("  " + format_row_plain(row), flush=True)
    return row


def bench_naive(setup: ModelSetup, opts: Options, tmp: Path, lua: Path) -> list[Row]:
    """The naive FastAPI app at each concurrency, with wrk."""
    port = free_port()
    log = tmp / "naive.log"
    cmd = [sys.executable, str(NAIVE_APP), "--model", str(setup.model_path)]
    cmd += ["--card", str(setup.card_path), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    rows = []
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 180, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"naive baseline did not start: {exc}\n{tail(log)}") from None
        url = f"http://127.0.0.1:{port}/predict"
        groups = {"server": [psutil.Process(proc.pid)]}
        # At c=64 a naive request takes seconds: measure long enough to see many finish.
        duration = max(opts.duration, 10)
        for c in CONCURRENCIES:
            rows.append(
                measure_cell(
                    NAIVE_CELL,
                    lambda c=c: run_wrk(url, lua, c, duration),
                    lambda c=c: run_wrk(url, lua, c, opts.warmup),
                    groups,
                    None,
                    c,
                )
            )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return rows


def bench_recording(
    base_url: str, csv_bytes: bytes, uploads: int, groups: dict[str, list[psutil.Process]]
) -> Row:
    """``POST /predict_recording`` of the one-hour CSV: windows/s, median of ``uploads``.

    A failed upload is counted as an error (its answer goes into the note) and retried,
    up to ``uploads`` extra attempts, so one failure does not hide the throughput.
    """
    import httpx

    failures: list[str] = []

    def upload() -> tuple[int, float] | None:
        t0 = time.perf_counter()
        r = httpx.post(
            f"{base_url}/predict_recording",
            files={"file": ("one-hour-50hz.csv", csv_bytes, "text/csv")},
            timeout=600,
        )
        wall = time.perf_counter() - t0
        if r.status_code != 200:
            failures.append(f"HTTP {r.status_code} {' '.join(r.text[:120].split())}")
            print(f"  upload failed: {failures[-1]}", flush=True)
            return None
        return len(r.json()["windows"]), wall

    upload()  # warm-up: the first upload pays for allocations and lazy imports
    sampler = CpuSampler(groups)
    sampler.start()
    results: list[tuple[int, float]] = []
    for _ in range(2 * uploads):
        if len(results) == uploads:
            break
        if (res := upload()) is not None:
            results.append(res)
    cpu = sampler.stop()  # this process (httpx) is the load generator
    if not results:
        raise RuntimeError(f"every upload failed: {failures}")
    rates = [n / wall for n, wall in results]
    note = (
        f"{results[0][0]} windows, {len(csv_bytes) / 1e6:.1f} MB CSV, median of "
        f"{len(results)} uploads; p50 = time per upload; lg = this script's httpx client"
    )
    if failures:
        note += "; FAILED uploads (incl. warm-up): " + "; ".join(failures).replace("|", "/")
    row = Row(
        RECORDING_CELL,
        "1 upload",
        statistics.median(rates),
        p50_ms=1000 * statistics.median(wall for _, wall in results),
        errors=len(failures),
        cpu=cpu,
        note=note,
    )
    print("  " + format_row_plain(row), flush=True)
    return row


def server_env(setup: ModelSetup, tmp: Path, monitoring: bool, name: str) -> dict[str, str]:
    """Environment of a benchmarked ``bentoml serve`` (profiles under ``tmp/profiles-NAME``)."""
    return {
        "HAR_MODEL_TAG": setup.tag,
        "HAR_MONITORING": "1" if monitoring else "0",
        "HAR_PROFILE_DIR": str(tmp / f"profiles-{name}"),
        "WHYLOGS_NO_ANALYTICS": "1",
    }


def http_row(
    name: str,
    server: Any,
    groups: dict[str, list[psutil.Process]],
    lua: Path,
    c: int,
    seconds: int,
    warmup: int,
) -> Row:
    """One ``wrk`` cell against ``server``'s ``/predict`` at ``c`` connections."""
    url = f"{server.url}/predict"
    return measure_cell(
        name,
        lambda: run_wrk(url, lua, c, seconds),
        lambda: run_wrk(url, lua, c, warmup),
        groups,
        server.url,
        c,
    )


def grpc_row(
    name: str,
    server: Any,
    groups: dict[str, list[psutil.Process]],
    body: Path,
    c: int,
    seconds: int,
    warmup: int,
    resp_bytes: int,
    log: Path,
) -> Row:
    """One ``h2load`` cell against ``server``'s gRPC ``Predict`` with ``c`` streams."""
    url = f"http://{server.grpc_target}{GRPC_PATH}"
    return measure_cell(
        name,
        lambda: run_h2load(url, body, c, seconds, resp_bytes, log),
        lambda: run_h2load(url, body, c, warmup, resp_bytes, log),
        groups,
        server.url,
        c,
    )


def bench_server(
    opts: Options,
    setup: ModelSetup,
    tmp: Path,
    monitoring: bool,
    lua: Path,
    grpc_body: Path,
    csv_bytes: bytes | None,
) -> list[Row]:
    """Start ``bentoml serve`` once and measure every cell.

    Cells run in order of concurrency, HTTP then gRPC at each level: BentoML's batching
    dispatcher learns a wait time from recent batches, and after heavy load it keeps
    waiting that long for minutes, so a c=1 cell measured after a c=64 cell would show
    the previous cell's history. That effect gets its own row ("c=1 after c=64").
    """
    sys.path.insert(0, str(ROOT / "tests"))
    serve_helpers = importlib.import_module("serve_helpers")
    label = "on" if monitoring else "off"
    env = server_env(setup, tmp, monitoring, label)
    log_dir = tmp / f"serve-monitoring-{label}"
    log_dir.mkdir(exist_ok=True)
    rows: list[Row] = []
    suffix = f" [monitoring {label}]"
    print(f"\nstarting bentoml serve (monitoring {label}) ...", flush=True)
    t0 = time.monotonic()
    with serve_helpers.bentoml_serve(env, log_dir=log_dir) as server:
        print(f"  ready in {time.monotonic() - t0:.0f} s; log {server.log}", flush=True)
        groups = server_groups(server.proc.pid)
        grpc_url = f"http://{server.grpc_target}{GRPC_PATH}"

        def attempt(name: str, load: str, fn: Callable[[], Row]) -> Row:
            """Run a cell; a failure becomes a row saying so (and the server log is shown)."""
            try:
                return fn()
            except Exception as exc:
                print(f"  {name} {load} FAILED: {exc}\n{server.log_tail(30)}", flush=True)
                msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200].replace("|", "/")
                return Row(name, load, float("nan"), note=f"FAILED: {msg}")

        def http_cell(c: int, name: str = "HTTP /predict" + suffix) -> Row:
            with profiled(opts, f"http-c{c}-mon-{label}", groups, opts.duration):
                return http_row(name, server, groups, lua, c, opts.duration, opts.warmup)

        def grpc_cell(c: int, resp_bytes: int) -> Row:
            log = tmp / f"h2load-c{c}.log"
            with profiled(opts, f"grpc-c{c}-mon-{label}", groups, opts.duration):
                row = grpc_row(
                    "gRPC Predict" + suffix,
                    server,
                    groups,
                    grpc_body,
                    c,
                    opts.duration,
                    opts.warmup,
                    resp_bytes,
                    log,
                )
            ok, total, codes = grpc_check(server.grpc_target, grpc_body, max(2 * c, 8))
            row.note = f"then a grpc client burst: {ok}/{total} OK" + (
                f" {sorted(codes)}" if codes else ""
            )
            if ok != total:
                row.errors = (row.errors or 0) + (total - ok)
            return row

        http_name, grpc_name = "HTTP /predict" + suffix, "gRPC Predict" + suffix
        ok, total, codes = grpc_check(server.grpc_target, grpc_body, 1)
        resp_bytes = grpc_response_bytes(grpc_url, grpc_body) if ok == total else 0
        if resp_bytes:
            print(
                f"  gRPC body checked with a grpc client; one answer = {resp_bytes} B", flush=True
            )
        else:
            print(f"  a grpc client's Predict with the benchmark body failed: {codes}", flush=True)
        for c in CONCURRENCIES:
            rows.append(attempt(http_name, f"c={c}", lambda c=c: http_cell(c)))
            if resp_bytes:
                rows.append(attempt(grpc_name, f"c={c}", lambda c=c: grpc_cell(c, resp_bytes)))
            else:
                rows.append(Row(grpc_name, f"c={c}", float("nan"), note=f"FAILED: {codes}"))
        after_name = http_name + " right after c=64"
        after = attempt(after_name, "c=1", lambda: http_cell(1, after_name))
        after.note = after.note or "informational: the dispatcher's learned wait after heavy load"
        rows.append(after)
        if csv_bytes is not None:
            rows.append(
                attempt(
                    RECORDING_CELL,
                    "1 upload",
                    lambda: bench_recording(server.url, csv_bytes, opts.uploads, groups),
                )
            )
    return rows


def bench_monitoring_ab(
    opts: Options, setup: ModelSetup, tmp: Path, lua: Path, grpc_body: Path
) -> tuple[list[Row], list[str]]:
    """Monitoring on vs off, interleaved: two servers up at once, loaded one at a time.

    Both servers (``HAR_MONITORING=1`` and ``=0``) start together and stay up; each
    round measures HTTP c=64 then gRPC c=64 on one server, then on the other (the order
    alternates between rounds), so slow drifts of the shared machine hit both sides
    alike. The idle server uses no measurable CPU. Returns the median rows of each side
    and a Markdown table of every round with the per-round on/off ratios.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    serve_helpers = importlib.import_module("serve_helpers")
    rounds = opts.ab_rounds
    c = 64
    samples: dict[tuple[str, str], list[Row]] = {}
    print(f"\n5. monitoring on vs off, {rounds} interleaved rounds at c={c}", flush=True)
    from bentoml._internal.configuration.containers import BentoMLContainer

    # Each `bentoml serve` wipes and reuses {BENTOML_HOME}/prometheus_multiproc_dir, so
    # two servers on one home would erase each other's metrics: give each its own home
    # that shares the model store.
    models = Path(BentoMLContainer.bentoml_home.get()) / "models"
    with contextlib.ExitStack() as stack:
        servers = {}
        for label in ("on", "off"):
            home = tmp / f"ab-home-{label}"
            home.mkdir(exist_ok=True)
            if not (home / "models").exists():
                (home / "models").symlink_to(models.resolve(), target_is_directory=True)
            env = {
                **server_env(setup, tmp, label == "on", f"ab-{label}"),
                "BENTOML_HOME": str(home),
            }
            log_dir = tmp / f"ab-serve-{label}"
            log_dir.mkdir(exist_ok=True)
            servers[label] = stack.enter_context(serve_helpers.bentoml_serve(env, log_dir=log_dir))
        groups = {k: server_groups(s.proc.pid) for k, s in servers.items()}
        resp_bytes = grpc_response_bytes(
            f"http://{servers['on'].grpc_target}{GRPC_PATH}", grpc_body
        )
        for i in range(rounds):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for label in order:
                s, g = servers[label], groups[label]
                samples.setdefault(("HTTP /predict", label), []).append(
                    http_row(
                        f"HTTP /predict [monitoring {label}] round {i + 1}",
                        s,
                        g,
                        lua,
                        c,
                        opts.ab_duration,
                        opts.warmup,
                    )
                )
                samples.setdefault(("gRPC Predict", label), []).append(
                    grpc_row(
                        f"gRPC Predict [monitoring {label}] round {i + 1}",
                        s,
                        g,
                        grpc_body,
                        c,
                        opts.ab_duration,
                        opts.warmup,
                        resp_bytes,
                        tmp / f"ab-h2load-{label}.log",
                    )
                )
        with contextlib.suppress(OSError, ValueError):
            drift_url = f"{servers['on'].url}/monitoring/drift"
            with urllib.request.urlopen(drift_url, timeout=60) as r:
                rows_seen = json.load(r).get("rows")
            print(f"  monitoring-on server profiled {rows_seen} rows so far", flush=True)
    rows: list[Row] = []
    lines = [
        f"| round | {' | '.join(f'{p} on | {p} off | on/off' for p in AB_PROTOCOLS)} |",
        "|---:|" + "---:|---:|---:|" * len(AB_PROTOCOLS),
    ]
    for i in range(rounds):
        cells = []
        for p in AB_PROTOCOLS:
            on, off = samples[(p, "on")][i].throughput, samples[(p, "off")][i].throughput
            cells.append(f"{on:,.0f} | {off:,.0f} | {on / off if off else float('nan'):.2f}")
        lines.append(f"| {i + 1} | {' | '.join(cells)} |")
    ratios = []
    for p in AB_PROTOCOLS:
        per_round = [
            a.throughput / b.throughput
            for a, b in zip(samples[(p, "on")], samples[(p, "off")], strict=True)
            if b.throughput > 0
        ]
        ratios.append(f"{statistics.median(per_round):.2f}" if per_round else "n/a")
        for label in ("on", "off"):
            runs = samples[(p, label)]
            med = statistics.median(r.throughput for r in runs)
            cpu = {k: statistics.median(r.cpu.get(k, 0.0) for r in runs) for k in runs[0].cpu}
            rows.append(
                Row(
                    f"{p} [monitoring {label}] {AB_SUFFIX}",
                    f"c={c}",
                    med,
                    statistics.median(r.p50_ms for r in runs if r.p50_ms is not None),
                    statistics.median(r.p99_ms for r in runs if r.p99_ms is not None),
                    sum(r.errors or 0 for r in runs),
                    statistics.median(r.mean_batch for r in runs if r.mean_batch is not None),
                    cpu,
                    f"median of {rounds} rounds of {opts.ab_duration} s",
                )
            )
    flat = [x for r in ratios for x in ("", "", f"**{r}**")]
    lines.append(f"| median | {' | '.join(flat)} |")
    return rows, lines


# --------------------------------------------------------------------------- report


def fmt(v: float | int | None, digits: int = 1) -> str:
    """A number for the table ('-' for None, 'n/a' for nan)."""
    if v is None:
        return "-"
    if isinstance(v, float) and not np.isfinite(v):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:,.{digits}f}"


def cpu_text(cpu: dict[str, float]) -> str:
    """CPU split as ``api 95 / model 60 / sup 1; lg 20; others 3`` (percent of a core)."""
    short = {"supervisor": "sup", "loadgen": "lg"}
    server = [
        f"{short.get(k, k)} {v:.0f}" for k, v in cpu.items() if k not in ("loadgen", "others")
    ]
    parts = [" / ".join(server)]
    if "loadgen" in cpu:
        parts.append(f"lg {cpu['loadgen']:.0f}")
    if "others" in cpu:
        parts.append(f"others {cpu['others']:.0f}")
    return "; ".join(p for p in parts if p)


def format_row_plain(row: Row) -> str:
    """One row for progress output."""
    return (
        f"{row.cell} {row.load}: {fmt(row.throughput)} windows/s, p50 {fmt(row.p50_ms)} ms, "
        f"p99 {fmt(row.p99_ms)} ms, errors {fmt(row.errors)}, batch {fmt(row.mean_batch)}, "
        f"CPU% {cpu_text(row.cpu)} {row.note}"
    )


def table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    head = (
        "| cell | load | windows/s | p50 ms | p99 ms | errors | mean batch | "
        "CPU % of one core (server procs; load gen; others) | note |\n"
        "|---|---|---:|---:|---:|---:|---:|---|---|\n"
    )
    body = "".join(
        f"| {r.cell} | {r.load} | {fmt(r.throughput, 0)} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} | "
        f"{fmt(r.errors)} | {fmt(r.mean_batch)} | {cpu_text(r.cpu)} | {r.note} |\n"
        for r in rows
    )
    return head + body


def find(rows: list[Row], cell: str, load: str) -> Row | None:
    """The row of ``cell`` at ``load`` (None if it was not measured)."""
    return next((r for r in rows if r.cell == cell and r.load == load), None)


def targets(rows: list[Row], primary: str) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target; ``primary`` = the main monitoring label."""
    out: list[tuple[str, str, bool | None]] = []
    raw = [r for r in rows if r.cell == RAW_CELL]
    ceiling = max((r.throughput for r in raw), default=float("nan"))
    naive = find(rows, NAIVE_CELL, "c=64")
    tag = f" [monitoring {primary}]"
    for proto in ("HTTP /predict", "gRPC Predict"):
        r1, r16, r64 = (find(rows, proto + tag, f"c={c}") for c in (1, 16, 64))
        if r64 is not None and naive is not None:
            ratio = r64.throughput / naive.throughput if naive.throughput > 0 else float("inf")
            out.append(
                (
                    f"{proto} c=64 >= {TARGET_SPEEDUP:.0f}x naive c=64, zero errors",
                    f"{r64.throughput:,.0f} vs {naive.throughput:,.1f} windows/s = {ratio:.1f}x, "
                    f"{r64.errors} errors",
                    ratio >= TARGET_SPEEDUP and r64.errors == 0,
                )
            )
        if r1 is not None and r1.p50_ms is not None:
            out.append(
                (
                    f"{proto} c=1 p50 < {TARGET_P50_C1_MS:.0f} ms",
                    f"{r1.p50_ms:.1f} ms",
                    r1.p50_ms < TARGET_P50_C1_MS,
                )
            )
        if r16 is not None and r16.p99_ms is not None:
            out.append(
                (
                    f"{proto} c=16 p99 < {TARGET_P99_C16_MS:.0f} ms",
                    f"{r16.p99_ms:.1f} ms",
                    r16.p99_ms < TARGET_P99_C16_MS,
                )
            )
    rec = find(rows, RECORDING_CELL, "1 upload")
    if rec is not None and raw:
        frac = rec.throughput / ceiling
        out.append(
            (
                f"recording >= {100 * TARGET_RECORDING_FRACTION:.0f} % of the raw ceiling "
                "(and no failed upload)",
                f"{rec.throughput:,.0f} / {ceiling:,.0f} windows/s = {100 * frac:.0f} %, "
                f"{rec.errors} failed uploads",
                frac >= TARGET_RECORDING_FRACTION and not rec.errors,
            )
        )
    for proto in AB_PROTOCOLS:
        on = find(rows, f"{proto} [monitoring on] {AB_SUFFIX}", "c=64")
        off = find(rows, f"{proto} [monitoring off] {AB_SUFFIX}", "c=64")
        if on is None or off is None or not off.throughput > 0:
            continue
        ratio = on.throughput / off.throughput
        out.append(
            (
                f"{proto} c=64 throughput with monitoring on >= "
                f"{100 * TARGET_MONITORING_RATIO:.0f} % of off (interleaved medians)",
                f"{on.throughput:,.0f} / {off.throughput:,.0f} = {ratio:.2f}",
                ratio >= TARGET_MONITORING_RATIO,
            )
        )
    return out


def targets_table(items: list[tuple[str, str, bool | None]]) -> str:
    """Targets as a Markdown table."""
    text = "| target | measured | met? |\n|---|---|---|\n"
    for name, measured, met in items:
        verdict = "-" if met is None else ("met" if met else "**NOT met**")
        text += f"| {name} | {measured} | {verdict} |\n"
    return text


def machine() -> str:
    """nproc, CPU model and RAM of this machine."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {ram:.1f} GiB RAM, {platform.platform()}"


def git_commit() -> str:
    """Short HEAD, with '+ uncommitted changes' when the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def contention(rows: list[Row]) -> str:
    """A warning when other processes used a noticeable share of the CPU during the cells."""
    others = [r.cpu["others"] for r in rows if "others" in r.cpu]
    if not others or statistics.median(others) < 25:
        return ""
    return (
        f"\n**Warning: the machine was not idle.** Other processes used a median of "
        f"{statistics.median(others):.0f} % of one core (max {max(others):.0f} %) while the cells "
        "were measured (column `others`): every figure above understates what this machine "
        "can do. Re-run on an idle machine before comparing with targets.\n"
    )


def ab_section(lines: list[str], opts: Options) -> str:
    """The monitoring on/off rounds as a Markdown section ('' when not measured)."""
    if not lines:
        return ""
    table = "\n".join(lines)
    return f"""
## Monitoring overhead (on vs off, interleaved)

Two servers run at once, one with `HAR_MONITORING=1` and one with `=0`; each round
loads one, then the other ({opts.ab_duration} s per cell after {opts.warmup} s of warm-up,
order alternating between rounds), so both see the same state of the shared machine.
Windows/s per round and the ratio measured in that round:

{table}
"""


def report(
    rows: list[Row],
    opts: Options,
    setup: ModelSetup,
    primary: str,
    started: dt.datetime,
    ab_lines: list[str] | None = None,
) -> str:
    """RESULTS.md text."""
    items = targets(rows, primary)
    lg = [r.cpu["loadgen"] for r in rows if "loadgen" in r.cpu]
    mode = "quick" if opts.quick else "full"
    naive_s = max(opts.duration, 10)
    return f"""# Benchmark results

Written by `load_tests/benchmark.py` (see `load_tests/README.md`); overwritten on every run.

- Date: {started.strftime("%Y-%m-%d %H:%M %Z")}
- Commit: {git_commit()}
- Machine: {machine()}
- Command: `{opts.command}` ({mode} mode: {opts.duration} s per cell, naive baseline
  {naive_s} s, after {opts.warmup} s of warm-up; raw model: median of {opts.raw_runs} runs of
  ~{opts.raw_run_s} s per batch size)
- Model: `{setup.tag}` — {setup.source}
- Load generators: `wrk -t1` (HTTP, closed loop, c connections) and `h2load -c1 -t1 -mc`
  (gRPC unary Predict, one HTTP/2 connection, c streams); one 200x6 window per request,
  so requests/s = windows/s.

## Results

{table(rows)}
CPU columns: percent of one core while the row was measured (200 % = the whole
2-core machine). `api` = BentoML API worker (HTTP + gRPC, validation, JSON/protobuf,
monitoring), `model` = the batched model worker, `sup` = BentoML's supervisor,
`lg` = the load generator, `others` = everything else on the machine (other jobs).
**The load generator shares the machine's {os.cpu_count()} cores with the server**; it used
{min(lg, default=0):.0f}-{max(lg, default=0):.0f} % of one core during the cells above.
Mean batch = requests per call of the batched model method, from BentoML's
`adaptive_batch_size` histogram. "right after c=64": BentoML's dispatcher waits for
about as long as recent batches waited, so after heavy load single requests wait longer
until that estimate decays (tens of seconds); the other c=1 rows are measured first.
{contention(rows)}{ab_section(ab_lines or [], opts)}
## Targets

{targets_table(items)}"""


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Benchmark raw model vs naive FastAPI vs the BentoML service (HTTP, gRPC).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="short cells (a smoke run, ~3 min)")
    p.add_argument("--duration", type=int, help="seconds measured per cell (default 15; quick 4)")
    p.add_argument("--warmup", type=int, help="warm-up seconds per cell (default 3; quick 1)")
    p.add_argument("--raw-runs", type=int, default=5, help="runs per batch size (median)")
    p.add_argument("--raw-run-s", type=float, help="seconds per raw run (default 1; quick 0.3)")
    p.add_argument("--uploads", type=int, default=3, help="recording uploads (median)")
    p.add_argument(
        "--monitoring",
        choices=("on", "off", "both"),
        default="on",
        help="HAR_MONITORING for the server; 'both' adds interleaved on/off rounds at c=64",
    )
    p.add_argument("--ab-rounds", type=int, help="on/off rounds (default 8; quick 3)")
    p.add_argument("--ab-duration", type=int, help="seconds per on/off cell (default 10; quick 5)")
    p.add_argument(
        "--only-ab", action="store_true", help="only the on/off rounds (prints, writes no file)"
    )
    p.add_argument("--results", type=Path, default=RESULTS_FILE, help="Markdown output file")
    p.add_argument("--no-results", action="store_true", help="do not write the results file")
    p.add_argument("--profile", type=Path, help="py-spy the workers during the cells into DIR")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--raw-worker", type=Path, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    opts = Options(
        quick=ns.quick,
        duration=ns.duration or (4 if ns.quick else 15),
        warmup=ns.warmup or (1 if ns.quick else 3),
        raw_runs=max(5, ns.raw_runs),
        raw_run_s=ns.raw_run_s or (0.3 if ns.quick else 1.0),
        uploads=ns.uploads,
        monitoring="both" if ns.only_ab else ns.monitoring,
        ab_rounds=ns.ab_rounds or (3 if ns.quick else 8),
        ab_duration=ns.ab_duration or (5 if ns.quick else 10),
        only_ab=ns.only_ab,
        results=None if ns.no_results or ns.only_ab else ns.results,
        profile=ns.profile,
        keep_tmp=ns.keep_tmp,
        command=shlex.join(
            [".venv/bin/python", "load_tests/benchmark.py", *(argv or sys.argv[1:])]
        ),
    )
    return opts, ns


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, print the table and write RESULTS.md."""
    opts, ns = parse_args(argv)
    if ns.raw_worker is not None:
        raw_worker(ns.raw_worker, RAW_BATCHES, opts.raw_runs, opts.raw_run_s)
        return 0
    ensure_tools()
    started = dt.datetime.now(dt.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="har-bench-"))
    rows: list[Row] = []
    try:
        setup = prepare_model(tmp)
        print(f"model {setup.tag}: {setup.source}\ntemporary files: {tmp}", flush=True)
        json_body, grpc_body = write_bodies(tmp, example_window())
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA.replace("@BODY@", str(json_body)))
        primary = "off" if opts.monitoring == "off" else "on"
        ab_lines: list[str] = []
        if not opts.only_ab:
            csv_path = tmp / "one-hour-50hz.csv"
            write_recording(csv_path)
            print("\n1. raw model", flush=True)
            rows += bench_raw(setup, opts)
            for r in rows:
                print("  " + format_row_plain(r), flush=True)
            print("\n2. naive baseline", flush=True)
            rows += bench_naive(setup, opts, tmp, lua)
            print("\n3-4. BentoML service", flush=True)
            csv_bytes = csv_path.read_bytes()
            rows += bench_server(opts, setup, tmp, primary == "on", lua, grpc_body, csv_bytes)
        if opts.monitoring == "both":
            ab_rows, ab_lines = bench_monitoring_ab(opts, setup, tmp, lua, grpc_body)
            rows += ab_rows

        text = report(rows, opts, setup, primary, started, ab_lines)
        print("\n" + text)
        if opts.results is not None:
            opts.results.write_text(text)
            print(f"written to {opts.results}")
        return 0
    finally:
        if opts.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
