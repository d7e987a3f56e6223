"""Profile files on disk: names carrying their UTC interval and writer, and selection by time.

Every API worker writes its own files into one folder (``HAR_PROFILE_DIR``), so
names must never collide and must say which interval they cover::

    har-profile_20250324T075219.123456Z_20250324T080219.123456Z_worker-1.4242.bin
                 └ first row could be logged ┘ └ file closed ┘  └ worker id . pid ┘

Files are written atomically (:func:`har.monitoring.profiles.write_view`) and
never changed afterwards; any reader can merge any subset of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from har.errors import InputError

PREFIX = "har-profile"
SUFFIX = ".bin"
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(
    rf"^{PREFIX}_(?P<start>\d{{8}}T\d{{6}}\.\d{{6}}Z)_(?P<end>\d{{8}}T\d{{6}}\.\d{{6}}Z)"
    rf"_(?P<writer>[A-Za-z0-9.\-]+){re.escape(SUFFIX)}$"
)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def writer_name(worker_id: str | None, pid: int) -> str:
    """File-name-safe writer id: ``<worker_id>.<pid>`` (``pid<pid>`` without a worker id)."""
    if worker_id is None:
        return f"pid{pid}"
    safe = re.sub(r"[^A-Za-z0-9\-]+", "-", str(worker_id)).strip("-") or "worker"
    return f"{safe}.{pid}"


@dataclass(frozen=True)
class ProfileFile:
    """One profile file and the UTC interval ``[start, end]`` its rows were logged in."""

    path: Path
    start: datetime
    end: datetime
    writer: str

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        """Whether the file's interval and ``[since, until]`` share more than an instant.

        ``None`` leaves that side open. A file that ends exactly at ``since`` (or starts
        exactly at ``until``) is outside: intervals of consecutive files only touch.
        """
        return (since is None or self.end > since) and (until is None or self.start < until)


def profile_path(folder: Path, start: datetime, end: datetime, writer: str) -> Path:
    """Where the profile of ``[start, end]`` written by ``writer`` goes."""
    return Path(folder) / f"{PREFIX}_{_stamp(start)}_{_stamp(end)}_{writer}{SUFFIX}"


def parse_name(path: Path) -> ProfileFile | None:
    """The interval and writer encoded in a profile file's name, ``None`` for other files."""
    m = _NAME.match(Path(path).name)
    if m is None:
        return None
    return ProfileFile(Path(path), _parse(m["start"]), _parse(m["end"]), m["writer"])


def list_profiles(
    folder: Path, since: datetime | None = None, until: datetime | None = None
) -> list[ProfileFile]:
    """Profile files in ``folder`` overlapping ``[since, until]``, oldest first.

    A missing folder has no profiles. Temporary files of writes in progress are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [parse_name(p) for p in folder.glob(f"{PREFIX}_*{SUFFIX}")]
    return sorted(
        (f for f in found if f is not None and f.overlaps(since, until)),
        key=lambda f: (f.start, f.end, f.writer),
    )


_AGO = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def as_utc(t: datetime | str | None, now: datetime | None = None) -> datetime | None:
    """A timezone-aware UTC datetime, or ``None``.

    Accepts a datetime (naive = UTC), an ISO 8601 string (``2025-03-24T07:52:19Z``;
    without an offset = UTC) or a duration before ``now`` such as ``90s``, ``30m``,
    ``6h``, ``2d``.

    Raises:
        InputError: a string that is neither (the message shows the accepted forms).
    """
    if t is None:
        return None
    if isinstance(t, str):
        text = t.strip()
        ago = _AGO.match(text)
        if ago:
            ref = now if now is not None else datetime.now(UTC)
            return ref - timedelta(seconds=float(ago["n"]) * _UNIT_S[ago["unit"]])
        try:
            t = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InputError(
                f"cannot read the time {text!r}: use ISO 8601 (2025-03-24T07:52:19Z) "
                "or a duration before now (90s, 30m, 6h, 2d)"
            ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_interval(
    since: datetime | str | None, until: datetime | str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``(since, until)`` as UTC datetimes (see :func:`as_utc` for the accepted forms).

    Raises:
        InputError: an unreadable time, or ``since`` after ``until``.
    """
    ref = now if now is not None else datetime.now(UTC)
    start, end = as_utc(since, ref), as_utc(until, ref)
    if start is not None and end is not None and start > end:
        raise InputError(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    return start, end
