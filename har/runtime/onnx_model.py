"""The model on ONNX Runtime, and which runtime serves a stored model.

:func:`choose_runtime` decides, from ``HAR_RUNTIME`` and the card's
:class:`~har.domain.card.OnnxEvidence`: ``auto`` serves on ONNX Runtime when the export
passed its parity check and the checked file is there, else on TensorFlow (saying why);
``onnx`` refuses to start without that evidence; ``tensorflow`` never uses ONNX Runtime.

:class:`OnnxModel` is the model worker's callable on ONNX Runtime. It imports neither
TensorFlow nor Keras: a model worker serving on it starts in about a second and holds a
fifth of TensorFlow's memory. ONNX Runtime takes any batch size, so nothing is padded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError

#: A stored model's ONNX export, beside ``model.keras``.
ONNX_FILE = "model.onnx"

Runtime = Literal["onnx", "tensorflow"]


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime a stored model serves on, and why (``GET /model``, the start-up log)."""

    runtime: Runtime
    reason: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def choose_runtime(setting: str, card: ModelCard, folder: Path) -> RuntimeChoice:
    """The runtime for the stored model in ``folder`` under ``HAR_RUNTIME=setting``.

    Raises:
        InputError: ``setting`` is ``onnx`` and the model has no export that passed.
    """
    if setting == "tensorflow":
        return RuntimeChoice("tensorflow", "HAR_RUNTIME=tensorflow")
    ev = card.onnx
    path = folder / ONNX_FILE
    why_not = ""
    if ev is None:
        why_not = "the card has no ONNX export evidence (stored before ONNX support: re-import)"
    elif not ev.passed:
        why_not = f"the ONNX export did not pass: {ev.reason}"
    elif not path.is_file():
        why_not = f"{ONNX_FILE} is missing from the stored model"
    elif file_sha256(path) != ev.sha256:
        why_not = f"{ONNX_FILE} is not the file the parity check ran on (sha256 differs)"
    else:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            why_not = "onnxruntime is not installed"
    if not why_not:
        assert ev is not None and ev.max_abs_diff is not None
        return RuntimeChoice(
            "onnx",
            f"ONNX export passed parity: max |Δp| {ev.max_abs_diff:.2g} <= {ev.tolerance:g}, "
            f"same class on {ev.same_class}/{ev.windows} windows",
        )
    if setting == "onnx":
        raise InputError(f"HAR_RUNTIME=onnx, but {why_not}")
    return RuntimeChoice("tensorflow", why_not)


class OnnxModel:
    """Callable ``(N, window, channels) float32 scaled -> (N, n_classes) float32 probabilities``
    on ONNX Runtime's CPU provider.

    Args:
        path: the ``.onnx`` file (input ``(batch, window, channels)``, softmax output).
        threads: intra-op threads of one call. Idle threads sleep instead of spinning
            (``session.intra_op.allow_spinning=0``): on a small machine a spinning pool
            takes the CPU the API workers need between calls.
        max_batch_size: bigger inputs (whole recordings) run in chunks of this many windows,
            which bounds the memory of one call.
    """

    runtime: Runtime = "onnx"

    def __init__(self, path: Path, *, threads: int = 1, max_batch_size: int = 128) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input = inp.name
        self.input_shape = (None, *inp.shape[1:])
        self.output_shape = (None, *out.shape[1:])
        self.threads = threads
        self.max_batch_size = max_batch_size

    @property
    def n_classes(self) -> int:
        return int(self.output_shape[-1])

    def check_card(self, card: ModelCard) -> None:
        """:meth:`ModelCard.check_model` on the graph's input and output shapes."""
        card.check_model(tuple(self.input_shape), tuple(self.output_shape))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self._input: x})[0], np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        n = x.shape[0]
        if n == 0:
            return np.empty((0, self.n_classes), np.float32)
        if n <= self.max_batch_size:
            return self._run(x)
        step = self.max_batch_size
        return np.concatenate([self._run(x[s : s + step]) for s in range(0, n, step)])


def load_onnx(folder: Path, card: ModelCard, *, threads: int, max_batch_size: int) -> OnnxModel:
    """The stored model's export as an :class:`OnnxModel`, its shapes checked against the card."""
    model = OnnxModel(folder / ONNX_FILE, threads=threads, max_batch_size=max_batch_size)
    model.check_card(card)
    return model
