"""From class probabilities to what users read: per-window predictions and a timeline.

Used by batch scoring (``python -m har predict``), ``POST /predict``,
``POST /predict_recording`` and the gRPC servicer, so every surface names
classes, confidences and segments the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from har.card import ModelCard
from har.preprocessing import Windows


def predictions(probs: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """One dict per row of ``probs`` ``(N, n_classes)``: activity, id, confidence, probabilities."""
    ids = probs.argmax(axis=1)
    conf = probs[np.arange(len(ids)), ids]
    rounded = np.round(probs.astype(np.float64), 6).tolist()
    return [
        {
            "activity": classes[i],
            "activity_id": int(i),
            "confidence": float(c),
            "probabilities": dict(zip(classes, row, strict=True)),
        }
        for i, c, row in zip(ids.tolist(), conf.tolist(), rounded, strict=True)
    ]


def timeline(windows: Windows, probs: np.ndarray, card: ModelCard) -> dict[str, Any]:
    """Per-window predictions, merged segments and seconds per activity.

    Consecutive windows with the same activity and no gap between them form one
    segment (``start`` of its first window, ``end`` of its last, mean confidence).
    In ``summary`` each window is credited with the ``hop`` seconds it adds to the
    timeline (its full length when it ends a gap-free stretch), so overlapping
    windows are not counted twice. Times are seconds from the recording's first sample.
    """
    ids = probs.argmax(axis=1)
    conf = probs[np.arange(len(ids)), ids].astype(np.float64)
    start, end = windows.start_s, windows.end_s
    hop_s = card.hop / card.sample_rate_hz
    win = [
        {
            "start": round(float(s), 3),
            "end": round(float(e), 3),
            "activity": card.classes[i],
            "confidence": round(float(c), 6),
        }
        for s, e, i, c in zip(
            start.tolist(), end.tolist(), ids.tolist(), conf.tolist(), strict=True
        )
    ]
    # a new segment starts where the activity changes or a gap separates windows
    contiguous = np.concatenate([[False], windows.segment[1:] == windows.segment[:-1]])
    new = ~(contiguous & np.concatenate([[False], ids[1:] == ids[:-1]]))
    seg_id = np.cumsum(new) - 1
    segments = []
    for k in range(int(seg_id[-1]) + 1 if len(ids) else 0):
        idx = np.flatnonzero(seg_id == k)
        segments.append(
            {
                "start": round(float(start[idx[0]]), 3),
                "end": round(float(end[idx[-1]]), 3),
                "activity": card.classes[int(ids[idx[0]])],
                "confidence": round(float(conf[idx].mean()), 6),
                "windows": len(idx),
            }
        )
    last_of_stretch = np.concatenate([~contiguous[1:], [True]])
    credit = np.where(last_of_stretch, card.window / card.sample_rate_hz, hop_s)
    summary: dict[str, float] = {}
    for i, sec in zip(ids.tolist(), credit.tolist(), strict=True):
        summary[card.classes[i]] = summary.get(card.classes[i], 0.0) + sec
    return {
        "windows": win,
        "segments": segments,
        "summary": {k: round(v, 3) for k, v in sorted(summary.items(), key=lambda kv: -kv[1])},
    }
