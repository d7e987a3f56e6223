"""The raw model's ceiling: windows/s of ``har.runtime.inference.CompiledModel`` per batch size.

Measured in a subprocess (``python -m load_tests.bench --raw-worker MODEL``) so that
TensorFlow is configured exactly as in the served model worker (one thread each).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.helpers.servers import ROOT

from .common import RAW_BATCHES, RAW_CELL, ModelSetup, Options, Row
from .cpu import machine_busy_seconds, steal_seconds


def raw_worker(
    model_path: Path, batches: Sequence[int], runs: int, run_s: float, threads: int = 1
) -> None:
    """(Subprocess) windows/s of the compiled model per batch size; prints one JSON line.

    Each run calls the model for about ``run_s`` seconds; ``runs`` runs per batch size.
    ``threads``: TensorFlow's intra-op threads, and the threads running the chunks of an
    input bigger than the largest batch (as the model worker with that setting).
    """
    from har.runtime.inference import CompiledModel, configure_tensorflow
    from har.runtime.model_store import load_keras
    from har.settings import get_settings

    configure_tensorflow(intra_op_threads=threads, inter_op_threads=1)
    model = load_keras(model_path)
    max_batch = get_settings().max_batch_size
    compiled = CompiledModel(model, xla=True, max_batch_size=max_batch, threads=threads)
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
        c0, busy0, w0 = time.process_time(), machine_busy_seconds(), time.perf_counter()
        steal0 = steal_seconds()
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(calls):
                compiled(x)
            rates[str(b)].append(b * calls / (time.perf_counter() - t0))
        wall, own = time.perf_counter() - w0, time.process_time() - c0
        cpu[str(b)] = {
            "model": 100 * own / wall,
            "others": max(0.0, 100 * (machine_busy_seconds() - busy0 - own) / wall),
            "steal": max(0.0, 100 * (steal_seconds() - steal0) / wall),
        }
    print("RAW_JSON " + json.dumps({"rates": rates, "cpu": cpu}), flush=True)


def bench_raw(
    setup: ModelSetup,
    opts: Options,
    batches: Sequence[int] = RAW_BATCHES,
    cell: str = RAW_CELL,
    threads: int = 1,
) -> list[Row]:
    """Run :func:`raw_worker` in a subprocess; one row of ``cell`` per batch size."""
    cmd = [sys.executable, "-m", "load_tests.bench", "--raw-worker", str(setup.model_path)]
    cmd += ["--raw-runs", str(opts.raw_runs), "--raw-run-s", str(opts.raw_run_s)]
    cmd += ["--raw-batches", ",".join(map(str, batches)), "--raw-threads", str(threads)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RAW_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"raw model benchmark failed:\n{out.stderr[-3000:]}")
    data = json.loads(line.removeprefix("RAW_JSON "))
    rows = []
    for b in batches:
        runs = data["rates"][str(b)]
        rows.append(
            Row(
                cell,
                f"batch={b}",
                statistics.median(runs),
                cpu=data["cpu"][str(b)],
                note=f"median of {len(runs)} runs (min {min(runs):.0f}, max {max(runs):.0f})",
            )
        )
    return rows
