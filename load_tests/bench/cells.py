"""One measured cell: warm up, load, read CPU and BentoML's batch-size counters, make a row."""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.servers import Server

from .common import BATCHED_METHOD, GRPC_PATH, RECORDING_CELL, Row
from .cpu import CpuSampler, Groups
from .loadgen import LoadResult, run_h2load, run_wrk
from .report import format_row_plain


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


def measure_cell(
    name: str,
    load: Callable[[], LoadResult],
    warm: Callable[[], Any],
    groups: Groups,
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


def wrk_row(
    name: str,
    url: str,
    groups: Groups,
    lua: Path,
    c: int,
    seconds: int,
    warmup: int,
    metrics_url: str | None = None,
) -> Row:
    """One ``wrk`` cell against ``url`` at ``c`` connections (``metrics_url``: BentoML's)."""
    return measure_cell(
        name,
        lambda: run_wrk(url, lua, c, seconds),
        lambda: run_wrk(url, lua, c, warmup),
        groups,
        metrics_url,
        c,
    )


def http_row(
    name: str,
    server: Server,
    groups: Groups,
    lua: Path,
    c: int,
    seconds: int,
    warmup: int,
    path: str = "/predict",
) -> Row:
    """One ``wrk`` cell against ``server``'s ``path`` (``/predict``) at ``c`` connections."""
    return wrk_row(name, f"{server.url}{path}", groups, lua, c, seconds, warmup, server.url)


def grpc_row(
    name: str,
    server: Server,
    groups: Groups,
    body: Path,
    c: int,
    seconds: int,
    warmup: int,
    resp_bytes: int,
    log: Path,
    path: str = GRPC_PATH,
    connections: int = 1,
) -> Row:
    """One ``h2load`` cell against ``server``'s gRPC method ``path`` (``Predict``) with ``c``
    streams over ``connections`` connections."""
    url = f"http://{server.grpc_target}{path}"
    return measure_cell(
        name,
        lambda: run_h2load(url, body, c, seconds, resp_bytes, log, connections),
        lambda: run_h2load(url, body, c, warmup, resp_bytes, log, connections),
        groups,
        server.url,
        c,
    )


def recording_row(
    base_url: str, csv_bytes: bytes, uploads: int, groups: Groups, cell: str = RECORDING_CELL
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
        cell,
        "1 upload",
        statistics.median(rates),
        p50_ms=1000 * statistics.median(wall for _, wall in results),
        errors=len(failures),
        cpu=cpu,
        note=note,
    )
    print("  " + format_row_plain(row), flush=True)
    return row
