"""Where the model runs: the model service's worker, or inside each API worker.

``service.py``'s ``HARModel.__init__`` calls :func:`model_worker`: threads, XLA with its
padded batch sizes warmed up, the probe of the model's answer, the start-up heap frozen.
With ``HAR_MODEL_PLACEMENT=in-process`` there is no model service: each API worker loads
the model on ONNX Runtime itself (:func:`in_process_model`) and calls it through
:class:`InProcessModel`, off its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.runtime import model_store
from har.runtime.inference import CompiledModel, configure_tensorflow, import_tensorflow_without
from har.runtime.onnx_model import RuntimeChoice, choose_runtime, load_onnx
from har.serving import graceful, workers
from har.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    """The model service's model: ``run`` (scaled windows → probabilities) on the runtime
    :func:`~har.runtime.onnx_model.choose_runtime` chose."""

    run: Callable[[np.ndarray], np.ndarray]
    tag: str
    choice: RuntimeChoice
    threads: int
    placement: str = "service"

    def info(self) -> dict[str, Any]:
        """What ``GET /model`` says of the runtime, from inside the process that runs it."""
        return {
            "name": self.choice.runtime,
            "reason": self.choice.reason,
            "threads": self.threads,
            "placement": self.placement,
            "tensorflow_imported": "tensorflow" in sys.modules,
        }


def model_worker(settings: Settings, tag: str) -> ServedModel:
    """The stored model ``tag``, ready to run in the model service's worker.

    On ONNX Runtime when ``settings.runtime`` and the card's evidence allow
    (har/runtime/onnx_model.py: TensorFlow is then never imported), else compiled with
    TensorFlow: ready once the shape-generic function is traced; the XLA batch sizes
    compile after that in the background unless ``settings.warmup`` is ``blocking``
    (har/runtime/inference.py). Either way the model's answer to a probe is checked.
    """
    resolved, folder, card = model_store.load_card(tag)
    choice = choose_runtime(settings.runtime, card, folder)
    _log_choice(resolved, choice, "the model worker")
    run: Callable[[np.ndarray], np.ndarray]
    if choice.runtime == "onnx":
        threads = settings.onnx_threads
        run = _onnx_model(settings, resolved, folder, card)
    else:
        threads = settings.tf_intra_op_threads
        run = _tensorflow_model(settings, tag)
    graceful.outlive_callers()  # a stop waits for the API workers' requests (har/serving/graceful.py)
    logging.getLogger("har.graceful").setLevel(logging.INFO)
    workers.freeze_startup_heap()
    return ServedModel(run, resolved, choice, threads)


def in_process_model(settings: Settings, tag: str) -> ServedModel:
    """The stored model ``tag`` on ONNX Runtime in this (API worker) process, probed.

    Raises:
        InputError: the model cannot serve on ONNX Runtime under ``settings.runtime``
            (``configure`` refuses that at start; TensorFlow is never loaded here).
    """
    resolved, folder, card = model_store.load_card(tag)
    choice = choose_runtime(settings.runtime, card, folder)
    if choice.runtime != "onnx":
        raise InputError(
            f"HAR_MODEL_PLACEMENT=in-process needs ONNX Runtime, but {resolved} would serve "
            f"on TensorFlow ({choice.reason})"
        )
    _log_choice(resolved, choice, "each API worker (HAR_MODEL_PLACEMENT=in-process)")
    run = _onnx_model(settings, resolved, folder, card)
    return ServedModel(run, resolved, choice, settings.onnx_threads, placement="in-process")


class InProcessModel:
    """The in-process model's two calls, each run in a thread of its own off the event
    loop (ONNX Runtime releases the GIL while it computes): ``batched`` for coalesced
    windows, ``unbatched`` for whole recordings, so that a long recording does not hold up
    single windows (as the model service's two methods do). Both are
    :data:`~har.domain.model_call.Infer`."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        self._small = ThreadPoolExecutor(1, thread_name_prefix="har-model")
        self._large = ThreadPoolExecutor(1, thread_name_prefix="har-model-large")

    async def batched(self, x: np.ndarray) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._small, self.served.run, x)

    async def unbatched(self, x: np.ndarray) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._large, self.served.run, x)

    async def info(self) -> dict[str, Any]:
        return self.served.info()

    def close(self) -> None:
        """Let the running calls finish, then stop the threads."""
        self._small.shutdown(wait=True)
        self._large.shutdown(wait=True)


def _log_choice(tag: str, choice: RuntimeChoice, where: str) -> None:
    log = logging.getLogger("har.runtime")
    log.setLevel(logging.INFO)  # BentoML's server log shows WARNING and up from libraries
    log.info("model %s serves on %s in %s: %s", tag, choice.runtime, where, choice.reason)


def _onnx_model(
    settings: Settings, tag: str, folder: Path, card: ModelCard
) -> Callable[[np.ndarray], np.ndarray]:
    """The export on ONNX Runtime, its answer to the card's probe checked."""
    run = load_onnx(
        folder, card, threads=settings.onnx_threads, max_batch_size=settings.max_batch_size
    )
    model_store.LoadedModel(tag, card, run, folder).check_probabilities(run)
    return run


def _tensorflow_model(settings: Settings, tag: str) -> CompiledModel:
    """The stored Keras model compiled with TensorFlow (XLA sizes warmed up), probed."""
    import_tensorflow_without()  # installed: require_runtime checked it at start
    configure_tensorflow(intra_op_threads=settings.tf_intra_op_threads, inter_op_threads=1)
    logging.getLogger("har.runtime.inference").setLevel(logging.INFO)  # the compile line
    loaded = model_store.load_model(tag, probe=False)  # probed below, on the traced function
    compiled = CompiledModel(
        loaded.model,
        xla=settings.xla,
        max_batch_size=settings.max_batch_size,
        threads=settings.tf_intra_op_threads,
    )
    compiled.warmup(background=settings.warmup == "background")
    loaded.check_probabilities(compiled)
    return compiled
