"""The HTML drift report, rendered from the committed fixture profiles.

``tests/fixtures/profiles/``: ``reference.bin`` and eight 5-minute profiles from
two workers (2025-03-24 08:00-08:20 UTC); in the last interval the gyroscope
arrives in rad/s. Regenerate with ``python tests/fixtures/profiles/make_profiles.py``.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from har.domain.card import CANONICAL_CHANNELS
from har.domain.errors import InputError
from har.monitoring import profiles, store
from har.monitoring.drift import DriftConfig
from har.monitoring.report import drift_report, render_report
from har.settings import Settings
from tests.helpers.paths import FIXTURES as FIXTURE_DIR

FIXTURES = FIXTURE_DIR / "profiles"
REFERENCE = FIXTURES / "reference.bin"
SETTINGS = Settings(drift_threshold=0.7, drift_min_rows=100, profile_interval_s=300)
CONFIG = DriftConfig.from_settings(SETTINGS)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("report") / "sub" / "report.html"
    assert render_report(FIXTURES, REFERENCE, out, config=CONFIG, recent_s=300) == out
    return out.read_text(encoding="utf-8")


def _figures(page: str) -> dict[str, bytes]:
    """``figure id`` → decoded inline PNG."""
    found = re.findall(
        r'<figure id="([^"]+)"><img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
        page,
    )
    return {fid: base64.b64decode(data) for fid, data in found}


def test_committed_fixture_profiles_are_small_and_complete() -> None:
    files = store.list_profiles(FIXTURES)
    assert len(files) == 8
    assert {f.writer for f in files} == {"worker-a.1000", "worker-b.1001"}
    total = sum(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file())
    assert total < 1024 * 1024
    assert profiles.row_count(profiles.read_view(REFERENCE)) > 500


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_report_has_one_figure_per_channel_and_the_summary_plots(full_report: str) -> None:
    figs = _figures(full_report)
    for ch in CANONICAL_CHANNELS:
        assert f"channel-{ch}" in figs, ch
    assert len([f for f in figs if f.startswith("channel-")]) == 6
    for fid in ("fig-drift-scores", "fig-confidence", "fig-activity-mix", "fig-magnitudes"):
        assert fid in figs
    assert all(png.startswith(PNG_MAGIC) and len(png) > 5000 for png in figs.values())


def test_report_is_self_contained_and_summarises_the_whole_interval(full_report: str) -> None:
    assert not re.search(r'(src|href)="(?!data:)', full_report), "external resource"
    assert "<th>Windows profiled</th><td>576</td>" in full_report
    assert "worker-a.1000, worker-b.1001" in full_report
    for name in ("acc_x_mean", "gyro_z_max", "acc_mag_mean"):
        assert f"<td>{name}</td>" in full_report


def test_whole_report_is_flagged_by_its_last_interval(full_report: str) -> None:
    """A quarter of the rows in rad/s scores below threshold over the 20 minutes; the last
    interval (all of them broken) is scored on its own and flags the report."""
    assert '<span class="badge drift">drift</span>' in full_report
    assert "<th>Recent part scored on its own</th><td>144 windows since 2025-03-24T08:15" in (
        full_report
    )
    row = re.search(
        r"<tr class=\"drifted\"><td>gyro_x_std</td><td class='num'>([0-9.]+)</td>"
        r"<td class='num'>([0-9.]+)</td>",
        full_report,
    )
    assert row is not None and float(row[1]) < 0.7 <= float(row[2])


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_drift_report_of_the_last_interval_shows_the_gyroscope_drift(tmp_path: Path) -> None:
    out = drift_report(
        FIXTURES, REFERENCE, tmp_path / "r.html", since="2025-03-24T08:15:00Z", settings=SETTINGS
    )
    page = out.read_text(encoding="utf-8")
    assert '<span class="badge drift">drift</span>' in page
    assert "<th>Windows profiled</th><td>144</td>" in page
    drifted = set(re.findall(r'<tr class="drifted"><td>([a-z_]+)</td>', page))
    assert {"gyro_x_std", "gyro_y_std", "gyro_z_std"} <= drifted
    assert not any(n.startswith("acc_") for n in drifted)


def test_report_refuses_an_empty_interval_and_unreadable_times(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no profile files"):
        render_report(
            FIXTURES,
            REFERENCE,
            tmp_path / "x.html",
            since="2030-01-01T00:00:00Z",
            config=CONFIG,
            recent_s=300,
        )
    with pytest.raises(InputError, match="ISO 8601"):
        drift_report(
            FIXTURES, REFERENCE, tmp_path / "x.html", since="yesterday-ish", settings=SETTINGS
        )
    with pytest.raises(InputError, match="reference profile not found"):
        render_report(
            FIXTURES, tmp_path / "missing.bin", tmp_path / "x.html", config=CONFIG, recent_s=300
        )
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow  # seconds of matplotlib: not in `make test-fast`
def test_report_shows_the_card_calibration_as_a_reliability_diagram(
    full_report: str, tmp_path: Path
) -> None:
    import numpy as np

    from har.domain.calibration import calibrate

    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(600, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    over = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    cal = calibrate(over, y, data=["labelled.npz"])
    out = render_report(
        FIXTURES, REFERENCE, tmp_path / "r.html", config=CONFIG, recent_s=300, calibration=cal
    )
    page = out.read_text(encoding="utf-8")
    figs = _figures(page)
    assert figs["fig-reliability"].startswith(PNG_MAGIC) and len(figs["fig-reliability"]) > 5000
    assert f"ECE {cal.ece_before:.4f} &rarr; {cal.ece_after:.4f}" in page
    assert "applied: served confidences" in page and "labelled.npz" in page
    assert "fig-reliability" not in _figures(full_report)  # no calibration: no section
