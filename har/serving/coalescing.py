"""Coalescing concurrent model calls inside one API worker.

Every call from the API service to the model service is an HTTP hop with its
own serialisation and bookkeeping on both sides; on 2 cores that per-call cost,
not the model, bounds throughput. :class:`Coalescer` keeps at most
``max_inflight`` calls open and sends everything that queued up meanwhile as
one call, so under load one hop carries many windows while a lone request goes
out at once (no added latency at concurrency 1). The model service's adaptive
batching still groups the calls of several workers and streams.

Balanced fill (``fill=True``): with closed-loop clients the API worker and the model
form a two-stage pipeline. Sending the first request that arrives after a large call
returned splits the clients into a group of one and a group of all the others, and
the two stages take turns instead of overlapping (traced in load_tests/AB.md). So
right after a call returned, the next call waits until a third of the rows in the loop
(the last call's plus those queued when it returned) have queued, or at most as long
as the last call took; the groups then stay comparable. A request after a quiet spell
(longer than the last call took) or with fewer than 3 rows in the loop goes out at
once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from har.domain.model_call import Infer

#: Longest a call is held back for ``fill`` (seconds), whatever the last call took.
MAX_WAIT_S = 0.05


class Coalescer:
    """Call ``fn`` on concatenated inputs of concurrent callers; split the outputs back.

    Args:
        fn: async ``(N, ...) -> (N, ...)`` row-wise function (the model service call).
        max_rows: most rows in one call (the model's largest batch, ``HAR_MAX_BATCH_SIZE``).
        max_inflight: calls of ``fn`` open at once; more callers wait and are merged
            (``HAR_COALESCE_INFLIGHT``).
        fill: balance the calls under closed-loop load (see the module's docstring;
            ``HAR_COALESCE_FILL``). The service's values, and their defaults, are
            :class:`har.settings.Settings`'s; nothing here defaults them.
        max_wait_s: longest a call is held back for ``fill``.
        clock: monotonic seconds (tests).
        on_call: called as each call goes out with how long its oldest row waited
            (seconds, by ``clock``): the hold to fill a batch plus any wait for a free
            call slot (``har_model_call_wait_seconds``).
    """

    def __init__(
        self,
        fn: Infer,
        *,
        max_rows: int,
        max_inflight: int,
        fill: bool,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        on_call: Callable[[float], None] | None = None,
    ) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.fn = fn
        self.max_rows = max_rows
        self.max_inflight = max_inflight
        self.fill = fill
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.on_call = on_call
        self._queue: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._oldest: list[float] = []  # enqueue time of each queued item (same order)
        self._queued_rows = 0
        self._inflight = 0
        self.calls = 0  # calls of fn made (for tests and metrics)
        self._loop_rows = 0  # the last call's rows plus those queued when it returned
        self._last_done = -float("inf")  # when the last call returned
        self._last_took = 0.0  # how long it took
        self._held: asyncio.TimerHandle | None = None  # the held call's deadline

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((x, fut))
        self._oldest.append(self.clock())
        self._queued_rows += len(x)
        self._pump()
        return await fut

    def _hold(self) -> bool:
        """Whether to hold the next call back for more rows (``fill``), arming its deadline."""
        if not self.fill or self._inflight:
            return False
        target = min(self.max_rows, self._loop_rows // 3)
        if self._queued_rows >= target:
            return False
        deadline = self._last_done + min(self._last_took, self.max_wait_s)
        now = self.clock()
        if now >= deadline:
            return False  # waited as long as the last call took, or the load went away
        if self._held is None:
            loop = asyncio.get_running_loop()
            self._held = loop.call_later(deadline - now, self._release)
        return True

    def _release(self) -> None:
        self._held = None
        self._pump(force=True)

    def _pump(self, force: bool = False) -> None:
        if not force and self._queue and self._hold():
            return
        if self._held is not None:
            self._held.cancel()
            self._held = None
        while self._queue and self._inflight < self.max_inflight:
            batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
            rows = 0
            first_queued = 0.0  # enqueue time of the batch's first (oldest) row
            while self._queue and (not batch or rows + len(self._queue[0][0]) <= self.max_rows):
                item = self._queue.pop(0)
                queued_at = self._oldest.pop(0)
                self._queued_rows -= len(item[0])
                if item[1].done():  # caller went away (cancelled)
                    continue
                if not batch:
                    first_queued = queued_at
                batch.append(item)
                rows += len(item[0])
            if not batch:
                continue
            self._inflight += 1
            self.calls += 1
            if self.on_call is not None:
                self.on_call(self.clock() - first_queued)
            asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        started, rows = self.clock(), 0
        try:
            try:
                x = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
                rows = len(x)
                out = await self.fn(x)
            finally:
                # The next call's task is scheduled before this batch's callers resume,
                # so it reaches the model before they write their answers (the model
                # would idle meanwhile).
                self._finished(started, rows)
            start = 0
            for xi, fut in batch:
                n = len(xi)
                if not fut.done():
                    fut.set_result(out[start : start + n])
                start += n
        except BaseException as exc:  # propagate to every waiting caller
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def _finished(self, started: float, rows: int) -> None:
        """A call of ``rows`` rows begun at ``started`` returned: send the next one."""
        self._inflight -= 1
        self._last_done = self.clock()
        self._last_took = self._last_done - started
        self._loop_rows = rows + self._queued_rows
        self._pump()
