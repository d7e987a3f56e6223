"""The model service's worker: the stored model on ONNX Runtime, or compiled with TensorFlow.

``service.py``'s ``HARModel.__init__`` calls :func:`model_worker`: threads, XLA with its
padded batch sizes warmed up, the probe of the model's answer, the start-up heap frozen.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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

    def info(self) -> dict[str, Any]:
        """What ``GET /model`` says of the runtime, from inside the model worker."""
        return {
            "name": self.choice.runtime,
            "reason": self.choice.reason,
            "threads": self.threads,
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
    log = logging.getLogger("har.runtime")
    log.setLevel(logging.INFO)  # BentoML's server log shows WARNING and up from libraries
    log.info("model %s serves on %s: %s", resolved, choice.runtime, choice.reason)
    run: Callable[[np.ndarray], np.ndarray]
    if choice.runtime == "onnx":
        threads = settings.onnx_threads
        run = load_onnx(folder, card, threads=threads, max_batch_size=settings.max_batch_size)
        model_store.LoadedModel(resolved, card, run, folder).check_probabilities(run)
    else:
        threads = settings.tf_intra_op_threads
        run = _tensorflow_model(settings, tag)
    graceful.outlive_callers()  # a stop waits for the API workers' requests (har/serving/graceful.py)
    logging.getLogger("har.graceful").setLevel(logging.INFO)
    workers.freeze_startup_heap()
    return ServedModel(run, resolved, choice, threads)


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
