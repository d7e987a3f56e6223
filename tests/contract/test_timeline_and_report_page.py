"""The target (a real `bentoml serve` or the image): the demo recording's timeline over HTTP (smoothed by default,
raw on request), the smoothed summary of a closed gRPC stream, and the drift report page
served by `/monitoring/report`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from har.domain.recordings import read_csv_recording
from har.v1 import har_pb2, har_pb2_grpc
from tests.helpers.multipart import upload

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CANONICAL = ROOT / "data" / "production" / "session_canonical_100hz.csv"


@pytest.fixture(scope="module")
def server(served):
    return served


def _upload(url: str, smoothing: str | None) -> dict:
    """``POST /predict_recording`` of the demo CSV (with ``smoothing`` when given)."""
    fields = {} if smoothing is None else {"smoothing": smoothing}
    status, body = upload(f"{url}/predict_recording", {"file": CANONICAL}, fields)
    assert status == 200, body
    return body


def test_demo_recording_timeline_tiles_and_smoothing_merges(server):
    smoothed, raw = _upload(server.url, None), _upload(server.url, "none")
    assert (smoothed["smoothing"], raw["smoothing"]) == ("viterbi", "none")
    assert smoothed["windows"] == raw["windows"]
    for body in (smoothed, raw):
        segs = body["segments"]
        assert all(a["end"] <= b["start"] for a, b in zip(segs[:-1], segs[1:], strict=True))
        assert segs[0]["start"] >= 0 and segs[-1]["end"] <= body["windows"][-1]["end"]
        assert sum(s["windows"] for s in segs) == len(body["windows"])
    assert len(smoothed["segments"]) < len(raw["segments"])


def test_closed_grpc_stream_gets_the_smoothed_summary(server):
    rec = read_csv_recording(CANONICAL)
    n = min(len(rec), 100 * 60)  # the first minute, at 100 Hz

    def chunks():
        for i in range(0, n, 500):
            first = i == 0
            yield har_pb2.SensorChunk(
                timestamps=rec.time[i : i + 500],
                values=rec.values[i : i + 500].ravel(),
                summary=first,
            )

    with grpc.insecure_channel(server.grpc_target) as ch:
        out = list(har_pb2_grpc.ActivityRecognitionStub(ch).StreamPredict(chunks(), timeout=120))
    *windows, last = out
    assert windows and not any(m.HasField("summary") for m in windows)
    s = last.summary
    assert last.HasField("summary") and s.smoothing == "viterbi" and s.windows == len(windows)
    assert sum(x.windows for x in s.segments) == len(windows)
    assert all(a.end <= b.start for a, b in zip(s.segments[:-1], s.segments[1:], strict=True))
    runs = 1 + sum(
        a.prediction.activity_id != b.prediction.activity_id
        for a, b in zip(windows[:-1], windows[1:], strict=True)
    )
    assert len(s.segments) <= runs


def test_report_page_is_served(server):
    body = json.dumps({"windows": [[[0.0, 0.0, 9.81, 0.0, 0.0, 0.0]] * 200] * 4}).encode()
    req = urllib.request.Request(
        f"{server.url}/predict", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{server.url}/monitoring/report?since=1h", timeout=120) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        page = r.read().decode()
    assert "<title>HAR drift report" in page and ("<img" in page or "<svg" in page)
    try:
        urllib.request.urlopen(f"{server.url}/monitoring/report?since=never", timeout=30)
    except urllib.error.HTTPError as e:
        assert e.code == 400 and "never" in json.loads(e.read())["error"]
    else:
        raise AssertionError("a bad interval was accepted")
