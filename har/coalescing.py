"""Coalescing concurrent model calls inside one API worker.

Every call from the API service to the model service is an HTTP hop with its
own serialisation and bookkeeping on both sides; on 2 cores that per-call cost,
not the model, bounds throughput. :class:`Coalescer` keeps at most
``max_inflight`` calls open and sends everything that queued up meanwhile as
one call, so under load one hop carries many windows while a lone request goes
out at once (no timer, no added latency at concurrency 1). The model service's
adaptive batching still groups the calls of several workers and streams.
"""

from __future__ import annotations

import asyncio

import numpy as np

from har.inference import Infer


class Coalescer:
    """Call ``fn`` on concatenated inputs of concurrent callers; split the outputs back.

    Args:
        fn: async ``(N, ...) -> (N, ...)`` row-wise function (the model service call).
        max_rows: most rows in one call (the model's largest batch).
        max_inflight: calls of ``fn`` open at once; more callers wait and are merged.
    """

    def __init__(self, fn: Infer, *, max_rows: int = 128, max_inflight: int = 2) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.fn = fn
        self.max_rows = max_rows
        self.max_inflight = max_inflight
        self._queue: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._inflight = 0
        self.calls = 0  # calls of fn made (for tests and metrics)

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((x, fut))
        self._pump()
        return await fut

    def _pump(self) -> None:
        while self._queue and self._inflight < self.max_inflight:
            batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
            rows = 0
            while self._queue and (not batch or rows + len(self._queue[0][0]) <= self.max_rows):
                item = self._queue.pop(0)
                if item[1].done():  # caller went away (cancelled)
                    continue
                batch.append(item)
                rows += len(item[0])
            if not batch:
                continue
            self._inflight += 1
            self.calls += 1
            asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        try:
            x = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
            out = await self.fn(x)
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
        finally:
            self._inflight -= 1
            self._pump()
