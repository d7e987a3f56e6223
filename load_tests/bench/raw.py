"""The raw model's ceiling: windows/s per batch size of each runtime the model worker can
use: ``har.runtime.inference.CompiledModel`` (TensorFlow + XLA) and
``har.runtime.onnx_model.OnnxModel`` (ONNX Runtime, the stored model's ``model.onnx``).

Measured in a subprocess (``python -m load_tests.bench --raw-worker MODEL``) so that each
runtime is configured exactly as in the served model worker (threads as asked).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.servers import ROOT

from .common import RAW_BATCHES, RAW_CELL, ModelSetup, Options, Row
from .cpu import machine_busy_seconds, steal_seconds


def _runtime_model(model_path: Path, runtime: str, threads: int) -> Any:
    """The stored model ``model_path`` (its folder's ``model.keras`` / ``model.onnx``) as the
    model worker runs it on ``runtime`` (``xla`` or ``onnx``) with ``threads``."""
    from har.settings import get_settings

    max_batch = get_settings().max_batch_size
    if runtime == "onnx":
        from har.runtime.onnx_model import ONNX_FILE, OnnxModel

        return OnnxModel(model_path.parent / ONNX_FILE, threads=threads, max_batch_size=max_batch)
    from har.runtime.inference import CompiledModel, configure_tensorflow
    from har.runtime.model_store import load_keras

    configure_tensorflow(intra_op_threads=threads, inter_op_threads=1)
    compiled = CompiledModel(
        load_keras(model_path), xla=True, max_batch_size=max_batch, threads=threads
    )
    compiled.warmup()
    return compiled


def raw_worker(
    model_path: Path,
    batches: Sequence[int],
    runs: int,
    run_s: float,
    threads: int = 1,
    runtime: str = "xla",
) -> None:
    """(Subprocess) windows/s of the model per batch size; prints one JSON line.

    Each run calls the model for about ``run_s`` seconds; ``runs`` runs per batch size.
    ``threads``: the runtime's intra-op threads (for XLA also the threads running the
    chunks of an input bigger than the largest batch), as the model worker with that setting.
    """
    compiled = _runtime_model(model_path, runtime, threads)
    rng = np.random.default_rng(0)
    _, window, channels = compiled.input_shape if runtime == "onnx" else compiled.model.input_shape
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
    runtime: str = "xla",
) -> list[Row]:
    """Run :func:`raw_worker` in a subprocess; one row of ``cell`` per batch size."""
    cmd = [sys.executable, "-m", "load_tests.bench", "--raw-worker", str(setup.model_path)]
    cmd += ["--raw-runtime", runtime]
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
