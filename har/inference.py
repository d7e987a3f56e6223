"""The model as a compiled function with a few fixed batch sizes.

``model.predict`` costs ~40 ms of fixed overhead per call (measured on 2 cores;
compare the naive baseline in ``load_tests/RESULTS.md``), so serving and offline
scoring call a ``tf.function`` instead. With XLA every distinct input
shape compiles once (hundreds of ms), so batches are padded up to a small set of
sizes (powers of two up to ``max_batch_size``) that are all compiled by
:meth:`CompiledModel.warmup` at start-up: no request ever waits for a compile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: An async model function: ``(N, window, 6)`` float32 scaled windows ->
#: ``(N, n_classes)`` probabilities (the model service's call, or a compiled model).
Infer = Callable[[np.ndarray], Awaitable[np.ndarray]]


def configure_tensorflow(
    intra_op_threads: int = 1, inter_op_threads: int = 1, xla_cache_dir: Path | None = None
) -> None:
    """Limit TensorFlow's thread pools (must run before TensorFlow executes anything).

    On 2 cores, one intra-op and one inter-op thread per model process leaves the
    other core to the HTTP/gRPC process instead of fighting over both.
    ``xla_cache_dir``: XLA's persistent compilation cache (TensorFlow's
    ``--tf_xla_persistent_cache_directory``), created if missing; call before
    TensorFlow is imported for it to take effect.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if xla_cache_dir is not None:
        Path(xla_cache_dir).mkdir(parents=True, exist_ok=True)
        flag = f"--tf_xla_persistent_cache_directory={Path(xla_cache_dir).resolve()}"
        flags = os.environ.get("TF_XLA_FLAGS", "")
        if "tf_xla_persistent_cache_directory" not in flags:
            os.environ["TF_XLA_FLAGS"] = f"{flags} {flag}".strip()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:  # already initialised: keep what is there
        pass


def batch_buckets(max_batch_size: int) -> list[int]:
    """Powers of two up to ``max_batch_size`` (and ``max_batch_size`` itself)."""
    sizes, b = [], 1
    while b < max_batch_size:
        sizes.append(b)
        b *= 2
    sizes.append(max_batch_size)
    return sizes


class CompiledModel:
    """Callable ``(N, window, channels) float32 scaled -> (N, n_classes) float32 probabilities``.

    Args:
        model: a Keras 3 model with input ``(None, window, channels)``.
        xla: compile with XLA (fast for small batches); inputs are then padded to ``buckets``.
        max_batch_size: largest batch run in one call; bigger inputs are split.
    """

    def __init__(self, model: Any, *, xla: bool = True, max_batch_size: int = 128) -> None:
        import tensorflow as tf

        self.model = model
        self.xla = xla
        _, self.window, self.channels = model.input_shape
        self.buckets: Sequence[int] = batch_buckets(max_batch_size)
        self.max_batch_size = max_batch_size
        if xla:
            self._fn = tf.function(lambda x: model(x, training=False), jit_compile=True)
        else:
            spec = tf.TensorSpec([None, self.window, self.channels], tf.float32)
            self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def warmup(self) -> None:
        """Compile every padded batch size now rather than on the first request.

        Tracing one function per size is the point here, so TensorFlow's "triggered
        tf.function retracing ... tracing is expensive" warning is muted meanwhile.
        """
        logger = logging.getLogger("tensorflow")  # what tf.get_logger() returns
        level = logger.level
        logger.setLevel(max(level, logging.ERROR))
        try:
            for b in self.buckets if self.xla else [1]:
                self._run(np.zeros((b, self.window, self.channels), np.float32))
        finally:
            logger.setLevel(level)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(x), dtype=np.float32)

    def _bucket(self, n: int) -> int:
        for b in self.buckets:
            if b >= n:
                return b
        return self.max_batch_size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        if n == 0:
            return np.empty((0, int(self.model.output_shape[-1])), np.float32)
        outs = []
        for s in range(0, n, self.max_batch_size):
            part = x[s : s + self.max_batch_size]
            m = part.shape[0]
            if self.xla and (b := self._bucket(m)) != m:
                pad = np.zeros((b - m, *part.shape[1:]), np.float32)
                part = np.concatenate([part, pad])
            outs.append(self._run(part)[:m])
        return np.concatenate(outs) if len(outs) > 1 else outs[0]
