"""The shadow comparison's counts on disk, shared by every API worker (and replica).

BentoML runs ``HAR_API_WORKERS`` API worker processes, each with its own
:class:`~har.shadow.compare.ShadowStats` in memory. So that ``GET /monitoring/shadow``
answers for all of them, whichever worker a request reaches, each worker also writes
its buckets into a folder they share (``<HAR_PROFILE_DIR>/shadow``, beside the whylogs
profiles, so replicas sharing that volume share the comparison too)::

    har-shadow_3f2a9c1e_1764763200_api0.4242.har-7f9c-x2b.npz
               └ models ┘ └ hour ┘  └ writer ┘

* one file per writer (worker id, pid and host, as the profile files) and UTC hour, holding
  that hour's non-empty buckets; only its writer rewrites it (to a temporary name, then
  an atomic rename), so readers never see half a file and no lock is needed, even on a
  network volume;
* ``models`` is a hash of the (served, shadow) tags: another pair's counts (an earlier
  deployment) are never summed in;
* files older than ``RETENTION_S`` are deleted by whichever writer notices them;
* a killed worker's file stays: its counts up to its last write (``FLUSH_S``) remain.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PREFIX = "har-shadow"
#: Seconds covered by one file.
FILE_SPAN_S = 3600
_NAME = re.compile(rf"^{PREFIX}_(?P<models>[0-9a-f]{{8}})_(?P<hour>\d+)_(?P<writer>[^_/]+)\.npz$")


@dataclass
class BucketCounts:
    """One writer's counts in one bucket (see ``har.shadow.compare``)."""

    matrix: np.ndarray  # (n_primary, n_shadow) int64 window counts
    conf_sum: np.ndarray  # float64 (primary, shadow) summed confidence
    dropped: np.ndarray  # int64 windows dropped per reason (order of compare.DROP_REASONS)


def models_key(primary_model: str, shadow_model: str) -> str:
    """The 8-hex-digit hash naming one (served, shadow) pair's files."""
    return hashlib.sha256(f"{primary_model}\0{shadow_model}".encode()).hexdigest()[:8]


class ShadowStore:
    """The shared folder of one (served, shadow) pair's counts.

    Args:
        folder: created if missing.
        primary_model, shadow_model: the tags the counts belong to.
        writer: this worker's name in its files (``<worker_id>.<pid>.<host>``).
        bucket_s: seconds per bucket (a divisor of ``FILE_SPAN_S``).
        retention_s: files whose hour ended longer ago than this are deleted.
    """

    def __init__(
        self,
        folder: Path,
        primary_model: str,
        shadow_model: str,
        *,
        writer: str,
        bucket_s: int,
        retention_s: int,
    ) -> None:
        if FILE_SPAN_S % bucket_s:
            raise ValueError(f"bucket_s={bucket_s} does not divide {FILE_SPAN_S}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.models = models_key(primary_model, shadow_model)
        self.writer = writer
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self._pruned_hour = -1

    def hour_of(self, key: int) -> int:
        """The start (epoch seconds) of the file span holding bucket ``key``."""
        return key * self.bucket_s // FILE_SPAN_S * FILE_SPAN_S

    def path(self, hour: int) -> Path:
        """This writer's file of ``hour``."""
        return self.folder / f"{PREFIX}_{self.models}_{hour}_{self.writer}.npz"

    def write(self, hour: int, buckets: dict[int, BucketCounts]) -> None:
        """Replace this writer's file of ``hour`` by ``buckets`` (all its buckets in it)."""
        keys = sorted(buckets)
        buf = io.BytesIO()
        np.savez(
            buf,
            keys=np.array(keys, np.int64),
            matrix=np.stack([buckets[k].matrix for k in keys]),
            conf_sum=np.stack([buckets[k].conf_sum for k in keys]),
            dropped=np.stack([buckets[k].dropped for k in keys]),
        )
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{PREFIX}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getbuffer())
            os.replace(tmp, self.path(hour))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._prune(hour)

    def _prune(self, hour: int) -> None:
        """Delete every writer's files of this pair past retention (once per hour)."""
        if hour == self._pruned_hour:
            return
        self._pruned_hour = hour
        oldest = time.time() - self.retention_s - FILE_SPAN_S
        for path, file_hour, _ in self._files():
            if file_hour < oldest:
                path.unlink(missing_ok=True)

    def _files(self) -> Iterator[tuple[Path, int, str]]:
        try:
            paths = list(self.folder.iterdir())
        except OSError as exc:  # the folder is gone or unreadable: no other workers' counts
            log.warning("shadow counts: cannot list %s (%s)", self.folder, exc)
            return
        for path in paths:
            m = _NAME.match(path.name)
            if m and m["models"] == self.models:
                yield path, int(m["hour"]), m["writer"]

    def read_others(self, lo: int, hi: int | None) -> Iterable[tuple[str, BucketCounts]]:
        """Other writers' buckets with ``lo <= key <= hi`` (``hi`` ``None``: unbounded), as
        ``(writer, counts summed over those buckets)`` per file read."""
        for path, hour, writer in self._files():
            if writer == self.writer:
                continue
            first, last = hour // self.bucket_s, (hour + FILE_SPAN_S) // self.bucket_s - 1
            if last < lo or (hi is not None and first > hi):
                continue
            try:
                with np.load(path) as f:
                    keys, matrix = f["keys"], f["matrix"]
                    conf, dropped = f["conf_sum"], f["dropped"]
            except FileNotFoundError:  # pruned meanwhile
                continue
            except Exception as exc:
                log.warning("shadow counts: skipping unreadable %s (%s)", path.name, exc)
                continue
            sel = keys >= lo
            if hi is not None:
                sel &= keys <= hi
            if sel.any():
                summed = (a[sel].sum(axis=0) for a in (matrix, conf, dropped))
                yield writer, BucketCounts(*summed)
