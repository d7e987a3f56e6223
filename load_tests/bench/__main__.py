"""``python -m load_tests.bench``: options, then every stage in turn (see ``__init__``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .common import (
    AB_SWITCHES,
    CONCURRENCIES,
    RAW_2_THREADS_CELL,
    RAW_BATCHES,
    RAW_END_CELL,
    RAW_RUNTIME_CELLS,
    RECORDING_WINDOWS,
    RESULTS_FILE,
    STAGES,
    AbResult,
    Options,
    Row,
)
from .loadgen import ensure_tools, write_wrk_script
from .raw import bench_raw, raw_worker
from .report import format_row_plain, report
from .stages import bench_ab, bench_naive, bench_server
from .startup import bench_startup
from .workload import example_window, prepare_model, write_bodies, write_recording


def _int_list(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,16,64, got {text!r}")
    return values


def _names_of(allowed: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated subset of ``allowed``, returned in its order."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = sorted(set(names) - set(allowed))
        if not names or unknown:
            raise argparse.ArgumentTypeError(f"{what} are {','.join(allowed)}; got {text!r}")
        return tuple(s for s in allowed if s in names)

    return parse


def ab_switches(ab: Sequence[str], monitoring: str, only_ab: bool) -> tuple[str, ...]:
    """The switches whose on/off rounds run, in :data:`AB_SWITCHES` order: ``--ab``, plus
    ``monitoring`` with ``--monitoring both``; ``--only-ab`` alone means monitoring, as before."""
    chosen = set(ab)
    if monitoring == "both" or (only_ab and not chosen):
        chosen.add("monitoring")
    return tuple(s for s in AB_SWITCHES if s in chosen)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m load_tests.bench",
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
        "--startups", type=int, help="starts per HAR_WARMUP mode (median) (default 3; quick 1)"
    )
    p.add_argument(
        "--monitoring",
        choices=("on", "off", "both"),
        default="on",
        help="HAR_MONITORING for the server; 'both' adds interleaved on/off rounds at c=64",
    )
    p.add_argument(
        "--ab",
        type=_names_of(AB_SWITCHES, "switches"),
        default=(),
        metavar="LIST",
        help=f"interleaved on/off rounds at c=64 of these switches, comma-separated subset of "
        f"{','.join(AB_SWITCHES)} (--monitoring both adds monitoring)",
    )
    p.add_argument("--ab-rounds", type=int, help="on/off rounds (default 8; quick 3)")
    p.add_argument("--ab-duration", type=int, help="seconds per on/off cell (default 10; quick 5)")
    p.add_argument(
        "--only-ab", action="store_true", help="only the on/off rounds (prints, writes no file)"
    )
    p.add_argument(
        "--stages",
        type=_names_of(STAGES, "stages"),
        default=",".join(STAGES),
        metavar="LIST",
        help=f"comma-separated subset of {','.join(STAGES)}",
    )
    p.add_argument(
        "--concurrency",
        type=_int_list,
        default=",".join(map(str, CONCURRENCIES)),
        metavar="LIST",
        help="requests in flight of the naive and served cells, comma-separated",
    )
    p.add_argument("--results", type=Path, default=RESULTS_FILE, help="Markdown output file")
    p.add_argument("--no-results", action="store_true", help="do not write the results file")
    p.add_argument("--profile", type=Path, help="py-spy the workers during the cells into DIR")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--raw-worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--raw-batches", type=_int_list, default=RAW_BATCHES, help=argparse.SUPPRESS)
    p.add_argument("--raw-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--raw-runtime", default="xla", choices=("xla", "onnx"), help=argparse.SUPPRESS)
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
        command=shlex.join([".venv/bin/python", "-m", "load_tests.bench", *(argv or sys.argv[1:])]),
        stages=ns.stages,
        startups=ns.startups or (1 if ns.quick else 3),
        concurrencies=ns.concurrency,
        ab=ab_switches(ns.ab, ns.monitoring, ns.only_ab),
    )
    return opts, ns


def main(argv: Sequence[str] | None = None) -> int:
    """Run every selected measurement, print the table and write RESULTS.md."""
    opts, ns = parse_args(argv)
    if ns.raw_worker is not None:
        raw_worker(
            ns.raw_worker,
            ns.raw_batches,
            opts.raw_runs,
            opts.raw_run_s,
            ns.raw_threads,
            ns.raw_runtime,
        )
        return 0
    ensure_tools()
    started = dt.datetime.now(dt.UTC)
    tmp = Path(tempfile.mkdtemp(prefix="har-bench-"))
    rows: list[Row] = []
    try:
        setup = prepare_model(tmp)
        print(f"model {setup.tag}: {setup.source}\ntemporary files: {tmp}", flush=True)
        json_body, grpc_body = write_bodies(tmp, example_window())
        lua = write_wrk_script(tmp / "post.lua", json_body)
        primary = "off" if opts.monitoring == "off" else "on"
        ab: list[AbResult] = []
        if not opts.only_ab:
            if "raw" in opts.stages:
                print("\n1. raw model", flush=True)
                rows += bench_raw(setup, opts)
                for cell, runtime, threads in RAW_RUNTIME_CELLS:  # the other runtimes' ceilings
                    rows += bench_raw(setup, opts, RAW_BATCHES, cell, threads, runtime)
                if "recording" in opts.stages:  # the ceiling of a recording on two threads
                    rows += bench_raw(setup, opts, (RECORDING_WINDOWS,), RAW_2_THREADS_CELL, 2)
                for r in rows:
                    print("  " + format_row_plain(r), flush=True)
            if "naive" in opts.stages:
                print("\n2. naive baseline", flush=True)
                rows += bench_naive(setup, opts, tmp, lua)
            csv_bytes = None
            if "recording" in opts.stages:
                write_recording(tmp / "one-hour-50hz.csv")
                csv_bytes = (tmp / "one-hour-50hz.csv").read_bytes()
            if "serve" in opts.stages or csv_bytes is not None:
                print("\n3-4. BentoML service", flush=True)
                rows += bench_server(opts, setup, tmp, primary == "on", lua, grpc_body, csv_bytes)
            if "startup" in opts.stages:
                print("\n5. start-up", flush=True)
                rows += bench_startup(setup, opts, tmp, json.loads(json_body.read_text()))
            if "raw" in opts.stages and len(opts.stages) > 1:
                print("\n6. raw model again (did the machine change during the run?)", flush=True)
                rows += bench_raw(setup, opts, (max(RAW_BATCHES),), RAW_END_CELL)
                print("  " + format_row_plain(rows[-1]), flush=True)
        for switch in opts.ab:
            ab.append(bench_ab(opts, setup, tmp, lua, grpc_body, switch))
            rows += ab[-1].rows

        text = report(rows, opts, setup, primary, started, ab)
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
