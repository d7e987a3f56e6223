"""Profile files on disk: names carrying their UTC interval and writer, and selection by time.

Every API worker writes its own files into one folder (``HAR_PROFILE_DIR``), so
names must never collide and must say which interval they cover::

    har-profile_20250324T075219.123456Z_20250324T080219.123456Z_api1.13.har-7f9c-x2b.bin
                 └ first row could be logged ┘ └ file closed ┘  └ worker id . pid . host ┘

Replicas sharing the folder (a ReadWriteMany volume) each have their own PID namespace,
so their API workers often have the same worker id and pid: the host name (the pod's name
in Kubernetes) keeps their names apart.

Files are written atomically (:func:`har.monitoring.profiles.write_view`) and
never changed afterwards; any reader can merge any subset of them.

While an interval is open its writer also keeps one *partial* file, the rows
of the interval so far, overwritten in place every ``HAR_PROFILE_FLUSH_S``::

    har-profile_20250324T075219.123456Z_partial_worker-1.4242.bin

Its end is its modification time. At roll-over the writer writes the final
file and then removes the partial; :func:`list_profiles` skips a partial whose
final file exists, so a reader never counts a row twice. A partial left behind
by a killed worker stays as the record of that interval's rows.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from har.domain.errors import InputError

PREFIX = "har-profile"
SUFFIX = ".bin"
PARTIAL = "partial"
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_STAMP = r"\d{8}T\d{6}\.\d{6}Z"
_WRITER = rf"_(?P<writer>[A-Za-z0-9.\-]+){re.escape(SUFFIX)}$"
_NAME = re.compile(rf"^{PREFIX}_(?P<start>{_STAMP})_(?P<end>{_STAMP}){_WRITER}")
_PARTIAL_NAME = re.compile(rf"^{PREFIX}_(?P<start>{_STAMP})_{PARTIAL}{_WRITER}")


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-]+", "-", text).strip("-")


def writer_name(worker_id: str | None, pid: int, host: str | None = None) -> str:
    """File-name-safe writer id: ``<worker_id>.<pid>.<host>`` (``pid<pid>.<host>`` without a
    worker id); ``host`` defaults to this machine's (a pod's) host name.

    The pid alone is not enough: two replicas' API workers (separate PID namespaces) were
    seen with the same worker id and pid (``api1.13``) in two pods sharing the profile
    volume, and each then took the other's open partial file for its own and skipped it.
    """
    base = f"pid{pid}" if worker_id is None else f"{_safe(str(worker_id)) or 'worker'}.{pid}"
    host = _safe(socket.gethostname() if host is None else host)[:63].strip("-")
    return f"{base}.{host}" if host else base


@dataclass(frozen=True)
class ProfileFile:
    """One profile file and the UTC interval ``[start, end]`` its rows were logged in.

    ``partial``: the open interval's file (its ``end`` is the last write), see above.
    """

    path: Path
    start: datetime
    end: datetime
    writer: str
    partial: bool = False

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        """Whether the file's interval and ``[since, until]`` share more than an instant.

        ``None`` leaves that side open. A file that ends exactly at ``since`` (or starts
        exactly at ``until``) is outside: intervals of consecutive files only touch.
        """
        return (since is None or self.end > since) and (until is None or self.start < until)


def profile_path(folder: Path, start: datetime, end: datetime, writer: str) -> Path:
    """Where the profile of ``[start, end]`` written by ``writer`` goes."""
    return Path(folder) / f"{PREFIX}_{_stamp(start)}_{_stamp(end)}_{writer}{SUFFIX}"


def partial_path(folder: Path, start: datetime, writer: str) -> Path:
    """The partial file of ``writer``'s interval opened at ``start``."""
    return Path(folder) / f"{PREFIX}_{_stamp(start)}_{PARTIAL}_{writer}{SUFFIX}"


def parse_name(path: Path) -> ProfileFile | None:
    """The interval and writer of a profile file (final or partial), ``None`` for other files.

    A partial's end is its modification time (``None`` if it has just been removed).
    """
    path = Path(path)
    m = _NAME.match(path.name)
    if m is not None:
        return ProfileFile(path, _parse(m["start"]), _parse(m["end"]), m["writer"])
    m = _PARTIAL_NAME.match(path.name)
    if m is None:
        return None
    try:
        end = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except FileNotFoundError:
        return None
    return ProfileFile(path, _parse(m["start"]), end, m["writer"], partial=True)


def list_profiles(
    folder: Path,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    skip_partial_of: str | None = None,
) -> list[ProfileFile]:
    """Profile files in ``folder`` overlapping ``[since, until]``, oldest first.

    Partial files are included unless their final file exists (same writer and
    start) or they belong to ``skip_partial_of`` (a writer that adds its open
    interval from memory). A missing folder has no profiles. Temporary files of
    writes in progress are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [f for f in map(parse_name, folder.glob(f"{PREFIX}_*{SUFFIX}")) if f is not None]
    final = {(f.writer, f.start) for f in found if not f.partial}
    keep = [
        f
        for f in found
        if f.overlaps(since, until)
        and not (f.partial and ((f.writer, f.start) in final or f.writer == skip_partial_of))
    ]
    return sorted(keep, key=lambda f: (f.start, f.end, f.writer))


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
            try:
                return ref - timedelta(seconds=float(ago["n"]) * _UNIT_S[ago["unit"]])
            except OverflowError:
                raise InputError(
                    f"the duration {text!r} reaches before year 1: use a shorter one"
                ) from None
        try:
            t = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InputError(
                f"cannot read the time {text!r}: use ISO 8601 (2025-03-24T07:52:19Z) "
                "or a duration before now (90s, 30m, 6h, 2d)"
            ) from None
    try:
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except OverflowError:
        raise InputError(f"the time {t.isoformat()!r} is out of range in UTC") from None


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
