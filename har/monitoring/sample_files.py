"""Kept windows on disk: the segment files :class:`~har.monitoring.samples.SampleKeeper` writes,
named ``<worker_id>.<pid>.<host>-<UTC time>-<n>.npz``, listed and read back (``python -m har
samples export``).

Each segment holds ``windows`` ``(N, window, 6)`` float32 in canonical units and one value per
window for each of :data:`FIELDS`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Arrays of a segment besides ``windows`` (one value per window).
FIELDS: tuple[str, ...] = (
    "time",
    "reason",
    "model",
    "prediction",
    "confidence",
    "shadow_prediction",
    "acc_unit",
    "gyro_unit",
)
_SEGMENT = re.compile(r"^(?P<writer>.+)-(?P<stamp>\d{8}T\d{6}\d{6}Z)-(?P<seq>\d+)\.npz$")


@dataclass(frozen=True)
class Segment:
    """One segment file: its writer (``<worker_id>.<pid>.<host>``) and the UTC time it was
    written (every window in it was served before)."""

    path: Path
    writer: str
    written: datetime


def list_segments(directory: Path) -> list[Segment]:
    """Segments in ``directory``, oldest first (temporary files left by a crash are skipped)."""
    out: list[Segment] = []
    if not Path(directory).is_dir():
        return out
    for p in Path(directory).iterdir():
        m = _SEGMENT.match(p.name)
        if m:
            t = datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            out.append(Segment(p, m["writer"], t))
    return sorted(out, key=lambda s: (s.written, s.path.name))


def read_samples(
    directory: Path, since: datetime | None = None, reason: str | None = None
) -> dict[str, np.ndarray]:
    """Every kept window in ``directory`` served at or after ``since`` (UTC), with ``reason``
    among its reasons when given: ``windows`` ``(N, window, 6)`` canonical float32 and the
    :data:`FIELDS` arrays, oldest first."""
    parts = []
    for seg in list_segments(directory):
        try:
            with np.load(seg.path) as f:
                part = {k: f[k] for k in ("windows", *FIELDS)}
        except (OSError, ValueError, KeyError) as exc:  # a segment removed meanwhile
            log.warning("samples: skipping %s (%s)", seg.path, exc)
            continue
        keep = np.ones(len(part["time"]), bool)
        if since is not None:
            keep &= part["time"] >= since.timestamp()
        if reason is not None:
            keep &= np.array([reason in r.split("+") for r in part["reason"].tolist()], bool)
        parts.append({k: v[keep] for k, v in part.items()})
    if not parts:
        return {}
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("windows", *FIELDS)}
    order = np.argsort(out["time"], kind="stable")
    return {k: v[order] for k, v in out.items()}
