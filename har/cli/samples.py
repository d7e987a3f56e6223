"""``python -m har samples``: the served windows kept for labelling (``HAR_SAMPLE_DIR``).

``samples export --since 1d [--reason uncertain] --out batch.npz`` writes the kept windows as
an ``.npz`` (``windows`` ``(N, window, 6)`` float32 in canonical units, m/s² and deg/s;
``labels`` ``(N,)``, empty; the sample's own arrays: ``time``, ``reason``, ``model``,
``prediction``, ``confidence``, ``shadow_prediction``, ``acc_unit``, ``gyro_unit``) and, beside
it, ``batch.csv``: one row per window (``index`` = its position in the ``.npz``) with those
fields and an empty ``label`` column for a labelling tool. ``samples label batch.npz`` copies
the filled ``label`` column of ``batch.csv`` into ``labels``; the file is then valid
``promote --eval-data`` and ``register --reference-data`` as it is.
"""

from __future__ import annotations

import argparse
import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from har.domain.errors import InputError


def manifest_path(out: Path) -> Path:
    """The CSV manifest beside an exported ``.npz``: same name, ``.csv``."""
    return Path(out).with_suffix(".csv")


def export(directory: Path, out: Path, since: str | None, reason: str | None) -> int:
    """Write the kept windows of ``directory`` (served since ``since``, kept for ``reason``)
    to ``out`` and its manifest; return how many.

    Raises:
        InputError: no such folder, an unknown reason, unreadable ``since``, or no windows.
    """
    from har.monitoring import store
    from har.monitoring.sample_files import FIELDS, read_samples
    from har.monitoring.samples import REASONS

    if not Path(directory).is_dir():
        raise InputError(f"no kept windows: {directory} is not a folder (HAR_SAMPLE_DIR)")
    if reason is not None and reason not in REASONS:
        raise InputError(f"unknown reason {reason!r}; use one of {list(REASONS)}")
    kept = read_samples(Path(directory), store.as_utc(since), reason)
    n = len(kept.get("time", ()))
    if n == 0:
        raise InputError(
            f"no windows kept in {directory} since {since or 'the start'}"
            + (f" for reason {reason!r}" if reason else "")
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {**kept, "labels": np.full(n, "", dtype="<U32")}
    np.savez(out, **arrays)
    with manifest_path(out).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", *FIELDS, "label"])  # a segment's fields; label left empty
        for i in range(n):
            t = datetime.fromtimestamp(float(kept["time"][i]), UTC)
            w.writerow(
                [
                    i,
                    t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    *(str(kept[k][i]) for k in ("reason", "model", "prediction")),
                    f"{float(kept['confidence'][i]):.6f}",
                    *(str(kept[k][i]) for k in ("shadow_prediction", "acc_unit", "gyro_unit")),
                    "",
                ]
            )
    return n


def apply_labels(npz: Path, manifest: Path | None = None) -> int:
    """Copy the ``label`` column of the manifest (default: beside ``npz``) into ``labels``;
    return how many windows are labelled. Rows whose ``label`` is empty drop their window
    (unlabelled windows are no evaluation data).

    Raises:
        InputError: missing files, rows that do not name a window of ``npz``.
    """
    manifest = manifest or manifest_path(npz)
    if not Path(npz).is_file() or not Path(manifest).is_file():
        raise InputError(f"need {npz} and its manifest {manifest}")
    with np.load(npz, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    n = len(arrays["windows"])
    labels = np.full(n, "", dtype=object)
    with Path(manifest).open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                i = int(row["index"])
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{manifest}: a row without an 'index' column value") from None
            if not 0 <= i < n:
                raise InputError(f"{manifest}: index {i} is not a window of {npz} (0..{n - 1})")
            labels[i] = (row.get("label") or "").strip()
    keep = np.flatnonzero(labels != "")
    if len(keep) == 0:
        raise InputError(f"{manifest}: no row has a label")
    out: dict[str, Any] = {k: v[keep] for k, v in arrays.items() if len(v) == n}
    out["labels"] = labels[keep].astype(str)
    np.savez(npz, **out)
    return len(keep)


def _cmd_export(args: argparse.Namespace) -> int:
    from har.settings import get_settings

    directory = args.dir or get_settings().sample_dir
    if directory is None:
        raise InputError("no folder of kept windows: set HAR_SAMPLE_DIR or pass --dir")
    n = export(directory, args.out, args.since, args.reason)
    print(f"{n} windows -> {args.out} (manifest {manifest_path(args.out)})")
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    n = apply_labels(args.npz, args.manifest)
    print(f"{n} labelled windows in {args.npz}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``samples export`` and ``samples label`` to ``python -m har``."""
    s = sub.add_parser("samples", help="served windows kept for labelling (HAR_SAMPLE_DIR)")
    ss = s.add_subparsers(dest="samples_command", required=True)
    e = ss.add_parser("export", help="kept windows -> .npz + CSV manifest to label")
    e.add_argument("--since", help="served since: ISO 8601 or a duration (30m, 6h, 1d)")
    e.add_argument(
        "--reason", help="only windows kept for it: uncertain|shadow_disagreement|drift|random"
    )
    e.add_argument("--dir", type=Path, help="the kept windows (default: HAR_SAMPLE_DIR)")
    e.add_argument("--out", type=Path, required=True, help="the .npz to write (and its .csv)")
    e.set_defaults(func=_cmd_export)
    lab = ss.add_parser("label", help="copy the manifest's filled 'label' column into the .npz")
    lab.add_argument("npz", type=Path, help="an exported .npz")
    lab.add_argument("--manifest", type=Path, help="default: the .csv beside the .npz")
    lab.set_defaults(func=_cmd_label)
