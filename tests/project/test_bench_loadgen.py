"""load_tests.bench.loadgen: h2load's streams spread over the connections asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from load_tests.bench.loadgen import _h2load_cmd


def _flags(cmd: list[str]) -> dict[str, str]:
    return {a[:2]: a[2:] for a in cmd if a[:2] in ("-c", "-m", "-t")}


def test_streams_split_evenly_over_the_connections() -> None:
    body = Path("body.bin")
    assert _flags(_h2load_cmd("http://h/p", body, 64)) == {"-c": "1", "-m": "64", "-t": "1"}
    assert _flags(_h2load_cmd("http://h/p", body, 64, connections=4))["-c"] == "4"
    assert _flags(_h2load_cmd("http://h/p", body, 64, connections=4))["-m"] == "16"
    # c=1 with several connections asked: one connection, one stream
    assert _flags(_h2load_cmd("http://h/p", body, 1, connections=4)) == {
        "-c": "1",
        "-m": "1",
        "-t": "1",
    }
    with pytest.raises(ValueError, match="evenly"):
        _h2load_cmd("http://h/p", body, 64, connections=3)
