"""har.monitoring.store: profile file names, partial files, selection by time."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from har.domain.errors import InputError
from har.monitoring import store


def test_profile_file_names_round_trip_and_times_parse() -> None:
    t0 = datetime(2025, 3, 24, 7, 52, 19, 123456, tzinfo=UTC)
    t1 = datetime(2025, 3, 24, 7, 57, 19, tzinfo=UTC)
    writer = store.writer_name("api worker/1", 42, host="pod_a.local")
    assert writer == "api-worker-1.42.pod-a-local"
    path = store.profile_path(Path("/x"), t0, t1, writer)
    f = store.parse_name(path)
    assert f is not None and (f.start, f.end, f.writer, f.partial) == (t0, t1, writer, False)
    assert store.parse_name(Path("/x/notes.txt")) is None
    assert f.overlaps(t1, None) is False  # touching is not overlapping
    assert f.overlaps(None, t0) is False and f.overlaps(t0, t1) is True
    now = datetime(2025, 3, 24, 12, 0, tzinfo=UTC)
    since, until = store.parse_interval("6h", "2025-03-24T11:00:00", now=now)
    assert since == datetime(2025, 3, 24, 6, 0, tzinfo=UTC)
    assert until == datetime(2025, 3, 24, 11, 0, tzinfo=UTC)
    assert store.as_utc("2025-03-24T08:00:00+02:00") == datetime(2025, 3, 24, 6, 0, tzinfo=UTC)
    with pytest.raises(InputError, match="ISO 8601"):
        store.parse_interval("last tuesday", None)
    with pytest.raises(InputError, match="after until"):
        store.parse_interval("1h", "2h", now=now)


def _touch(path: Path, mtime: datetime) -> Path:
    path.write_bytes(b"x")
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def test_partial_files_end_at_their_last_write_and_give_way_to_their_final_file(
    tmp_path: Path,
) -> None:
    t0 = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    t1 = datetime(2025, 3, 24, 8, 5, tzinfo=UTC)
    t2 = datetime(2025, 3, 24, 8, 7, tzinfo=UTC)
    # worker a: interval t0..t1 closed (its partial not yet removed), t1.. open
    _touch(store.profile_path(tmp_path, t0, t1, "a.1"), t1)
    _touch(store.partial_path(tmp_path, t0, "a.1"), t1)
    open_a = _touch(store.partial_path(tmp_path, t1, "a.1"), t2)
    # worker b was killed during t0..: only its partial holds its rows
    dead_b = _touch(store.partial_path(tmp_path, t0, "b.2"), t1)
    (tmp_path / ".har-profile_x.bin.tmp").write_bytes(b"")  # a write in progress
    found = store.list_profiles(tmp_path)
    assert [(f.path.name, f.partial) for f in found] == [
        (store.profile_path(tmp_path, t0, t1, "a.1").name, False),
        (dead_b.name, True),
        (open_a.name, True),
    ]
    parsed = store.parse_name(open_a)
    assert parsed is not None and (parsed.start, parsed.end, parsed.writer) == (t1, t2, "a.1")
    # selection by time uses the partial's last write as its end
    assert [f.path for f in store.list_profiles(tmp_path, since=t1)] == [open_a]
    # a writer adding its open interval from memory leaves its own partial out
    assert open_a not in {f.path for f in store.list_profiles(tmp_path, skip_partial_of="a.1")}
    assert dead_b in {f.path for f in store.list_profiles(tmp_path, skip_partial_of="a.1")}


def test_replicas_with_the_same_worker_id_and_pid_keep_apart(tmp_path: Path) -> None:
    """Two pods (own PID namespaces) on one volume: the same worker id and pid (seen with
    `make pod-test`), told apart by the host name; each sees the other's open partial."""
    t0 = datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
    a, b = (store.writer_name("api1", 13, host=h) for h in ("har-a-pod-0", "har-b-pod-0"))
    assert a != b and store.writer_name("api1", 13).startswith("api1.13.")
    _touch(store.partial_path(tmp_path, t0, a), t0)
    open_b = _touch(store.partial_path(tmp_path, t0.replace(second=1), b), t0)
    assert [f.path for f in store.list_profiles(tmp_path, skip_partial_of=a)] == [open_b]
