"""The benchmark's stages: the naive baseline, the served cells, a feature on vs off
(monitoring, tracing, sampling)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from har.http.request_body import NPY_MEDIA_TYPE
from tests.helpers.otlp import otlp_receiver
from tests.helpers.servers import Server, bentoml_serve, free_port, home_sharing_store, running

from .cells import grpc_row, http_row, recording_row, wrk_row
from .common import (
    AB_SWITCHES,
    GRPC_CELL,
    GRPC_PATH,
    HTTP_CELL,
    MIXED_CELL,
    NAIVE_APP,
    NAIVE_CELL,
    RECORDING_1_THREAD_CELL,
    RECORDING_CELL,
    V2_CONCURRENCIES,
    V2_GRPC_CELL,
    V2_GRPC_PATH,
    V2_REST_CELL,
    AbResult,
    ModelSetup,
    Options,
    Row,
)
from .cpu import Groups, profiled, server_groups
from .loadgen import (
    grpc_check,
    grpc_response_bytes,
    v2_grpc_check,
    write_wrk_mixed_script,
    write_wrk_script,
)
from .report import ab_summary
from .workload import (
    example_window,
    held_out_windows,
    write_binary_bodies,
    write_mixed_bodies,
    write_v2_bodies,
)


def bench_naive(setup: ModelSetup, opts: Options, tmp: Path, lua: Path) -> list[Row]:
    """The naive FastAPI app at each concurrency, with wrk."""
    port = free_port()
    cmd = [sys.executable, str(NAIVE_APP), "--model", str(setup.model_path)]
    cmd += ["--card", str(setup.card_path), "--port", str(port)]
    ready = f"http://127.0.0.1:{port}/healthz"
    rows = []
    with running(cmd, ready_url=ready, log=tmp / "naive.log", timeout=180) as app:
        url = f"http://127.0.0.1:{port}/predict"
        groups = {"server": [psutil.Process(app.pid)]}
        # At c=64 a naive request takes seconds: measure long enough to see many finish.
        duration = max(opts.duration, 10)
        for c in opts.concurrencies:
            rows.append(wrk_row(NAIVE_CELL, url, groups, lua, c, duration, opts.warmup))
    return rows


def server_env(setup: ModelSetup, monitoring: bool) -> dict[str, str]:
    """Environment of a benchmarked ``bentoml serve``: the model and the monitoring switch.

    Every XLA batch size is compiled before the server reports ready (``HAR_WARMUP``),
    so no cell measures the first seconds' slower shape-generic function; the start-up
    stage measures both modes.
    """
    return {
        "HAR_MODEL_TAG": setup.tag,
        "HAR_WARMUP": "blocking",
        "HAR_MONITORING": "1" if monitoring else "0",
        "WHYLOGS_NO_ANALYTICS": "1",
    }


def serve(
    stack: contextlib.ExitStack,
    setup: ModelSetup,
    tmp: Path,
    name: str,
    on: bool,
    env: dict[str, str] | None = None,
) -> Server:
    """Start a benchmarked server in ``stack``: its own BentoML home, profiles and logs.

    Each server gets a home of its own sharing the model store (two servers on one home
    erase each other's ``/metrics``), profiles under ``tmp/profiles-NAME`` and logs
    under ``tmp/serve-NAME``. ``env``: settings over :func:`server_env`'s.
    """
    log_dir = tmp / f"serve-{name}"
    log_dir.mkdir(exist_ok=True)
    home = home_sharing_store(tmp / f"home-{name}", setup.model_store)
    return stack.enter_context(
        bentoml_serve(
            {**server_env(setup, on), **(env or {})},
            log_dir=log_dir,
            home=home,
            profile_dir=tmp / f"profiles-{name}",
        )
    )


class ServedCells:
    """The cells measured against one running server (``label``: monitoring on/off;
    ``model``: the served model's name, for the Open Inference Protocol's cells)."""

    def __init__(
        self,
        server: Server,
        opts: Options,
        tmp: Path,
        label: str,
        lua: Path,
        grpc_body: Path,
        model: str = "har-cnn-bilstm",
    ) -> None:
        self.server, self.opts, self.tmp, self.label = server, opts, tmp, label
        self.lua, self.grpc_body, self.model = lua, grpc_body, model
        self.groups = server_groups(server.pid)
        self.http_name = f"{HTTP_CELL} [monitoring {label}]"
        self.grpc_name = f"{GRPC_CELL} [monitoring {label}]"

    def attempt(self, name: str, load: str, fn: Callable[[], Row]) -> Row:
        """Run a cell; a failure becomes a row saying so (and the server log is shown)."""
        try:
            return fn()
        except Exception as exc:
            print(f"  {name} {load} FAILED: {exc}\n{self.server.log_tail(30)}", flush=True)
            msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200].replace("|", "/")
            return Row(name, load, float("nan"), note=f"FAILED: {msg}")

    def http(self, c: int, name: str | None = None, lua: Path | None = None) -> Row:
        """``wrk`` on ``/predict`` at ``c`` connections (py-spy'd with ``--profile``);
        ``lua``: another request body's script (default: the JSON one)."""
        o, kind = self.opts, "http" if lua is None else "http-npy"
        with profiled(o.profile, f"{kind}-c{c}-mon-{self.label}", self.groups, o.duration):
            return http_row(
                name or self.http_name,
                self.server,
                self.groups,
                lua or self.lua,
                c,
                o.duration,
                o.warmup,
            )

    def grpc(
        self, c: int, resp_bytes: int, name: str | None = None, body: Path | None = None
    ) -> Row:
        """``h2load`` on ``Predict`` with ``c`` streams, then a burst from a real gRPC client;
        ``body``: another framed request (default: the repeated-float one)."""
        kind = "grpc" if body is None else "grpc-packed"
        body = body or self.grpc_body
        o, log = self.opts, self.tmp / f"h2load-{kind}-c{c}.log"
        with profiled(o.profile, f"{kind}-c{c}-mon-{self.label}", self.groups, o.duration):
            row = grpc_row(
                name or self.grpc_name,
                self.server,
                self.groups,
                body,
                c,
                o.duration,
                o.warmup,
                resp_bytes,
                log,
            )
        ok, total, codes = grpc_check(self.server.grpc_target, body, max(2 * c, 8))
        row.note = f"then a grpc client burst: {ok}/{total} OK" + (
            f" {sorted(codes)}" if codes else ""
        )
        if ok != total:
            row.errors = (row.errors or 0) + (total - ok)
        return row

    def sweep(self) -> list[Row]:
        """HTTP then gRPC at each concurrency, then HTTP c=1 right after the heaviest load."""
        target = self.server.grpc_target
        ok, total, codes = grpc_check(target, self.grpc_body, 1)
        url = f"http://{target}{GRPC_PATH}"
        resp_bytes = grpc_response_bytes(url, self.grpc_body) if ok == total else 0
        if resp_bytes:
            print(
                f"  gRPC body checked with a grpc client; one answer = {resp_bytes} B", flush=True
            )
        else:
            print(f"  a grpc client's Predict with the benchmark body failed: {codes}", flush=True)
        rows = []
        for c in self.opts.concurrencies:
            rows.append(self.attempt(self.http_name, f"c={c}", lambda c=c: self.http(c)))
            if resp_bytes:
                fn = lambda c=c: self.grpc(c, resp_bytes)  # noqa: E731
                rows.append(self.attempt(self.grpc_name, f"c={c}", fn))
            else:
                rows.append(Row(self.grpc_name, f"c={c}", float("nan"), note=f"FAILED: {codes}"))
            if c in V2_CONCURRENCIES:
                rows += self.v2(c)
        heaviest = max(self.opts.concurrencies)
        rows += self.binary_bodies(heaviest, resp_bytes)
        if heaviest > 1:
            name = f"{self.http_name} right after c={heaviest}"
            after = self.attempt(name, "c=1", lambda: self.http(1, name))
            learned = "informational: c=1 again after heavy load"
            after.note = after.note or learned
            rows.append(after)
        return rows

    def v2(self, c: int) -> list[Row]:
        """The Open Inference Protocol at ``c``: REST ``/v2/models/NAME/infer`` with binary
        tensors (``wrk``) and gRPC ``ModelInfer`` with ``raw_input_contents`` (``h2load``,
        then a burst from a real gRPC client), one window per request as the cells above."""
        rest_body, head_len, grpc_body = write_v2_bodies(self.tmp, example_window(), self.model)
        lua = write_wrk_script(
            self.tmp / "post-v2.lua",
            rest_body,
            "application/octet-stream",
            {"Inference-Header-Content-Length": str(head_len)},
        )
        rest_name = f"{V2_REST_CELL} [monitoring {self.label}]"
        grpc_name = f"{V2_GRPC_CELL} [monitoring {self.label}]"
        o = self.opts

        def rest() -> Row:
            path = f"/v2/models/{self.model}/infer"
            return http_row(rest_name, self.server, self.groups, lua, c, o.duration, o.warmup, path)

        rows = [self.attempt(rest_name, f"c={c}", rest)]
        target = self.server.grpc_target
        ok, total, codes = v2_grpc_check(target, grpc_body, 1)
        if ok != total:
            return [*rows, Row(grpc_name, f"c={c}", float("nan"), note=f"FAILED: {codes}")]
        resp_bytes = grpc_response_bytes(f"http://{target}{V2_GRPC_PATH}", grpc_body)

        def grpc() -> Row:
            log = self.tmp / f"h2load-v2-c{c}.log"
            row = grpc_row(
                grpc_name,
                self.server,
                self.groups,
                grpc_body,
                c,
                o.duration,
                o.warmup,
                resp_bytes,
                log,
                V2_GRPC_PATH,
            )
            ok, total, codes = v2_grpc_check(target, grpc_body, max(2 * c, 8))
            row.note = f"then a grpc client burst: {ok}/{total} OK" + (
                f" {sorted(codes)}" if codes else ""
            )
            if ok != total:
                row.errors = (row.errors or 0) + (total - ok)
            return row

        return [*rows, self.attempt(grpc_name, f"c={c}", grpc)]

    def binary_bodies(self, c: int, resp_bytes: int) -> list[Row]:
        """The same window at ``c`` as a ``.npy`` HTTP body and as a packed gRPC window."""
        npy, packed = write_binary_bodies(self.tmp, example_window())
        lua = write_wrk_script(self.tmp / "post-npy.lua", npy, NPY_MEDIA_TYPE)
        name = f"{HTTP_CELL} (.npy body) [monitoring {self.label}]"
        rows = [self.attempt(name, f"c={c}", lambda: self.http(c, name, lua))]
        if resp_bytes:  # the answer is the same message whatever form the window took
            name = f"{GRPC_CELL} (packed window) [monitoring {self.label}]"
            rows.append(
                self.attempt(name, f"c={c}", lambda: self.grpc(c, resp_bytes, name, packed))
            )
        return rows


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

    Cells run in order of concurrency, HTTP then gRPC at each level, then the binary
    request bodies at the highest. Upstream BentoML's batching dispatcher learns a wait
    time from recent batches and keeps waiting that long after heavy load
    (``har.serving.patches.dispatcher_wait`` stops that), so a c=1 cell right
    after the heaviest load gets its own row ("right after c=64").
    ``csv_bytes``: the recording to upload (None: no recording cell).
    """
    label = "on" if monitoring else "off"
    rows: list[Row] = []
    print(f"\nstarting bentoml serve (monitoring {label}) ...", flush=True)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        server = serve(stack, setup, tmp, f"monitoring-{label}", monitoring)
        print(f"  ready in {time.monotonic() - t0:.0f} s; log {server.log}", flush=True)
        model = setup.tag.split(":", 1)[0]
        cells = ServedCells(server, opts, tmp, label, lua, grpc_body, model)
        if "serve" in opts.stages:
            rows += cells.sweep()
        if csv_bytes is not None:
            upload = lambda: recording_row(server.url, csv_bytes, opts.uploads, cells.groups)  # noqa: E731
            rows.append(cells.attempt(RECORDING_CELL, "1 upload", upload))
    if csv_bytes is not None:  # the same uploads with the model worker on one core
        print("\nstarting bentoml serve (HAR_TF_INTRA_OP_THREADS=1) ...", flush=True)
        with contextlib.ExitStack() as stack:
            env = {"HAR_TF_INTRA_OP_THREADS": "1"}
            server = serve(stack, setup, tmp, "recording-1-thread", monitoring, env)
            cells = ServedCells(server, opts, tmp, label, lua, grpc_body)
            upload = lambda: recording_row(  # noqa: E731
                server.url, csv_bytes, opts.uploads, cells.groups, RECORDING_1_THREAD_CELL
            )
            rows.append(cells.attempt(RECORDING_1_THREAD_CELL, "1 upload", upload))
    return rows


def bench_monitoring_ab(
    opts: Options, setup: ModelSetup, tmp: Path, lua: Path, grpc_body: Path
) -> AbResult:
    """Monitoring on vs off: :func:`bench_ab` of ``monitoring``."""
    return bench_ab(opts, setup, tmp, lua, grpc_body, "monitoring")


@contextlib.contextmanager
def ab_sides(
    switch: str, tmp: Path
) -> Iterator[tuple[dict[str, dict[str, str]], Callable[[Server], list[str]]]]:
    """The settings of each side of ``switch`` (``{"on": env, "off": env}`` over
    :func:`server_env` with monitoring on, except for the monitoring switch itself) and
    what to say afterwards about the ``on`` server (Markdown notes; monitoring only prints,
    as before). The tracing switch's OTLP/HTTP receiver runs in this process while the
    block lasts."""
    if switch == "monitoring":

        def rows_profiled(server: Server) -> list[str]:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{server.url}/monitoring/drift", timeout=60) as r:
                    rows_seen = json.load(r).get("rows")
                print(f"  monitoring-on server profiled {rows_seen} rows so far", flush=True)
            return []

        yield {"on": {"HAR_MONITORING": "1"}, "off": {"HAR_MONITORING": "0"}}, rows_profiled
    elif switch == "tracing":
        with otlp_receiver(keep=False) as receiver:
            me = psutil.Process()
            cpu0 = sum(me.cpu_times()[:2])
            on = {
                "HAR_TRACING": "1",
                "HAR_TRACING_SAMPLE_RATE": "1",
                "HAR_TRACING_ENDPOINT": receiver.url,
            }

            def spans(server: Server) -> list[str]:
                time.sleep(6)  # the exporters' last batch (OTLP batch delay: 5 s)
                cpu = sum(me.cpu_times()[:2]) - cpu0
                with urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as r:
                    served = requests_served(r.read().decode())
                return tracing_notes(receiver.received, receiver.requests, cpu, served)

            yield {"on": on, "off": {"HAR_TRACING": "0"}}, spans
    elif switch == "sampling":
        folder = tmp / "samples"
        folder.mkdir(exist_ok=True)

        def kept(server: Server) -> list[str]:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as r:
                text = r.read().decode()
            segments = len(list(folder.glob("*.npz")))
            return sampling_notes(samples_kept(text), segments)

        yield {"on": {"HAR_SAMPLE_DIR": str(folder)}, "off": {}}, kept
    elif switch == "placement":
        on, off = {"HAR_MODEL_PLACEMENT": "in-process"}, {"HAR_MODEL_PLACEMENT": "service"}
        yield {"on": on, "off": off}, lambda server: []
    else:
        raise ValueError(f"unknown on/off switch {switch!r}")


def tracing_notes(spans: int, exports: int, receiver_cpu_s: float, requests: int) -> list[str]:
    """What the tracing rounds' receiver saw, as Markdown notes (``requests``: /predict and
    gRPC Predict calls the tracing-on server answered, warm-ups included)."""
    per = f"{spans / requests:.1f}" if requests else "n/a"
    return [
        f"spans received from the tracing-on server: {spans:,} in {exports:,} OTLP/HTTP "
        f"exports, for {requests:,} requests it answered (warm-ups included): {per} spans per "
        "request (every request is traced; a lone /predict makes ~12 spans, so a lower figure "
        "means spans were dropped on the way, e.g. by OpenTelemetry's batch processor, whose "
        "queue holds 2,048)",
        "the receiver (tests/helpers/otlp.py, decoding and counting each export) runs in the "
        f"benchmark's process on the same {os.cpu_count()} cores as the servers and the load "
        f"generators: it used {receiver_cpu_s:.1f} CPU-seconds over the rounds (a collector "
        "elsewhere would not take them from the server)",
    ]


def requests_served(metrics_text: str) -> int:
    """HTTP ``/predict`` and gRPC ``Predict`` calls answered, from a ``/metrics`` text of
    the API service (``bentoml_service_request_total`` of service ``har``,
    ``har_grpc_server_handled_total``)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("bentoml_service_request_total{"):
            wanted = 'endpoint="/predict"' in line and 'service_name="har"' in line
        elif line.startswith("har_grpc_server_handled_total{"):
            wanted = 'grpc_method="Predict"' in line and "ActivityRecognition" in line
        else:
            continue
        if wanted:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def samples_kept(metrics_text: str) -> dict[str, float]:
    """``har_samples_kept_total`` by reason from a Prometheus ``/metrics`` text."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("har_samples_kept_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0.0) + float(value)
    return out


def sampling_notes(kept: dict[str, float], segments: int) -> list[str]:
    """What the sampling-on server kept, as Markdown notes."""
    reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(kept.items())) or "none"
    return [
        f"windows kept by the sampling-on server: {sum(kept.values()):,.0f} ({reasons}), "
        f"in {segments} segment files so far"
    ]


def bench_ab(
    opts: Options, setup: ModelSetup, tmp: Path, lua: Path, grpc_body: Path, switch: str
) -> AbResult:
    """``switch`` on vs off, interleaved: two servers up at once, loaded one at a time.

    Both servers (``switch`` on and off, :func:`ab_sides`) start together and stay up;
    each round measures the switch's cells (``AbSwitch.cells``: HTTP c=64 then gRPC c=64,
    and for sampling HTTP c=64 with the held-out windows in turn) on one server, then on the
    other (the order alternates between rounds), so slow drifts of the shared machine hit
    both sides alike. The idle server uses no measurable CPU. Returns the median rows of
    each side, a Markdown table of every round with the per-round on/off ratios, per cell
    the median of those ratios (the targets' statistic), and notes on the ``on`` server
    (for sampling: the share of windows it kept in each cell).
    """
    rounds, c = opts.ab_rounds, 64
    cells = AB_SWITCHES[switch].cells
    samples: dict[tuple[str, str], list[Row]] = {}
    loads = {HTTP_CELL: lua}
    if MIXED_CELL in cells:
        bodies = write_mixed_bodies(tmp, held_out_windows())
        loads[MIXED_CELL] = write_wrk_mixed_script(tmp / "post-mixed.lua", bodies)
    kept: dict[str, KeepCount] = {cell: KeepCount() for cell in cells}
    print(f"\n5. {switch} on vs off, {rounds} interleaved rounds at c={c}", flush=True)
    with ab_sides(switch, tmp) as (env, after), contextlib.ExitStack() as stack:
        # the monitoring servers keep their names (ab-on, ab-off)
        names = {
            lab: f"ab-{lab}" if switch == "monitoring" else f"ab-{switch}-{lab}" for lab in env
        }
        servers = {
            lab: serve(
                stack, setup, tmp, names[lab], switch != "monitoring" or lab == "on", env[lab]
            )
            for lab in ("on", "off")
        }
        groups: dict[str, Groups] = {k: server_groups(s.pid) for k, s in servers.items()}
        resp_bytes = grpc_response_bytes(
            f"http://{servers['on'].grpc_target}{GRPC_PATH}", grpc_body
        )
        for i in range(rounds):
            for label in ("on", "off") if i % 2 == 0 else ("off", "on"):
                s, g, tag = servers[label], groups[label], f"[{switch} {label}] round {i + 1}"
                for cell in cells:
                    counting = switch == "sampling" and label == "on"
                    before = metrics_text(s) if counting else ""
                    if cell == GRPC_CELL:
                        row = grpc_row(
                            f"{GRPC_CELL} {tag}",
                            s,
                            g,
                            grpc_body,
                            c,
                            opts.ab_duration,
                            opts.warmup,
                            resp_bytes,
                            tmp / f"ab-h2load-{names[label]}.log",
                        )
                    else:
                        row = http_row(
                            f"{cell} {tag}", s, g, loads[cell], c, opts.ab_duration, opts.warmup
                        )
                    samples.setdefault((cell, label), []).append(row)
                    if counting:
                        kept[cell].add(before, metrics_text(s))
        notes = after(servers["on"])
    if switch == "sampling":
        notes += keep_notes(kept)
    rows, lines, paired = ab_summary(samples, rounds, c, opts.ab_duration, switch)
    for n in notes:
        print(f"  {n}", flush=True)
    return AbResult(switch, rows, lines, paired, notes)


def metrics_text(server: Server) -> str:
    """The API service's ``/metrics`` text."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as r:
        return str(r.read().decode())


@dataclass
class KeepCount:
    """Windows served and kept (by reason) by the sampling-on server during one cell's loads
    (warm-ups included), summed over the rounds, from ``/metrics`` deltas."""

    served: int = 0
    kept: dict[str, float] = field(default_factory=dict)

    def add(self, before: str, after: str) -> None:
        """Add the deltas between two ``/metrics`` texts taken around one cell."""
        self.served += requests_served(after) - requests_served(before)
        k0, k1 = samples_kept(before), samples_kept(after)
        for reason, n in k1.items():
            self.kept[reason] = self.kept.get(reason, 0.0) + n - k0.get(reason, 0.0)


def keep_notes(kept: dict[str, KeepCount]) -> list[str]:
    """The share of served windows the sampling-on server kept in each cell, by reason (a
    window kept for two reasons counts in both; one window per request)."""
    out = []
    for cell, k in kept.items():
        if not k.served:
            continue
        shares = ", ".join(
            f"{reason} {100 * n / k.served:.1f} %" for reason, n in sorted(k.kept.items()) if n
        )
        worst = (
            " (worst case: the benchmark's one window is uncertain)" if cell != MIXED_CELL else ""
        )
        out.append(
            f"windows kept in `{cell}`{worst}: {shares or 'none'} of {k.served:,} windows served"
        )
    return out
