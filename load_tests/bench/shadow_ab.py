"""Shadow model on vs off: ``python -m load_tests.bench.shadow_ab [--rounds 6 --duration 10]``.

Two ``bentoml serve`` of the bundled model, one with ``HAR_SHADOW_MODEL_TAG`` set to the
same model (a second model worker scoring every window again) and one without, up at
once (each with a BentoML home of its own sharing the model store) and loaded in turn
with ``wrk`` on HTTP ``/predict`` (one window per request), the order alternating
between rounds, as ``--monitoring both`` does for monitoring (load_tests/bench/stages.py).
Prints every round, the median on/off ratio, and how many windows the shadow compared
and dropped. The shadow's own model worker competes for the same 2 cores: this is the
cost a shadow has on a machine that has no core to spare for it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.helpers.servers import Server, bentoml_serve, home_sharing_store

from .cells import http_row
from .common import HTTP_CELL, ModelSetup, Row
from .cpu import server_groups
from .loadgen import ensure_tools, write_wrk_script
from .workload import example_window, prepare_model, write_bodies


def _server(stack: contextlib.ExitStack, setup: ModelSetup, tmp: Path, label: str) -> Server:
    env = {"HAR_MODEL_TAG": setup.tag, "WHYLOGS_NO_ANALYTICS": "1", "HAR_WARMUP": "blocking"}
    if label == "on":
        env["HAR_SHADOW_MODEL_TAG"] = setup.tag
    log_dir = tmp / f"serve-{label}"
    log_dir.mkdir()
    home = home_sharing_store(tmp / f"home-{label}", setup.model_store)
    return stack.enter_context(
        bentoml_serve(env, log_dir=log_dir, home=home, profile_dir=tmp / f"profiles-{label}")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m load_tests.bench.shadow_ab", description=__doc__)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=int, default=10, help="seconds per cell")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=64)
    ns = p.parse_args(argv)
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="har-shadow-ab-"))
    try:
        setup = prepare_model(tmp)
        json_body, _ = write_bodies(tmp, example_window())
        lua = write_wrk_script(tmp / "post.lua", json_body)
        samples: dict[str, list[Row]] = {"on": [], "off": []}
        with contextlib.ExitStack() as stack:
            servers = {lab: _server(stack, setup, tmp, lab) for lab in ("on", "off")}
            groups = {k: server_groups(s.pid) for k, s in servers.items()}
            for i in range(ns.rounds):
                for lab in ("on", "off") if i % 2 == 0 else ("off", "on"):
                    name = f"{HTTP_CELL} [shadow {lab}] round {i + 1}"
                    row = http_row(
                        name, servers[lab], groups[lab], lua, ns.concurrency, ns.duration, ns.warmup
                    )
                    samples[lab].append(row)
                    print(
                        f"  {name}: {row.throughput:,.0f} req/s p50 {row.p50_ms} ms "
                        f"p99 {row.p99_ms} ms errors {row.errors}",
                        flush=True,
                    )
            with urllib.request.urlopen(f"{servers['on'].url}/monitoring/shadow", timeout=60) as r:
                shadow = json.load(r)
        print("\n| round | shadow on | shadow off | on/off |\n|---:|---:|---:|---:|")
        ratios = []
        for i, (on, off) in enumerate(zip(samples["on"], samples["off"], strict=True)):
            ratio = on.throughput / off.throughput if off.throughput else float("nan")
            ratios.append(ratio)
            print(f"| {i + 1} | {on.throughput:,.0f} | {off.throughput:,.0f} | {ratio:.2f} |")
        for lab in ("on", "off"):
            rows = samples[lab]
            print(
                f"shadow {lab}: median {statistics.median(r.throughput for r in rows):,.0f} req/s, "
                f"p50 {statistics.median(r.p50_ms or 0 for r in rows):.0f} ms, "
                f"p99 {statistics.median(r.p99_ms or 0 for r in rows):.0f} ms, "
                f"errors {sum(r.errors or 0 for r in rows)}"
            )
        print(f"median on/off ratio: {statistics.median(ratios):.2f} (c={ns.concurrency})")
        print(
            f"shadow compared {shadow['windows']} windows (agreement {shadow['agreement']}), "
            f"dropped {shadow['dropped']} {shadow['dropped_by_reason']}"
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
