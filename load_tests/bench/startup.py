"""The start-up stage: ``bentoml serve`` from process start to ``/readyz`` and a first answer.

Each start is a new ``bentoml serve`` (own BentoML home sharing the model store, own
profiles); readiness is polled every 0.1 s. Measured per ``HAR_WARMUP`` mode:
``background`` (the default: ready once the shape-generic function is traced, the XLA
batch sizes compile afterwards) and ``blocking`` (every XLA size compiled first); on ONNX
Runtime, which compiles nothing, the two modes differ in nothing but the name. The model
worker's RSS is read once its XLA sizes are all compiled (on ONNX Runtime: after the first
answer).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from load_tests.reliability.common import post_json
from tests.helpers.servers import bentoml_serve, home_sharing_store

from .common import STARTUP_CELL, ModelSetup, Options, Row
from .cpu import server_groups
from .stages import server_env

#: What the model worker logs once every XLA batch size is compiled (har/runtime/inference.py).
COMPILED_LINE = "XLA batch sizes"


def _wait_for_line(log: Path, text: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.1)
    return None


def one_start(setup: ModelSetup, tmp: Path, name: str, warmup: str, payload: Any) -> dict:
    """Start a server; seconds to ready, to a first answer, to all sizes compiled; RSS."""
    log_dir = tmp / f"start-{name}"
    log_dir.mkdir()
    home = home_sharing_store(tmp / f"home-start-{name}", setup.model_store)
    env = {**server_env(setup, True), "HAR_WARMUP": warmup}
    started = time.monotonic()
    with bentoml_serve(
        env, log_dir=log_dir, home=home, profile_dir=tmp / f"p-{name}", poll_s=0.1
    ) as server:
        ready = time.monotonic() - started
        status, answer = post_json(server.http_port, "/predict", payload)
        if status != 200:
            raise RuntimeError(f"first /predict after start: {status} {answer}")
        answered = time.monotonic() - started
        with urllib.request.urlopen(f"{server.url}/model", timeout=30) as r:
            runtime = json.load(r).get("runtime", {}).get("name", "tensorflow")
        done = _wait_for_line(server.log, COMPILED_LINE, 120) if runtime == "tensorflow" else None
        rss = sum(p.memory_info().rss for p in server_groups(server.pid)["model"])
    return {
        "ready": ready,
        "answered": answered,
        "compiled": None if done is None else done - started,
        "rss_mb": rss / 2**20,
    }


def bench_startup(setup: ModelSetup, opts: Options, tmp: Path, payload: Any) -> list[Row]:
    """``opts.startups`` starts per warm-up mode, alternating; one row per mode (medians)."""
    runs: dict[str, list[dict]] = {"background": [], "blocking": []}
    for i in range(opts.startups):
        for mode in runs if i % 2 == 0 else reversed(runs):
            r = one_start(setup, tmp, f"{mode}-{i}", mode, payload)
            runs[mode].append(r)
            compiled = "-" if r["compiled"] is None else f"{r['compiled']:.1f} s"
            print(
                f"  HAR_WARMUP={mode}: ready {r['ready']:.1f} s, first answer "
                f"{r['answered']:.1f} s, XLA compiled {compiled}, "
                f"model worker {r['rss_mb']:.0f} MB",
                flush=True,
            )
    rows = []
    for mode, rs in runs.items():
        ready = [r["ready"] for r in rs]
        done = [r["compiled"] for r in rs if r["compiled"] is not None]
        rows.append(
            Row(
                STARTUP_CELL,
                f"HAR_WARMUP={mode}",
                float("nan"),
                p50_ms=statistics.median(ready) * 1000,
                note=(
                    f"median of {len(rs)} starts (s): ready "
                    f"{', '.join(f'{x:.1f}' for x in ready)}; first answer "
                    f"{statistics.median(r['answered'] for r in rs):.1f}; all XLA sizes "
                    f"compiled {f'{statistics.median(done):.1f}' if done else '- (none to compile)'}; "
                    f"model worker RSS {statistics.median(r['rss_mb'] for r in rs):.0f} MB"
                ),
            )
        )
    return rows
