"""Load generators: ``wrk`` (HTTP), ``h2load`` (gRPC over HTTP/2) and a real gRPC client.

Each runs closed loop (a fixed number of requests in flight) and reports a
:class:`LoadResult`: OK requests, errors, duration, p50/p99 and its own CPU.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .common import CLIENT_TIMEOUT_S
from .cpu import children_cpu_seconds


@dataclass
class LoadResult:
    """What a load generator reported for one measurement (durations in s, latency in ms).

    ``loadgen_cpu`` is the generator's CPU in percent of one core over its own lifetime,
    ``loadgen_cpu_s`` the same in CPU seconds.
    """

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
        """OK requests per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


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


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "@TYPE@"
@HEADERS@local f = assert(io.open("@BODY@", "rb"))
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


def write_wrk_script(
    path: Path,
    body: Path,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Path:
    """The ``wrk`` Lua script that POSTs ``body`` (as ``content_type``, with ``headers``)
    and prints a JSON summary."""
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    text = WRK_LUA.replace("@BODY@", str(body)).replace("@TYPE@", content_type)
    path.write_text(text.replace("@HEADERS@", extra))
    return path


WRK_MIXED_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local prepared, sent = {}, 0

function init(args)
  for line in io.lines("@BODIES@") do
    prepared[#prepared + 1] = wrk.format(nil, nil, nil, line)
  end
end

function request()
  sent = sent + 1
  return prepared[(sent - 1) % #prepared + 1]
end
""" + WRK_LUA.split("f:close()", 1)[1]


def write_wrk_mixed_script(path: Path, bodies: Path) -> Path:
    """The ``wrk`` Lua script that POSTs the JSON bodies of ``bodies`` (one per line) in
    turn, each connection's thread cycling through all of them (requests formatted once, at
    start), and prints the same JSON summary as :func:`write_wrk_script`'s."""
    path.write_text(WRK_MIXED_LUA.replace("@BODIES@", str(bodies)))
    return path


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


def _h2load_cmd(url: str, body: Path, streams: int, *extra: str, connections: int = 1) -> list[str]:
    """``streams`` concurrent calls in all, spread evenly over ``connections`` (one thread)."""
    conns = min(connections, streams)
    if streams % conns:
        raise ValueError(f"{streams} streams do not split evenly over {conns} connections")
    return [
        "h2load",
        f"-c{conns}",
        "-t1",
        f"-m{streams // conns}",
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
    url: str,
    body: Path,
    concurrency: int,
    duration: int,
    resp_bytes: int,
    log: Path,
    connections: int = 1,
) -> LoadResult:
    """Closed-loop gRPC unary calls, ``concurrency`` streams over ``connections`` HTTP/2
    connections (default one: one connection lands on one API worker).

    h2load only sees HTTP statuses (always 200 for gRPC): a call that failed with a
    grpc-status in the trailers carries no DATA. So OK calls = DATA bytes / the bytes of
    one OK answer (measured by :func:`grpc_response_bytes`), and errors = the rest.
    Latency percentiles come from h2load's per-request log.
    """
    log.unlink(missing_ok=True)
    cmd = _h2load_cmd(
        url, body, concurrency, f"-D{duration}", f"--log-file={log}", connections=connections
    )
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
    with grpc.insecure_channel(target) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        futures = [stub.Predict.future(req, timeout=CLIENT_TIMEOUT_S) for _ in range(calls)]
        return _burst_outcome(futures, lambda resp: len(resp.predictions) == 1)


def _burst_outcome(
    futures: list[Any], answered: Callable[[Any], bool]
) -> tuple[int, int, set[str]]:
    """(calls whose reply ``answered``, calls, error codes) of concurrent gRPC call futures."""
    import grpc

    codes: set[str] = set()
    ok = 0
    for f in futures:
        try:
            ok += int(answered(f.result()))
        except grpc.RpcError as exc:
            codes.add(str(exc.code()))
    return ok, len(futures), codes


def v2_grpc_check(target: str, body: Path, calls: int) -> tuple[int, int, set[str]]:
    """Fire ``calls`` concurrent V2 ``ModelInfer`` calls (``body``: a framed request) with a
    real gRPC client: (ok, total, codes)."""
    import grpc

    from har.oip import open_inference_grpc_pb2 as pb
    from har.oip import open_inference_grpc_pb2_grpc as pb_grpc

    req = pb.ModelInferRequest.FromString(body.read_bytes()[5:])
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        futures = [stub.ModelInfer.future(req, timeout=CLIENT_TIMEOUT_S) for _ in range(calls)]
        return _burst_outcome(futures, lambda resp: len(resp.raw_output_contents) == 2)
