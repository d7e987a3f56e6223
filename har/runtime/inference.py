"""The model as a compiled function with a few fixed batch sizes.

``model.predict`` has a large fixed overhead per call (docs/performance.md), so serving
and offline scoring call a ``tf.function`` instead. With XLA every distinct input
shape compiles once (about a second each), so batches are padded up to a small set
of sizes (:func:`batch_buckets`), compiled by
:meth:`CompiledModel.warmup`, by default in the background after start-up while a
plain (shape-generic) function serves: no request ever waits for a compile.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


#: Modules Keras imports only for optional extras (its scikit-learn wrappers, image plots).
KERAS_EXTRAS = ("sklearn", "matplotlib")


def import_tensorflow_without(modules: Sequence[str] = KERAS_EXTRAS) -> None:
    """Import TensorFlow (and Keras) while ``modules`` are hidden, unless already imported.

    Keras imports scikit-learn and matplotlib at its own import when they are installed
    (the development environment has both, for MLflow; the served image has neither):
    ~0.6-1.2 s of a model worker's start on 2 cores, for features a model worker never
    uses. A module that is ``None`` in ``sys.modules`` fails to import, which Keras takes
    as "not installed"; the entries are removed afterwards, so a later import of these
    modules works as usual (only Keras' sklearn wrappers and plots stay off here).
    """
    if "tensorflow" in sys.modules:
        return
    hidden = [m for m in modules if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]


def configure_tensorflow(intra_op_threads: int = 1, inter_op_threads: int = 1) -> None:
    """Limit TensorFlow's thread pools (must run before TensorFlow executes anything).

    One inter-op thread per model process. The model worker's intra-op threads are
    ``HAR_TF_INTRA_OP_THREADS`` (2): one call runs on one of them, so the second one only
    works when two calls run at once, e.g. two chunks of a recording
    (:class:`CompiledModel` ``threads``) while the API worker waits for the answer.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:  # already initialised: keep what is there
        pass


def batch_buckets(max_batch_size: int) -> list[int]:
    """Padded batch sizes up to ``max_batch_size`` (and ``max_batch_size`` itself): powers
    of two, and from 16 on also the size halfway to the next one (24, 48, 96...).

    A batch runs padded to the next size, so a merged batch of 40 windows costs 48
    rather than 64 windows of compute: at most a third is padding above 16, not half.
    """
    sizes, b = [], 1
    while b < max_batch_size:
        sizes.append(b)
        if b >= 16 and b + b // 2 < max_batch_size:
            sizes.append(b + b // 2)
        b *= 2
    sizes.append(max_batch_size)
    return sizes


class CompiledModel:
    """Callable ``(N, window, channels) float32 scaled -> (N, n_classes) float32 probabilities``.

    Two compiled forms of the same model: a plain ``tf.function`` for any batch size
    (traced once, ~0.3 s) and, with ``xla``, one XLA function per padded batch size
    (~1 s of compiling each, eleven sizes up to 128). A batch runs on XLA when its size
    is compiled, else on the plain function, so compiling can go on in the background
    while requests are served (:meth:`warmup`); a request never waits for a compile.

    An input bigger than ``max_batch_size`` (a whole recording) runs in chunks of
    ``max_batch_size``; with ``threads`` > 1 the chunks run on that many threads at once.
    TensorFlow runs each XLA computation on its intra-op pool, so this needs as many
    intra-op threads (:func:`configure_tensorflow`): with one, two threads' chunks take
    turns (docs/performance.md). Inputs of at most
    ``max_batch_size`` (the batched path) always run on the calling thread.

    Args:
        model: a Keras 3 model with input ``(None, window, channels)``.
        xla: compile with XLA (fast for small batches); inputs are then padded to ``buckets``.
        max_batch_size: largest batch run in one call; bigger inputs are split.
        threads: threads running the chunks of one big input (at most this many at once,
            also across concurrent calls).
    """

    def __init__(
        self, model: Any, *, xla: bool = True, max_batch_size: int = 128, threads: int = 1
    ) -> None:
        import tensorflow as tf

        self.model = model
        self.xla = xla
        # chunk runners shared by concurrent calls; joined at exit by concurrent.futures
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="har-chunks")
            if threads > 1
            else None
        )
        _, self.window, self.channels = model.input_shape
        self.buckets: Sequence[int] = batch_buckets(max_batch_size) if xla else ()
        self.max_batch_size = max_batch_size
        spec = tf.TensorSpec([None, self.window, self.channels], tf.float32)
        self._plain = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        # one function per size: compiling one never holds a lock another call needs
        self._xla = {
            b: tf.function(
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec([b, self.window, self.channels], tf.float32)],
                jit_compile=True,
            )
            for b in self.buckets
        }
        self._ready: frozenset[int] = frozenset()  # XLA sizes compiled so far
        self._stopping = threading.Event()

    @property
    def compiled_sizes(self) -> list[int]:
        """Batch sizes whose XLA function is compiled (the rest run the plain function)."""
        return sorted(self._ready)

    def warmup(self, *, background: bool = False) -> threading.Thread | None:
        """Trace the plain function now, then compile every XLA batch size.

        ``background``: compile the XLA sizes in a daemon thread (returned), smallest
        first, each used as soon as it is ready; meanwhile batches run on the plain
        function. Otherwise compile them all before returning. TensorFlow's "triggered
        tf.function retracing" warning is muted while compiling (one function per size
        is the point).
        """
        self._run(self._plain, np.zeros((1, self.window, self.channels), np.float32))
        if not background:
            self._compile_all()
            return None
        thread = threading.Thread(target=self._compile_all, name="xla-warmup", daemon=True)
        thread.start()
        # at exit: stop after the size being compiled; a daemon thread killed inside
        # XLA's compiler aborts the interpreter ("FATAL: exception not rethrown")
        atexit.register(self._stop_warmup, thread)
        return thread

    def _stop_warmup(self, thread: threading.Thread) -> None:
        self._stopping.set()
        thread.join(timeout=60)

    def _compile_all(self) -> None:
        logger = logging.getLogger("tensorflow")  # what tf.get_logger() returns
        level = logger.level
        logger.setLevel(max(level, logging.ERROR))
        started = time.perf_counter()
        try:
            for b in self.buckets:
                if self._stopping.is_set():
                    return
                self._run(self._xla[b], np.zeros((b, self.window, self.channels), np.float32))
                self._ready = self._ready | {b}
        finally:
            logger.setLevel(level)
        if self.buckets:
            log.info(
                "XLA batch sizes %s compiled in %.1f s",
                self.compiled_sizes,
                time.perf_counter() - started,
            )

    @staticmethod
    def _run(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
        return np.asarray(fn(x), dtype=np.float32)

    def _bucket(self, n: int) -> int:
        for b in self.buckets:
            if b >= n:
                return b
        return self.max_batch_size

    def _chunk(self, part: np.ndarray) -> np.ndarray:
        """Probabilities of at most ``max_batch_size`` windows (padded to a compiled size)."""
        m = part.shape[0]
        b = self._bucket(m)
        if b not in self._ready:  # not compiled (yet), or no XLA: any size runs here
            return self._run(self._plain, part)
        if b != m:
            part = np.concatenate([part, np.zeros((b - m, *part.shape[1:]), np.float32)])
        return self._run(self._xla[b], part)[:m]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        if n == 0:
            return np.empty((0, int(self.model.output_shape[-1])), np.float32)
        if n <= self.max_batch_size:
            return self._chunk(x)
        parts = [x[s : s + self.max_batch_size] for s in range(0, n, self.max_batch_size)]
        if self._pool is None:
            return np.concatenate([self._chunk(p) for p in parts])
        return np.concatenate(list(self._pool.map(self._chunk, parts)))  # in input order
