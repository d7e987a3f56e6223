"""dispatcher-wait: BentoML's batch dispatcher does not hold a lone request back."""

from __future__ import annotations

import inspect
from typing import Any

from har.serving.patches.guard import Expect, Patch


def dispatch_without_idle_wait() -> None:
    """Keep BentoML's batch dispatcher from holding a request back when nothing else waits.

    BentoML's ``CorkDispatcher`` learns an average wait from its past batches and keeps
    a lone queued request back (1 ms ticks) while that wait looks worth it. Here the API
    worker already merges concurrent callers into one model call (``HAR_COALESCE_INFLIGHT``,
    har/serving/coalescing.py), so the model service sees one call at a time per API worker and
    the learned wait only idles the model. With every batch logged as having waited 0 s
    the learned wait stays 0: a request is dispatched as soon as the previous batch is
    done, and requests that queue behind a running batch still go out together (the
    batching that pays on one core; the A/B runs: load_tests/AB.md). The first calls'
    start-up training, which
    measures batches of 1-3 requests, is unchanged. Idempotent.
    """
    from bentoml._internal.marshal import dispatcher

    cls = dispatcher.Optimizer
    if hasattr(cls, "_har_upstream_log_outbound"):  # patched already
        return
    log_outbound = cls.log_outbound

    def log_without_wait(self: Any, n: int, wait: float, duration: float) -> None:
        log_outbound(self, n=n, wait=0.0, duration=duration)

    cls._har_upstream_log_outbound = log_outbound  # type: ignore[attr-defined]
    cls.log_outbound = log_without_wait  # type: ignore[method-assign]


def check() -> list[str]:
    from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer

    e = Expect()
    e.params(Optimizer, "log_outbound", ("self", "n", "wait", "duration"))
    e.calls(
        "bentoml._internal.marshal.dispatcher.CorkDispatcher",
        inspect.getsource(CorkDispatcher),
        "self.optimizer.log_outbound(",
        "self.optimizer.wait",
    )
    return e.found


PATCH = Patch(
    name="dispatcher-wait",
    what="bentoml._internal.marshal.dispatcher.Optimizer.log_outbound: every batch is "
    "logged as having waited 0 s (dispatch_without_idle_wait)",
    why="the adaptive batcher learns a wait from past batches and holds a lone request "
    "back that long, although the API worker already merges concurrent callers",
    upstream="none found",
    loses="~10 % of throughput at 64 connections (HTTP 1.10x, gRPC 1.11x in load_tests/AB.md)",
    until="the API worker stops coalescing, or BentoML's batcher stops idling",
    required=False,
    check=check,
    apply=dispatch_without_idle_wait,
)
