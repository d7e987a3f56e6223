"""``python -m load_tests.bench.sampling_cost``: what keeping windows for labelling costs
the API worker, measured in one process (no HTTP, no load generator, no second server).

    .venv/bin/python -m load_tests.bench.sampling_cost --rounds 5 --seconds 8

The API worker's own path is run in a loop, paced at ``--rate`` requests per second: a JSON
``/predict`` body of one window is parsed (``har.http.request_body.parse_json``) and scored
by the scorer the service builds (``har.core.scorer.served_scorer``: monitoring on, the
card's calibration, ``HAR_SAMPLE_DIR`` set or not), whose model call is a stand-in that
returns the bundled model's own probabilities for that window (computed once, at start).
Two figures: the process's CPU time (every thread: the loop, the monitor's and the sample
writer's) per request, sampling on minus off, median of interleaved rounds (everything
sampling costs, indirect effects included, but noisy on a shared machine); and the thread
CPU time spent inside the keeper's ``offer`` (the request path) and ``flush`` (the writer
thread: segment writes every ``HAR_SAMPLE_FLUSH_S``, default 5 s, and the last on close)
per request (steadier; the timing wrapper adds ~1 us per call).

Two workloads:

* ``worst``: the benchmark's one window (``workload.example_window``), which the bundled
  model is unsure of: every window is kept (``uncertain``), as in ``make bench``'s A/B;
* ``mixed``: the bundled held-out windows (``tests/fixtures/heldout_windows.npz``) in turn:
  windows are kept at the model's real uncertain share plus the random share.

CPU time, not wall time, so that another process busy on the same cores changes the
figures less; still, run it on a quiet machine when you can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .workload import example_window, held_out_windows, prepare_model


def json_body(window: np.ndarray) -> bytes:
    """A one-window ``/predict`` JSON body, rounded like the benchmark's (``write_bodies``)."""
    rounded = np.round(window.astype(np.float64), 4)
    return json.dumps({"windows": [rounded.tolist()]}).encode()


def raw_probabilities(tag: str, windows: np.ndarray) -> np.ndarray:
    """The stored model's uncalibrated probabilities of ``windows`` (as the model service
    answers; the scorer calibrates them)."""
    from har.domain.preprocessing import Preprocessor
    from har.runtime.model_store import load_model

    loaded = load_model(tag, probe=False)
    scaled = Preprocessor(loaded.card).scale(windows)
    return np.asarray(loaded.model(scaled, training=False), np.float32)


async def _serve(
    scorer: Any, bodies: list[bytes], probs: np.ndarray, rate: float, seconds: float
) -> int:
    from har.http.request_body import parse_json

    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        j = i % len(bodies)
        windows, units = parse_json(bodies[j])
        scorer.infer = _answer(probs[j : j + 1])
        await scorer.predict(windows, units)
        wait = t0 + (i + 1) / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
    return n


def _answer(p: np.ndarray) -> Callable[[np.ndarray], Awaitable[np.ndarray]]:
    async def infer(scaled: np.ndarray) -> np.ndarray:
        return p

    return infer


class Timed:
    """Thread CPU time spent in a keeper's ``offer`` (request path) and ``flush`` (the
    writer thread, and the last segment on close), by wrapping the instance's methods."""

    def __init__(self, keeper: Any) -> None:
        self.offer_s = self.flush_s = 0.0
        offer, flush = keeper.offer, keeper.flush

        def timed_offer(*args: Any, **kw: Any) -> Any:
            t = time.thread_time()
            try:
                return offer(*args, **kw)
            finally:
                self.offer_s += time.thread_time() - t

        def timed_flush() -> Any:
            t = time.thread_time()
            try:
                return flush()
            finally:
                self.flush_s += time.thread_time() - t

        keeper.offer, keeper.flush = timed_offer, timed_flush


def one_round(
    tag: str,
    bodies: list[bytes],
    probs: np.ndarray,
    sampling: bool,
    rate: float,
    seconds: float,
) -> tuple[float, int, int, Timed | None]:
    """CPU microseconds per request of one paced run (scorer started and closed inside),
    requests served, windows kept and the keeper's own time."""
    from har.core.scorer import served_scorer
    from har.settings import Settings

    with tempfile.TemporaryDirectory(prefix="har-sampling-cost-") as d:
        settings = Settings(
            model_tag=tag,
            monitoring=True,
            profile_dir=Path(d) / "profiles",
            sample_dir=Path(d) / "samples" if sampling else None,
        )
        scorer: Any = served_scorer(settings, _answer(probs[:1]), worker_id="api1")
        timed = Timed(scorer.sampler) if scorer.sampler is not None else None
        c0 = time.process_time()
        n = asyncio.run(_serve(scorer, bodies, probs, rate, seconds))
        kept = 0
        if scorer.sampler is not None:
            scorer.sampler.close()
            kept = scorer.sampler.kept
        cpu = time.process_time() - c0
        if scorer.monitor is not None:
            scorer.monitor.close()
    return 1e6 * cpu / n, n, kept, timed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m load_tests.bench.sampling_cost", description=__doc__
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved on/off rounds")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per run")
    p.add_argument("--rate", type=float, default=600.0, help="requests per second (paced)")
    p.add_argument("--workload", choices=("worst", "mixed", "both"), default="both")
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="har-sampling-cost-") as tmp:
        return _run(opts, prepare_model(Path(tmp)).tag)


def _run(opts: argparse.Namespace, tag: str) -> int:
    """Every workload's interleaved rounds, printed (``tag``: the stored model)."""
    workloads = {"worst": example_window()[None], "mixed": held_out_windows()}
    if opts.workload != "both":
        workloads = {opts.workload: workloads[opts.workload]}
    for name, windows in workloads.items():
        bodies = [json_body(w) for w in windows]
        probs = raw_probabilities(tag, windows)
        per: dict[bool, list[float]] = {True: [], False: []}
        kept_share: list[float] = []
        offer_us: list[float] = []
        flush_us: list[float] = []
        for i in range(opts.rounds):
            for sampling in (True, False) if i % 2 == 0 else (False, True):
                us, n, kept, timed = one_round(
                    tag, bodies, probs, sampling, opts.rate, opts.seconds
                )
                per[sampling].append(us)
                if timed is not None:
                    kept_share.append(kept / n)
                    offer_us.append(1e6 * timed.offer_s / n)
                    flush_us.append(1e6 * timed.flush_s / n)
            print(
                f"{name} round {i + 1}: on {per[True][-1]:.0f} us, off {per[False][-1]:.0f} us "
                f"of CPU per request; in offer() {offer_us[-1]:.1f} us, in flush() "
                f"{flush_us[-1]:.1f} us per request; kept {100 * kept_share[-1]:.1f} %",
                flush=True,
            )
        on, off = statistics.median(per[True]), statistics.median(per[False])
        diffs = [a - b for a, b in zip(per[True], per[False], strict=True)]
        print(
            f"{name}: {len(windows)} distinct window(s), {opts.rate:.0f} req/s for "
            f"{opts.seconds:.0f} s x {opts.rounds} rounds: CPU per request on {on:.0f} us, "
            f"off {off:.0f} us, on - off (median of rounds) {statistics.median(diffs):.0f} us; "
            f"the keeper's own thread CPU per request: offer() "
            f"{statistics.median(offer_us):.1f} us, flush() {statistics.median(flush_us):.1f} us "
            f"(medians); windows kept {100 * statistics.median(kept_share):.1f} %",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
