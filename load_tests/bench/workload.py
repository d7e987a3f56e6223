"""What the benchmark sends and serves: the model in a store, request bodies, a recording."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .common import STANDIN_CLASSES, ModelSetup


def prepare_model(tmp: Path) -> ModelSetup:
    """Put the model in a BentoML store and return where it is.

    The bundled model goes into the environment's store (``ensure_bundled_model``). If it
    is not there yet, an untrained model of the same architecture is saved in ``tmp`` and
    imported as ``har-cnn-bilstm`` into a temporary ``BENTOML_HOME`` (set in ``os.environ``
    before BentoML is imported, so the servers started later share the same store).
    """
    from har.settings import PRETRAINED_DIR

    bundled = (PRETRAINED_DIR / "har-cnn-bilstm.keras").is_file() and (
        PRETRAINED_DIR / "card.json"
    ).is_file()
    if not bundled:
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from har.runtime import model_store

    if bundled:
        tag = model_store.ensure_bundled_model()
        source = "bundled models/pretrained/har-cnn-bilstm.keras"
    else:
        import keras

        from har.domain.card import ModelCard, Scaler
        from har.training.architecture import build_model

        keras.utils.set_random_seed(0)
        build_model(len(STANDIN_CLASSES)).save(tmp / "standin.keras")
        ModelCard(
            name="har-cnn-bilstm",
            classes=STANDIN_CLASSES,
            window=200,
            hop=100,
            sample_rate_hz=50,
            scaler=Scaler(mean=[0, 0, 9.8, 0, 0, 0], scale=[3, 3, 3, 60, 60, 60]),
        ).to_file(tmp / "standin-card.json")
        tag = model_store.import_model(tmp / "standin.keras", tmp / "standin-card.json")
        source = (
            "STAND-IN: untrained har.training.architecture.build_model(7) (bundled model absent)"
        )
    folder = model_store.model_folder(tag)  # {BENTOML_HOME}/models/NAME/VERSION
    return ModelSetup(
        tag,
        folder / model_store.MODEL_FILE,
        folder / model_store.CARD_FILE,
        source,
        model_store=folder.parents[1],
    )


def example_window(seed: int = 0) -> np.ndarray:
    """One plausible ``(200, 6)`` window in canonical units (m/s², deg/s), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(200) / 50.0
    acc = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t), 9.81 + 0.3 * t / 4], axis=1)
    gyro = 40 * np.stack([np.cos(2 * np.pi * t), np.sin(np.pi * t), 0.2 * t], axis=1)
    x = np.concatenate([acc, gyro], axis=1) + rng.normal(0, 0.05, (200, 6))
    return np.round(x, 4).astype(np.float32)


def write_bodies(tmp: Path, window: np.ndarray) -> tuple[Path, Path]:
    """The HTTP JSON body and the gRPC framed body of a one-window request."""
    from har.v1 import har_pb2

    json_body = tmp / "predict-1.json"
    rounded = np.round(window.astype(np.float64), 4)  # ~10 KB, like a real client's JSON
    json_body.write_text(json.dumps({"windows": [rounded.tolist()]}))
    msg = har_pb2.PredictRequest(windows=[har_pb2.Window(values=window.ravel().tolist())])
    grpc_body = tmp / "predict-1.grpc"
    grpc_body.write_bytes(grpc_frame(msg.SerializeToString()))
    return json_body, grpc_body


def write_mixed_bodies(tmp: Path, windows: np.ndarray) -> Path:
    """One-window JSON ``/predict`` bodies of ``windows`` (rounded as :func:`write_bodies`
    does), one body per line, for a load that sends them in turn (``write_wrk_mixed_script``)."""
    path = tmp / "predict-mixed.jsonl"
    with path.open("w") as f:
        for w in windows:
            rounded = np.round(w.astype(np.float64), 4)
            f.write(json.dumps({"windows": [rounded.tolist()]}) + "\n")
    return path


def held_out_windows() -> np.ndarray:
    """The bundled held-out windows ``(N, 200, 6)`` float32, canonical units
    (``tests/fixtures/heldout_windows.npz``, what ``register`` calibrates on by default)."""
    from har.runtime.model_store import BUNDLED_HELDOUT

    with np.load(BUNDLED_HELDOUT) as f:
        return np.asarray(f["windows"], np.float32)


def write_binary_bodies(tmp: Path, window: np.ndarray) -> tuple[Path, Path]:
    """The same one-window request in its binary forms: a NumPy ``.npy`` body for HTTP
    (``Content-Type: application/x-npy``) and a framed gRPC body whose window is
    ``Window.packed`` (little-endian float32 bytes) instead of ``repeated float``."""
    from har.v1 import har_pb2

    npy_body = tmp / "predict-1.npy"
    with npy_body.open("wb") as f:
        np.save(f, window[None].astype("<f4"))
    msg = har_pb2.PredictRequest(windows=[har_pb2.Window(packed=window.astype("<f4").tobytes())])
    grpc_body = tmp / "predict-1-packed.grpc"
    grpc_body.write_bytes(grpc_frame(msg.SerializeToString()))
    return npy_body, grpc_body


def write_v2_bodies(tmp: Path, window: np.ndarray, model: str) -> tuple[Path, int, Path]:
    """The same one-window request in the Open Inference Protocol, as ``tritonclient`` sends
    it: the REST body with the binary tensor data extension (JSON, then the window's raw
    float32 bytes; every output asked as binary data) and the length of its JSON (the
    ``Inference-Header-Content-Length`` header), and a framed gRPC ``ModelInferRequest``
    with ``raw_input_contents``. ``model``: the served model's name."""
    from har.oip import open_inference_grpc_pb2 as pb

    raw = window[None].astype("<f4").tobytes()
    shape = [1, *window.shape]
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "windows",
                    "datatype": "FP32",
                    "shape": shape,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    rest_body = tmp / "v2-infer-1.bin"
    rest_body.write_bytes(head + raw)
    tensor = pb.ModelInferRequest.InferInputTensor(name="windows", datatype="FP32", shape=shape)
    msg = pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[raw])
    grpc_body = tmp / "v2-infer-1.grpc"
    grpc_body.write_bytes(grpc_frame(msg.SerializeToString()))
    return rest_body, len(head), grpc_body


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message (uncompressed), as ``h2load`` sends it."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def write_recording(path: Path, hours: float = 1.0, rate_hz: float = 50.0) -> int:
    """Write a synthetic IMU-like canonical CSV recording; return its number of samples.

    Every 30 s the motion changes (frequency 0.3-2.5 Hz, amplitude 0.2-4 m/s²) on top of
    gravity, with gyroscope rates to match and a little noise.
    """
    n = int(hours * 3600 * rate_hz)
    rng = np.random.default_rng(1)
    t = np.arange(n) / rate_hz
    seg = (t // 30).astype(int)
    freq = rng.uniform(0.3, 2.5, seg[-1] + 1)[seg]
    amp = rng.uniform(0.2, 4.0, seg[-1] + 1)[seg]
    ph = 2 * np.pi * freq * t
    noise = rng.normal(0, 0.05, (n, 6))
    acc = np.stack([amp * np.sin(ph), 0.5 * amp * np.cos(ph), 9.81 + 0.3 * amp * np.sin(2 * ph)])
    gyro = np.stack([60 * amp * np.cos(ph), 30 * amp * np.sin(ph), 10 * amp * np.cos(2 * ph)])
    data = np.column_stack([t, acc.T + noise[:, :3], gyro.T + noise[:, 3:]])
    np.savetxt(
        path,
        data,
        fmt=["%.3f"] + ["%.4f"] * 6,
        delimiter=",",
        header="timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z",
        comments="",
    )
    return n
