"""The results: Markdown tables, targets met or not, and the text of ``RESULTS.md``."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
from pathlib import Path

import numpy as np
import psutil

from tests.helpers.servers import ROOT

from .common import (
    AB_SUFFIX,
    AB_SWITCHES,
    GRPC_CELL,
    HTTP_CELL,
    NAIVE_CELL,
    RAW_2_THREADS_CELL,
    RAW_CELL,
    RAW_END_CELL,
    RAW_RUNTIME_CELLS,
    RECORDING_1_THREAD_CELL,
    RECORDING_CELL,
    RECORDING_WINDOWS,
    STARTUP_CELL,
    TARGET_CEILING_FRACTION,
    TARGET_P50_C1_MS,
    TARGET_P99_C64_MS,
    TARGET_RECORDING_FRACTION,
    TARGET_SPEEDUP,
    TARGET_STARTUP_S,
    AbResult,
    AbSwitch,
    ModelSetup,
    Options,
    Row,
)


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
    """CPU split as ``api 95 / model 60 / sup 1; lg 20; others 3; steal 2`` (percent of a core)."""
    short = {"supervisor": "sup", "loadgen": "lg"}
    extra = ("loadgen", "others", "steal")
    server = [f"{short.get(k, k)} {v:.0f}" for k, v in cpu.items() if k not in extra]
    parts = [" / ".join(server)]
    parts += [f"{short.get(k, k)} {cpu[k]:.0f}" for k in extra if k in cpu]
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
        "CPU % of one core (server procs; load gen; others; steal) | note |\n"
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


RAW_CEILING_CELLS = {cell for cell, _, _ in RAW_RUNTIME_CELLS}


def targets(
    rows: list[Row],
    primary: str,
    on_off: dict[str, float] | None = None,
    ab_ratios: dict[str, dict[str, float]] | None = None,
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target.

    Args:
        rows: every measured cell.
        primary: the main monitoring label (``on`` or ``off``).
        on_off: per protocol, the median of the per-round on/off ratios of the interleaved
            rounds (:func:`ab_summary`): the monitoring targets' statistic. Without it the
            ratio of the two sides' medians stands in.
        ab_ratios: the same for the other switches with a target (``sampling``), by switch.
    """
    out: list[tuple[str, str, bool | None]] = []
    # the ceiling: the best raw runtime at any batch size and thread count
    raw = [r for r in rows if r.cell == RAW_CELL or r.cell in RAW_CEILING_CELLS]
    ceiling = max((r.throughput for r in raw), default=float("nan"))
    end = next((r.throughput for r in rows if r.cell == RAW_END_CELL), None)

    def at_end(throughput: float) -> str:
        """The same ratio against the ceiling measured again after the other stages."""
        return "" if not end else f" ({throughput / end:.2f} x of {end:,.0f} measured at the end)"

    naive = find(rows, NAIVE_CELL, "c=64")
    tag = f" [monitoring {primary}]"
    for proto in (HTTP_CELL, GRPC_CELL):
        r1, r64 = (find(rows, proto + tag, f"c={c}") for c in (1, 64))
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
        if r64 is not None and raw:
            frac, want = r64.throughput / ceiling, TARGET_CEILING_FRACTION[proto]
            out.append(
                (
                    f"{proto} c=64 >= {want:.2f} x the raw ceiling, zero errors",
                    f"{r64.throughput:,.0f} / {ceiling:,.0f} windows/s = {frac:.2f} x"
                    f"{at_end(r64.throughput)}, {r64.errors} errors",
                    frac >= want and r64.errors == 0,
                )
            )
        if r1 is not None and r1.p50_ms is not None:
            out.append(
                (
                    f"{proto} c=1 p50 <= {TARGET_P50_C1_MS:.0f} ms",
                    f"{r1.p50_ms:.1f} ms",
                    r1.p50_ms <= TARGET_P50_C1_MS,
                )
            )
        if r64 is not None and r64.p99_ms is not None:
            want = TARGET_P99_C64_MS[proto]
            out.append(
                (f"{proto} c=64 p99 <= {want:.0f} ms", f"{r64.p99_ms:.1f} ms", r64.p99_ms <= want)
            )
        if r64 is not None and raw:
            bound = cpu_bound(r64)
            if bound is not None:
                out.append(
                    (
                        f"{proto} c=64 with every core at this CPU cost per window "
                        "(informational: what overlap alone could reach)",
                        f"{bound[1]} = {bound[0]:,.0f} windows/s = {bound[0] / ceiling:.2f} x",
                        None,
                    )
                )
    rec = find(rows, RECORDING_CELL, "1 upload")
    raw2 = find(rows, RAW_2_THREADS_CELL, f"batch={RECORDING_WINDOWS}")

    def of_two_threads(throughput: float) -> str:
        """The recording against the model itself on two threads (the default's ceiling)."""
        if raw2 is None or not raw2.throughput > 0:
            return ""
        return (
            f"; {100 * throughput / raw2.throughput:.0f} % of {raw2.throughput:,.0f} on two threads"
        )

    if rec is not None and raw:
        frac = rec.throughput / ceiling
        out.append(
            (
                f"recording >= {100 * TARGET_RECORDING_FRACTION:.0f} % of the raw ceiling "
                "(and no failed upload)",
                f"{rec.throughput:,.0f} / {ceiling:,.0f} windows/s = {100 * frac:.0f} %"
                f"{at_end(rec.throughput)}{of_two_threads(rec.throughput)}, "
                f"{rec.errors} failed uploads",
                frac >= TARGET_RECORDING_FRACTION and not rec.errors,
            )
        )
    rec1 = find(rows, RECORDING_1_THREAD_CELL, "1 upload")
    if rec1 is not None and raw:
        out.append(
            (
                "recording with `HAR_TF_INTRA_OP_THREADS=1` (informational)",
                f"{rec1.throughput:,.0f} / {ceiling:,.0f} windows/s = "
                f"{100 * rec1.throughput / ceiling:.0f} %",
                None,
            )
        )
    ratios = {**(ab_ratios or {}), "monitoring": on_off or {}}
    for switch in AB_SWITCHES.values():
        if switch.target is not None:
            out += ab_targets(rows, switch, ratios.get(switch.name, {}))
    start = find(rows, STARTUP_CELL, "HAR_WARMUP=background")
    if start is not None and start.p50_ms is not None:
        out.append(
            (
                f"process start -> /readyz <= {TARGET_STARTUP_S:.0f} s (default warm-up)",
                f"{start.p50_ms / 1000:.1f} s (median)",
                start.p50_ms / 1000 <= TARGET_STARTUP_S,
            )
        )
    return out


def ab_targets(
    rows: list[Row], switch: AbSwitch, paired: dict[str, float]
) -> list[tuple[str, str, bool | None]]:
    """``switch``'s target per protocol at c=64: on/off throughput >= ``switch.target``,
    judged on ``paired`` (per protocol, the median of the per-round ratios), else on the
    ratio of the two sides' median rows."""
    assert switch.target is not None
    out: list[tuple[str, str, bool | None]] = []
    for proto in switch.cells:
        on = find(rows, f"{proto} [{switch.name} on] {AB_SUFFIX}", "c=64")
        off = find(rows, f"{proto} [{switch.name} off] {AB_SUFFIX}", "c=64")
        if on is None or off is None or not off.throughput > 0:
            continue
        of_medians = on.throughput / off.throughput
        medians = f"{on.throughput:,.0f} / {off.throughput:,.0f} = {of_medians:.2f}"
        one = paired.get(proto)
        if one is None:
            name, text, ratio = "interleaved medians", medians, of_medians
        else:
            name, ratio = "median of the per-round ratios", one
            text = f"{one:.2f} (ratio of the two sides' medians: {medians})"
        out.append(
            (
                f"{proto} c=64 throughput with {switch.name} on >= "
                f"{100 * switch.target:.0f} % of off ({name})",
                text,
                ratio >= switch.target,
            )
        )
    return out


def cpu_bound(row: Row, cores: int | None = None) -> tuple[float, str] | None:
    """Windows/s if the service had every core at ``row``'s CPU cost per window, and why.

    The CPU the cell's server processes used per window (``api``, ``model``, ``supervisor``)
    against what the machine had for them (``cores`` x 100 % less the load generator, other
    processes and steal): the throughput a perfect overlap of the workers could reach
    without making any of them cheaper. None when the row has no server CPU.
    """
    server = ("api", "model", "supervisor")
    used = sum(row.cpu.get(k, 0.0) for k in server)
    if not used > 0 or not row.throughput > 0:
        return None
    free = 100 * (cores or os.cpu_count() or 1) - sum(
        row.cpu.get(k, 0.0) for k in ("loadgen", "others", "steal")
    )
    per_window = {k: 10 * row.cpu.get(k, 0.0) / row.throughput for k in ("api", "model")}
    why = (
        f"api {per_window['api']:.2f} + model {per_window['model']:.2f} ms of CPU per window, "
        f"{free:.0f} % of one core free"
    )
    return row.throughput * free / used, why


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


def ab_section(
    lines: list[str],
    opts: Options,
    switch: str = "monitoring",
    notes: list[str] | None = None,
    paired: dict[str, float] | None = None,
) -> str:
    """One switch's on/off rounds as a Markdown section ('' when not measured): the
    per-round table, then ``notes`` (Markdown list items) and, for a switch other than
    monitoring (whose target is only in the targets table, as before), its target line
    (:func:`ab_target_line` of ``paired``)."""
    if not lines:
        return ""
    sw = AB_SWITCHES[switch]
    table = "\n".join(lines)
    items = list(notes or [])
    if switch != "monitoring":
        items.append(ab_target_line(switch, paired or {}))
    more = "".join(f"- {n}\n" for n in items)
    return f"""
## {sw.title} (on vs off, interleaved)

Two servers run at once, {sw.differs}; each round
loads one, then the other ({opts.ab_duration} s per cell after {opts.warmup} s of warm-up,
order alternating between rounds), so both see the same state of the shared machine.
Windows/s per round and the ratio measured in that round:

{table}
""" + (f"\n{more}" if more else "")


def ab_target_line(switch: str, paired: dict[str, float]) -> str:
    """A sentence on ``switch``'s target: met or not per protocol, or that it has none."""
    sw = AB_SWITCHES[switch]
    measured = ", ".join(f"{p} {paired[p]:.2f}" for p in sw.cells if p in paired) or "n/a"
    if sw.target is None:
        return f"No numeric target: median of the per-round on/off ratios {measured}."
    verdicts = [
        f"{p} {'met' if paired[p] >= sw.target else '**NOT met**'}" for p in sw.cells if p in paired
    ]
    return (
        f"Target ({sw.target_source}): {sw.name} on/off >= {sw.target:.2f} at c=64, the median "
        f"of the per-round ratios per protocol: {measured} ({', '.join(verdicts) or 'n/a'})."
    )


def report(
    rows: list[Row],
    opts: Options,
    setup: ModelSetup,
    primary: str,
    started: dt.datetime,
    ab: list[AbResult] | None = None,
) -> str:
    """RESULTS.md text (``ab``: the interleaved on/off rounds of each switch measured)."""
    ratios = {r.switch: r.paired for r in ab or []}
    items = targets(rows, primary, ratios.get("monitoring"), ratios)
    sections = "".join(ab_section(r.lines, opts, r.switch, r.notes, r.paired) for r in ab or [])
    lg = [r.cpu["loadgen"] for r in rows if "loadgen" in r.cpu]
    mode = "quick" if opts.quick else "full"
    naive_s = max(opts.duration, 10)
    return f"""# Benchmark results

Written by `python -m load_tests.bench` (see `load_tests/README.md`); overwritten on every run.

- Date: {started.strftime("%Y-%m-%d %H:%M %Z")}
- Commit: {git_commit()}
- Machine: {machine()}
- Command: `{opts.command}` ({mode} mode: {opts.duration} s per cell, naive baseline
  {naive_s} s, after {opts.warmup} s of warm-up; raw model: median of {opts.raw_runs} runs of
  ~{opts.raw_run_s} s per batch size)
- Model: `{setup.tag}` — {setup.source}
- Load generators: `wrk -t1` (HTTP, closed loop, c connections) and `h2load -c1 -t1 -mc`
  (gRPC unary Predict, one HTTP/2 connection, c streams); the Open Inference Protocol (V2)
  cells the same way (REST infer with binary tensors; gRPC ModelInfer with
  raw_input_contents); one 200x6 window per request, so requests/s = windows/s.

## Results

{table(rows)}
CPU columns: percent of one core while the row was measured (200 % = the whole
2-core machine). `api` = BentoML API worker (HTTP + gRPC, validation, JSON/protobuf,
monitoring), `model` = the batched model worker, `sup` = BentoML's supervisor,
`lg` = the load generator, `others` = everything else on the machine (other jobs),
`steal` = time the host gave this VM's cores to other VMs (`/proc/stat`; a slow host,
not a slow service). **The load generator shares the machine's {os.cpu_count()} cores with the server**; it used
{min(lg, default=0):.0f}-{max(lg, default=0):.0f} % of one core during the cells above.
Mean batch = requests per call of the batched model method, from BentoML's
`adaptive_batch_size` histogram. "right after c=64": BentoML's dispatcher waits for
about as long as recent batches waited, so after heavy load single requests wait longer
until that estimate decays (tens of seconds); the other c=1 rows are measured first.
{contention(rows)}{sections}
## Targets

{targets_table(items)}"""


def ab_summary(
    samples: dict[tuple[str, str], list[Row]],
    rounds: int,
    c: int,
    seconds: int,
    switch: str = "monitoring",
) -> tuple[list[Row], list[str], dict[str, float]]:
    """Median rows per (protocol, on/off), the per-round Markdown table with ratios, and
    per protocol the median of the per-round on/off ratios.

    ``samples[(protocol, "on" | "off")]`` holds one row per round, in round order; the
    rows are named ``"{protocol} [{switch} on|off] (interleaved A/B)"``.
    """
    protocols = AB_SWITCHES[switch].cells
    rows: list[Row] = []
    lines = [
        f"| round | {' | '.join(f'{p} on | {p} off | on/off' for p in protocols)} |",
        "|---:|" + "---:|---:|---:|" * len(protocols),
    ]
    for i in range(rounds):
        cells = []
        for p in protocols:
            on, off = samples[(p, "on")][i].throughput, samples[(p, "off")][i].throughput
            cells.append(f"{on:,.0f} | {off:,.0f} | {on / off if off else float('nan'):.2f}")
        lines.append(f"| {i + 1} | {' | '.join(cells)} |")
    paired: dict[str, float] = {}
    for p in protocols:
        per_round = [
            a.throughput / b.throughput
            for a, b in zip(samples[(p, "on")], samples[(p, "off")], strict=True)
            if b.throughput > 0
        ]
        if per_round:
            paired[p] = statistics.median(per_round)
        for label in ("on", "off"):
            runs = samples[(p, label)]
            cpu = {k: statistics.median(r.cpu.get(k, 0.0) for r in runs) for k in runs[0].cpu}
            rows.append(
                Row(
                    f"{p} [{switch} {label}] {AB_SUFFIX}",
                    f"c={c}",
                    statistics.median(r.throughput for r in runs),
                    statistics.median(r.p50_ms for r in runs if r.p50_ms is not None),
                    statistics.median(r.p99_ms for r in runs if r.p99_ms is not None),
                    sum(r.errors or 0 for r in runs),
                    statistics.median(r.mean_batch for r in runs if r.mean_batch is not None),
                    cpu,
                    f"median of {rounds} rounds of {seconds} s",
                )
            )
    medians = [f"{paired[p]:.2f}" if p in paired else "n/a" for p in protocols]
    flat = [x for r in medians for x in ("", "", f"**{r}**")]
    lines.append(f"| median | {' | '.join(flat)} |")
    return rows, lines, paired
