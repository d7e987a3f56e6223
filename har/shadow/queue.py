"""The shadow's bounded queue, off the response path.

:meth:`ShadowQueue.submit` is synchronous and never waits: it splits the windows the
served model has just scored into chunks of at most ``max_batch`` rows and appends
them, or drops them all (counted) when ``capacity`` windows are already waiting.
Background tasks on the worker's event loop (``inflight`` of them, started by the first
submit) take up to ``max_batch`` waiting rows at a time, call the shadow model with a
``timeout_s`` deadline and hand both models' outputs to ``on_scored``; a call that fails
or times out drops its windows (counted), nothing is retried and no client waits.

With an OpenTelemetry ``tracer`` (``HAR_TRACING=1``) :meth:`~ShadowQueue.submit` keeps the
caller's OpenTelemetry context (the request's span) with its windows, and each shadow call
is a span ``har.shadow_call`` (attributes ``har.model`` = ``shadow``, ``har.model_tag``,
``har.rows``) whose parent is the first request in the call and which links to the
others' spans (one call may merge several requests' windows). It starts after the
request was answered, so it ends after its parent. Without a tracer nothing is kept and
no span is made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from har.domain.model_call import Infer

log = logging.getLogger(__name__)
#: Seconds between two log lines about failing shadow calls.
LOG_EVERY_S = 60.0

OnScored = Callable[[np.ndarray, np.ndarray], None]
OnDropped = Callable[[int, str], None]


class ShadowQueue:
    """Windows waiting for the shadow model, and the tasks that score them.

    Args:
        infer: the shadow model: ``(n, window, 6)`` scaled float32 -> ``(n, n_classes)``.
        on_scored: called with ``(primary_probs, shadow_probs)`` of the same windows.
        on_dropped: called with ``(windows, reason)`` for windows not scored.
        capacity: most windows waiting (~4.8 KB each for 200 x 6 float32).
        max_batch: most windows in one shadow call.
        timeout_s: deadline of one shadow call (seconds).
        inflight: shadow calls open at once (one background task each).
        prepare: turns the served model's input into the shadow's (another scaler),
            applied in the background task.
        tracer: an OpenTelemetry tracer: each shadow call is a span in its requests'
            traces (see the module's docstring). ``None``: no spans, no context kept.
        model_tag: the shadow model's tag (the span's ``har.model_tag``).
    """

    def __init__(
        self,
        infer: Infer,
        on_scored: OnScored,
        on_dropped: OnDropped,
        *,
        capacity: int,
        max_batch: int,
        timeout_s: float,
        inflight: int = 1,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
        tracer: Any = None,
        model_tag: str = "",
    ) -> None:
        self.infer = infer
        self.on_scored = on_scored
        self.on_dropped = on_dropped
        self.capacity = capacity
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.inflight = inflight
        self.prepare = prepare
        self.tracer = tracer
        self.model_tag = model_tag
        self._current_context: Callable[[], Any] | None = None
        if tracer is not None:
            from opentelemetry import context

            self._current_context = context.get_current
        #: Called as ``on_compared(served model's scaled input, its output, shadow's output)``
        #: after each comparison (the windows kept for labelling take the disagreements).
        self.on_compared: Callable[[np.ndarray, np.ndarray, np.ndarray], Any] | None = None
        #: (scaled windows, served probabilities, the submitter's context or ``None``)
        self._items: deque[tuple[np.ndarray, np.ndarray, Any]] = deque()
        self._rows = 0  # windows in _items
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_log = -LOG_EVERY_S
        self._failures = 0
        self.on_queued: Callable[[int], None] | None = None  # change of waiting windows

    @property
    def pending(self) -> int:
        """Windows waiting (not yet taken by a task)."""
        return self._rows

    def submit(self, scaled: np.ndarray, primary_probs: np.ndarray) -> bool:
        """Queue windows for the shadow; ``False`` (and counted as dropped) when full or
        closed. Call it on the event loop that should run the background tasks."""
        n = int(scaled.shape[0])
        if n == 0:
            return True
        if self._closed:
            self.on_dropped(n, "closed")
            return False
        if self._rows + n > self.capacity:
            self.on_dropped(n, "queue_full")
            return False
        self._start()
        ctx = self._current_context() if self._current_context is not None else None
        for i in range(0, n, self.max_batch):
            self._items.append(
                (scaled[i : i + self.max_batch], primary_probs[i : i + self.max_batch], ctx)
            )
        self._moved(n)
        assert self._wake is not None
        self._wake.set()
        return True

    def _moved(self, n: int) -> None:
        self._rows += n
        if self.on_queued is not None:
            self.on_queued(n)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._tasks and self._tasks[0].get_loop() is loop:
            return
        self._wake = asyncio.Event()
        self._tasks = [
            loop.create_task(self._drain(), name="har-shadow") for _ in range(self.inflight)
        ]

    async def _take(self) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        assert self._wake is not None
        while not self._items:
            self._wake.clear()
            await self._wake.wait()
        xs, ps, contexts, rows = [], [], [], 0
        while self._items and rows + len(self._items[0][0]) <= self.max_batch:
            x, p, ctx = self._items.popleft()
            xs.append(x)
            ps.append(p)
            contexts.append(ctx)
            rows += len(x)
        self._moved(-rows)
        if len(xs) == 1:
            return xs[0], ps[0], contexts
        return np.concatenate(xs), np.concatenate(ps), contexts

    def _span(self, contexts: list[Any], rows: int) -> AbstractContextManager[Any]:
        """The span of one shadow call of ``rows`` windows submitted in ``contexts``:
        child of the first, linked to the other requests' spans (no span without a tracer)."""
        if self.tracer is None:
            return nullcontext()
        from opentelemetry import trace

        parent, *others = contexts
        seen = {trace.get_current_span(parent).get_span_context().span_id}
        links = []
        for ctx in others:
            sc = trace.get_current_span(ctx).get_span_context()
            if sc.is_valid and sc.span_id not in seen:  # a request split in chunks: once
                seen.add(sc.span_id)
                links.append(trace.Link(sc))
        attributes = {"har.model": "shadow", "har.model_tag": self.model_tag, "har.rows": rows}
        span: AbstractContextManager[Any] = self.tracer.start_as_current_span(
            "har.shadow_call", context=parent, links=links, attributes=attributes
        )
        return span

    async def _drain(self) -> None:
        while True:
            x, p, contexts = await self._take()
            try:
                shadow_in = self.prepare(x) if self.prepare is not None else x
                with self._span(contexts, len(x)):
                    call = asyncio.wait_for(self.infer(shadow_in), self.timeout_s)
                    y = np.asarray(await call)
                self.on_scored(p, y)
                if self.on_compared is not None:
                    self.on_compared(x, p, y)
            except asyncio.CancelledError:
                self.on_dropped(len(x), "closed")
                raise
            except TimeoutError:
                self._failed(len(x), "timeout", f"no answer within {self.timeout_s} s")
            except Exception as exc:
                self._failed(len(x), "error", f"{type(exc).__name__}: {exc}")

    def _failed(self, n: int, reason: str, what: str) -> None:
        self.on_dropped(n, reason)
        self._failures += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.warning(
                "shadow model: %s; %d windows dropped (%d failed calls so far)",
                what,
                n,
                self._failures,
            )

    async def close(self) -> None:
        """Stop the background tasks; windows still waiting are dropped (``closed``)."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._rows:
            n = self._rows
            self._items.clear()
            self._moved(-n)
            self.on_dropped(n, "closed")
