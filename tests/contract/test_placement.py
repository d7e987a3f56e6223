"""``HAR_MODEL_PLACEMENT=in-process`` on the target: no model service; each API worker runs
the model on ONNX Runtime itself and answers what the model service answers (single windows
over HTTP and gRPC, a whole recording through the unbatched path, the windows counted by
monitoring); a model that would serve on TensorFlow is refused at start, saying why."""

from __future__ import annotations

import json
import urllib.request

import grpc
import numpy as np
import pytest

from har.domain.preprocessing import Preprocessor
from har.v1 import har_pb2, har_pb2_grpc
from tests.contract.test_http_api import get, post_json
from tests.helpers.multipart import upload
from tests.helpers.paths import PRODUCTION

#: Two API workers, each with its own model; batches of at most 16 windows, so that the
#: recording below (56 windows) takes the unbatched call.
IN_PROCESS = {
    "HAR_MODEL_PLACEMENT": "in-process",
    "HAR_API_WORKERS": "2",
    "HAR_MAX_BATCH_SIZE": "16",
}
RECORDING = {"file": PRODUCTION / "session_canonical_100hz.csv"}


@pytest.fixture(scope="module")
def in_process(start_target):
    with start_target(IN_PROCESS) as t:
        yield t


def test_in_process_serves_the_same_answers_without_a_model_service(
    in_process, served, reference, heldout_windows
):
    status, _, text = get(f"{in_process.url}/model")
    assert status == 200
    runtime = json.loads(text)["runtime"]
    assert runtime["placement"] == "in-process" and runtime["name"] == "onnx", runtime
    assert runtime["tensorflow_imported"] is False  # asked inside the API worker
    # the model service's worker logs as "har-model"; in-process it never starts
    assert "har-model" in served.log_tail(2000)
    assert "har-model" not in in_process.log_tail(2000)

    model, card = reference
    x = heldout_windows["windows"][:32]
    want = np.asarray(model(Preprocessor(card).scale(x), training=False))
    status, body = post_json(f"{in_process.url}/predict", {"windows": x.tolist()})
    assert status == 200, body
    got = [[p["probabilities"][c] for c in card.classes] for p in body["predictions"]]
    np.testing.assert_allclose(got, want, atol=1e-5)

    with grpc.insecure_channel(in_process.grpc_target) as ch:
        stub = har_pb2_grpc.ActivityRecognitionStub(ch)
        req = har_pb2.PredictRequest(windows=[har_pb2.Window(values=w.ravel()) for w in x[:4]])
        resp = stub.Predict(req, timeout=30)
    np.testing.assert_allclose(
        [list(p.probabilities) for p in resp.predictions], want[:4], atol=1e-5
    )


def test_in_process_recording_equals_the_model_service(in_process, served):
    """A recording longer than one batch takes the unbatched call: same windows, same classes."""
    status, mine = upload(f"{in_process.url}/predict_recording", RECORDING)
    assert status == 200, mine
    status, theirs = upload(f"{served.url}/predict_recording", RECORDING)
    assert status == 200, theirs
    assert len(mine["windows"]) > 16  # more than HAR_MAX_BATCH_SIZE: the unbatched path
    assert [w["activity"] for w in mine["windows"]] == [w["activity"] for w in theirs["windows"]]
    np.testing.assert_allclose(
        [w["confidence"] for w in mine["windows"]],
        [w["confidence"] for w in theirs["windows"]],
        atol=1e-5,
    )


def test_in_process_windows_are_monitored(in_process, heldout_windows):
    x = heldout_windows["windows"][:5]
    assert post_json(f"{in_process.url}/predict", {"windows": x.tolist()})[0] == 200
    with urllib.request.urlopen(f"{in_process.url}/metrics", timeout=30) as r:
        metrics = r.read().decode()
    calls = [
        line
        for line in metrics.splitlines()
        if line.startswith("har_model_call_rows_count") and 'model="served"' in line
    ]
    assert calls and sum(float(line.rsplit(" ", 1)[1]) for line in calls) >= 1, calls


def test_in_process_refuses_a_tensorflow_model(start_target):
    refused = pytest.raises(RuntimeError, match=r"in-process .*would serve on TensorFlow")
    with refused, start_target({**IN_PROCESS, "HAR_RUNTIME": "tensorflow"}):
        pass
