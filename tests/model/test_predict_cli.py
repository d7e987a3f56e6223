"""``python -m har predict``: the service's timeline offline, smoothing from the settings
or ``--smoothing`` (the bundled model, from its committed file)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from har import cli
from har.core.offline import score_file
from har.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CANONICAL = ROOT / "data" / "production" / "session_canonical_100hz.csv"


def _segments(text: str) -> tuple[int, str]:
    found = re.search(r"timeline \((\d+) segments, smoothing (\w+)\):", text)
    assert found, text
    return int(found[1]), found[2]


@pytest.mark.slow
def test_predict_smoothing_flag_overrides_the_settings(tmp_path, capsys):
    out = tmp_path / "windows.csv"
    assert cli.main(["predict", str(CANONICAL), "--smoothing", "none", "--out", str(out)]) == 0
    raw_n, method = _segments(capsys.readouterr().out)
    assert method == "none"
    windows = pd.read_csv(out)
    runs = 1 + int((windows["activity"] != windows["activity"].shift()).iloc[1:].sum())
    gaps = int((windows["start"].diff() > 2.0 + 1e-3).sum())  # a gap also splits a run
    assert runs <= raw_n <= runs + gaps
    assert cli.main(["predict", str(CANONICAL)]) == 0  # default: HAR_SMOOTHING
    smooth_n, method = _segments(capsys.readouterr().out)
    assert method == Settings().smoothing == "viterbi" and smooth_n < raw_n
    # the settings object passed in decides when no flag is given
    text = score_file(CANONICAL, Settings(smoothing="none"))
    assert _segments(text) == (raw_n, "none")


def test_predict_refuses_an_unknown_smoothing(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", str(CANONICAL), "--smoothing", "median"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "median" in err and "viterbi" in err and "none" in err
