"""The HTTP service in-process: the activity timeline of ``/predict_recording`` (segments
that tile time, smoothing per request) and the drift report page ``/monitoring/report``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from har.domain.errors import InputError
from har.http.endpoints import HttpApi
from har.http.errors import error_response

ROOT = Path(__file__).resolve().parents[2]
CANONICAL = ROOT / "data" / "production" / "session_canonical_100hz.csv"
GARMIN = [
    ROOT / "data" / "production" / f"session-{s}_data.csv" for s in ("accelerometer", "gyroscope")
]


@pytest.fixture(scope="module")
def client(service_client):
    return service_client


def _upload(client, smoothing: str | None = None, garmin: bool = False):
    data = {} if smoothing is None else {"smoothing": smoothing}
    if garmin:
        with GARMIN[0].open("rb") as a, GARMIN[1].open("rb") as g:
            return client.post(
                "/predict_recording", files={"accelerometer": a, "gyroscope": g}, data=data
            )
    with CANONICAL.open("rb") as f:
        return client.post("/predict_recording", files={"file": f}, data=data)


def _runs(windows: list[dict], hop_s: float) -> int:
    """Runs of equal window activity, split at gaps: the raw timeline's segment count."""
    n = 1
    for a, b in zip(windows[:-1], windows[1:], strict=True):
        n += a["activity"] != b["activity"] or b["start"] - a["start"] > hop_s + 1e-3
    return n


def assert_tiles(body: dict, duration_s: float, hop_s: float) -> None:
    """No overlap, inside the recording, each segment's windows consecutive (no gap)."""
    segs, wins = body["segments"], body["windows"]
    assert sum(s["windows"] for s in segs) == len(wins)
    assert all(a["end"] <= b["start"] for a, b in zip(segs[:-1], segs[1:], strict=True))
    assert segs[0]["start"] >= 0 and segs[-1]["end"] <= duration_s
    i = 0
    for s in segs:
        mine = wins[i : i + s["windows"]]
        i += s["windows"]
        assert all(
            b["start"] - a["start"] <= hop_s + 1e-3
            for a, b in zip(mine[:-1], mine[1:], strict=True)
        )
        assert mine[0]["start"] <= s["start"] < s["end"] <= mine[-1]["end"]


@pytest.mark.parametrize("garmin", [False, True], ids=["canonical-csv", "garmin-pair"])
def test_recording_timeline_tiles_time_and_smoothing_merges_flips(client, garmin):
    card = client.get("/model").json()["card"]
    hop_s = card["hop"] / card["sample_rate_hz"]
    smoothed, raw = _upload(client, garmin=garmin), _upload(client, "none", garmin=garmin)
    assert smoothed.status_code == raw.status_code == 200, (smoothed.text, raw.text)
    smoothed, raw = smoothed.json(), raw.json()
    assert (smoothed["smoothing"], raw["smoothing"]) == ("viterbi", "none")  # the default
    assert smoothed["windows"] == raw["windows"]  # windows keep their raw predictions
    duration = smoothed["windows"][-1]["end"]
    for body in (smoothed, raw):
        assert_tiles(body, duration, hop_s)
        total = sum(s["end"] - s["start"] for s in body["segments"])
        assert sum(body["summary"].values()) == pytest.approx(total, abs=0.01)
    assert len(raw["segments"]) == _runs(raw["windows"], hop_s)
    assert len(smoothed["segments"]) < len(raw["segments"])
    explicit = _upload(client, "viterbi", garmin=garmin).json()
    assert explicit["segments"] == smoothed["segments"]


def test_unknown_smoothing_is_a_400_naming_the_allowed_values(client):
    r = _upload(client, "median")
    assert r.status_code == 400, r.text
    assert "'median'" in r.json()["error"] and "'viterbi', 'none'" in r.json()["error"]


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_report_serves_the_drift_page(client, heldout_windows):
    assert (
        client.post(
            "/predict", json={"windows": heldout_windows["windows"][:8].tolist()}
        ).status_code
        == 200
    )
    r = client.get("/monitoring/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>HAR drift report" in r.text and ("<img" in r.text or "<svg" in r.text)
    since = client.get(
        "/monitoring/report", params={"since": "2h", "until": "2099-01-01T00:00:00Z"}
    )
    assert since.status_code == 200 and "<title>HAR drift report" in since.text


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"since": "yesterday-ish"}, "yesterday-ish"),
        ({"since": "2030-01-02", "until": "2030-01-01"}, "after"),
    ],
)
def test_report_bad_interval_is_a_400(client, params, needle):
    r = client.get("/monitoring/report", params=params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


class FakeMonitor:
    """``report_html`` as the real monitor's, recording the thread it ran on."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.threads: list[int] = []

    def report_html(self, since, until) -> str:
        self.threads.append(threading.get_ident())
        if self.error:
            raise InputError(self.error)
        return f"<html><title>report {since} {until}</title></html>"


def _report(monitor, since=None, until=None):
    """The report page's answer, a refusal answered as the read-only routes answer it."""
    api = HttpApi(scorer=None, monitor=monitor, align_tolerance_s=0.02)  # type: ignore[arg-type]
    try:
        return asyncio.run(api.report(since, until))
    except InputError as exc:
        return error_response(exc)


def test_report_renders_off_the_event_loop_and_404s_without_monitoring_or_reference():
    monitor = FakeMonitor()
    r = _report(monitor, "2030-01-01T00:00:00Z")
    assert r.status_code == 200 and r.media_type == "text/html"
    assert b"2030-01-01 00:00:00+00:00" in r.body
    assert monitor.threads and monitor.threads[0] != threading.get_ident()
    off = _report(None)
    assert off.status_code == 404 and b"HAR_MONITORING=0" in off.body
    no_ref = _report(FakeMonitor("the served model has no reference profile"))
    assert no_ref.status_code == 404 and b"no reference profile" in no_ref.body
