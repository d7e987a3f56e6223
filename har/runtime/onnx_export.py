"""Export a Keras model to ONNX at import, with the parity evidence that lets it serve.

``import-model`` and ``register`` call :func:`export_with_evidence`: Keras 3's own
``model.export(path, format="onnx")`` writes the graph (through tf2onnx), then ONNX Runtime
and Keras score the same windows and the card gets an :class:`~har.domain.card.OnnxEvidence`:
passed when every window's probabilities differ by at most ``PARITY_TOLERANCE`` and its
predicted class is the same. The windows are 64 probe windows of the model's scaled input
space (seeded, so the check is repeatable) and, when given, labelled or held-out windows in
canonical units, scaled with the card's scaler as the service does.

A failed export or check is evidence too (``passed: false`` with the reason): the model is
still stored, and served on TensorFlow (har/runtime/onnx_model.py decides). Needs TensorFlow,
Keras, ``onnx`` and ``tf2onnx``; the serving path never imports this module.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.card import ModelCard, OnnxEvidence
from har.domain.preprocessing import Preprocessor

log = logging.getLogger(__name__)

#: Largest |Δp| between Keras and ONNX Runtime on any window and class for the export to serve.
PARITY_TOLERANCE = 1e-5
#: Probe windows (standard normal in the scaled input space, seed 0) checked on every export.
PROBE_WINDOWS = 64
#: Held-out windows checked at most (the first ones of the file): bounds the import's time.
MAX_DATA_WINDOWS = 2048


def probe_windows(card: ModelCard, n: int = PROBE_WINDOWS) -> np.ndarray:
    """``n`` seeded standard-normal windows ``(n, window, channels)`` float32, already scaled."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, card.window, card.n_channels)).astype(np.float32)


def data_windows(card: ModelCard, path: Path) -> np.ndarray | None:
    """The first :data:`MAX_DATA_WINDOWS` windows of an ``.npz`` (``windows``, canonical
    units), scaled; ``None`` when the file's windows do not have the card's shape."""
    with np.load(path) as f:
        if "windows" not in f:
            return None
        w = np.asarray(f["windows"][:MAX_DATA_WINDOWS], np.float32)
    if w.ndim != 3 or w.shape[1:] != (card.window, card.n_channels):
        return None
    return Preprocessor(card).scale(w)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_onnx(model: Any, card: ModelCard) -> bytes:
    """The ONNX graph of ``model`` (Keras 3 ``export(format="onnx")``), as bytes.

    A model loaded from a ``.keras`` file is called once first: Keras refuses to export a
    model that "has never been called".
    """
    model(np.zeros((1, card.window, card.n_channels), np.float32), training=False)
    with tempfile.TemporaryDirectory(prefix="har-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecation warnings
            model.export(str(path), format="onnx", verbose=False)
        return path.read_bytes()


def _opset(onnx_bytes: bytes) -> int | None:
    import onnx

    m = onnx.load_from_string(onnx_bytes)
    return next((int(o.version) for o in m.opset_import if o.domain in ("", "ai.onnx")), None)


def check_parity(
    model: Any, onnx_bytes: bytes, windows: np.ndarray, *, tolerance: float = PARITY_TOLERANCE
) -> tuple[float, int]:
    """``(max |Δp|, windows with the same predicted class)`` of Keras vs ONNX Runtime."""
    import onnxruntime as ort

    from har.runtime.inference import CompiledModel

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    keras_p = CompiledModel(model, xla=False)(windows)
    onnx_p = np.concatenate(
        [session.run(None, {name: windows[s : s + 256]})[0] for s in range(0, len(windows), 256)]
    )
    diff = float(np.abs(keras_p - onnx_p).max())
    same = int((keras_p.argmax(axis=1) == onnx_p.argmax(axis=1)).sum())
    return diff, same


def export_with_evidence(
    model: Any, card: ModelCard, data: list[Path] | None = None
) -> tuple[bytes | None, OnnxEvidence]:
    """Export ``model`` and check it on the probe windows and ``data`` (``.npz`` files whose
    windows fit the card; others are skipped and not named in the evidence).

    Returns ``(onnx bytes, evidence)``; the bytes are ``None`` when the export failed.
    Never raises for a model that cannot be exported or fails the check: the evidence says
    why, and the model serves on TensorFlow.
    """
    import keras
    import onnxruntime as ort

    exporter = f"keras {keras.__version__} export(format='onnx')"
    try:
        onnx_bytes = export_onnx(model, card)
    except Exception as exc:  # tf2onnx raises many types for unsupported graphs
        reason = f"export failed: {type(exc).__name__}: {str(exc)[:300]}"
        log.warning("ONNX %s", reason)
        return None, OnnxEvidence(passed=False, reason=reason, exporter=exporter)
    used, parts = ["probe: 64 seeded standard-normal windows (scaled space)"], [probe_windows(card)]
    for path in data or []:
        w = data_windows(card, Path(path))
        if w is not None and len(w):
            parts.append(w)
            used.append(f"{Path(path).name}: {len(w)} windows")
    windows = np.concatenate(parts)
    evidence = OnnxEvidence(
        passed=False,
        tolerance=PARITY_TOLERANCE,
        windows=len(windows),
        data=used,
        sha256=sha256_bytes(onnx_bytes),
        opset=_opset(onnx_bytes),
        exporter=exporter,
        onnxruntime=ort.__version__,
    )
    try:
        diff, same = check_parity(model, onnx_bytes, windows)
    except Exception as exc:  # ONNX Runtime cannot load or run the graph
        evidence.reason = f"ONNX Runtime cannot run the export: {type(exc).__name__}: {exc}"[:400]
        return onnx_bytes, evidence
    evidence.max_abs_diff, evidence.same_class = diff, same
    if not np.isfinite(diff) or diff > PARITY_TOLERANCE:
        evidence.reason = f"max |Δp| {diff:.3g} > {PARITY_TOLERANCE:g}"
    elif same != len(windows):
        evidence.reason = f"predicted class differs on {len(windows) - same} of {len(windows)}"
    else:
        evidence.passed = True
    return onnx_bytes, evidence
