"""The drift report's plots: each a PNG (matplotlib, Agg, no pyplot state) as bytes.

Distributions are read from the profiles' KLL sketches
(:class:`har.monitoring.profiles.Distribution`); the page around them is
:mod:`har.monitoring.report`.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from har.domain.calibration import Calibration
from har.monitoring import profiles
from har.monitoring.features import CONFIDENCE, FLIP, PRED_CLASS, STATS, input_feature_names
from har.monitoring.profiles import Distribution, ProfileView
from har.monitoring.store import ProfileFile

REF_COLOR = "#4c72b0"
PROD_COLOR = "#dd8452"
DRIFT_COLOR = "#c44e52"
OK_COLOR = "#55a868"
UNITS = {"acc": "m/s²", "gyro": "deg/s"}


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def channels(reference: ProfileView) -> list[str]:
    meta = profiles.metadata(reference).get("channels")
    if meta:
        return list(json.loads(meta))
    names = input_feature_names()
    return [n.removesuffix("_mean") for n in names[0 : 4 * 6 : 4]]


def _density(d: Distribution, edges: np.ndarray) -> np.ndarray:
    mass = d.pmf(edges)[1:-1]
    return mass / np.diff(edges)


def _plot_dist(
    ax: Any, ref: Distribution | None, prod: Distribution | None, bins: int = 40
) -> None:
    present = [d for d in (ref, prod) if d is not None]
    if not present:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    lo = min(float(d.quantiles([0.002])[0]) for d in present)
    hi = max(float(d.quantiles([0.998])[0]) for d in present)
    lo, hi = min(lo, min(d.min for d in present)), max(hi, max(d.max for d in present))
    if not math.isfinite(lo) or not math.isfinite(hi):
        return
    if hi - lo < 1e-9 * max(1.0, abs(lo)):
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    for d, color, label in ((ref, REF_COLOR, "reference"), (prod, PROD_COLOR, "production")):
        if d is None:
            continue
        dens = _density(d, edges)
        ax.fill_between(centers, dens, step="mid", alpha=0.35, color=color, label=label)
        ax.step(centers, dens, where="mid", color=color, linewidth=1)
    ax.set_yticks([])


def _title(ax: Any, name: str, scores: dict[str, dict[str, Any]]) -> None:
    f = scores.get(name)
    if f is None or f["score"] is None:
        ax.set_title(name, fontsize=10)
        return
    ax.set_title(
        f"{name}  H={f['score']:.2f}",
        fontsize=10,
        color=DRIFT_COLOR if f["drifted"] else "black",
        fontweight="bold" if f["drifted"] else "normal",
    )


def panels_png(
    names: list[str],
    reference: ProfileView,
    production: ProfileView,
    scores: dict[str, dict[str, Any]],
    xlabels: list[str],
) -> bytes:
    fig = _new_figure(3.3 * len(names), 2.5)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name, xlabel in zip(axes, names, xlabels, strict=True):
        _plot_dist(
            ax, profiles.distribution(reference, name), profiles.distribution(production, name)
        )
        _title(ax, name, scores)
        ax.set_xlabel(xlabel, fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    return _png(fig)


def channel_png(
    channel: str,
    reference: ProfileView,
    production: ProfileView,
    scores: dict[str, dict[str, Any]],
) -> bytes:
    unit = UNITS.get(channel.split("_")[0], "")
    names = [f"{channel}_{s}" for s in STATS]
    return panels_png(names, reference, production, scores, [f"window {s} ({unit})" for s in STATS])


def drift_scores_png(answer: dict[str, Any]) -> bytes:
    feats = answer["features"]
    fig = _new_figure(12, 0.22 * len(feats) + 1.2)
    ax = fig.subplots()
    y = np.arange(len(feats))[::-1]
    vals = [f["score"] if f["score"] is not None else 0.0 for f in feats]
    colors = [DRIFT_COLOR if f["drifted"] else REF_COLOR for f in feats]
    ax.barh(y, vals, color=colors, height=0.7)
    for yi, f in zip(y, feats, strict=True):
        ax.plot([f["threshold"]] * 2, [yi - 0.45, yi + 0.45], color="black", linewidth=1.5)
    recent = [(yi, f["recent_score"]) for yi, f in zip(y, feats, strict=True)]
    recent = [(yi, r) for yi, r in recent if r is not None]
    if recent:
        ax.plot([r for _, r in recent], [yi for yi, _ in recent], "o", color="black", ms=3)
    ax.set_yticks(y, [f["name"] for f in feats], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(
        "Hellinger distance to the reference (black ticks: threshold; dots: the recent part)"
    )
    ax.set_title(f"Drift scores ({answer['rows']} windows, status {answer['status']})")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def confidence_png(reference: ProfileView, production: ProfileView, uncertain: float) -> bytes:
    fig = _new_figure(7, 3)
    ax = fig.subplots()
    edges = np.linspace(0.0, 1.0 + 1e-9, 21)
    width = np.diff(edges)
    for view, color, label, offset in (
        (reference, REF_COLOR, "reference", 0.0),
        (production, PROD_COLOR, "production", 0.5),
    ):
        d = profiles.distribution(view, CONFIDENCE)
        if d is None:
            continue
        share = d.pmf(edges)[1:-1]
        ax.bar(
            edges[:-1] + width * offset,
            share,
            width=width / 2,
            align="edge",
            color=color,
            label=label,
        )
    ax.axvline(uncertain, color="black", linestyle="--", linewidth=1)
    ax.text(uncertain, ax.get_ylim()[1] * 0.95, " uncertain below", fontsize=8, va="top")
    ax.set_xlabel("confidence (largest softmax probability)")
    ax.set_ylabel("share of windows")
    ax.legend(fontsize=8)
    return _png(fig)


def reliability_png(calibration: Calibration) -> bytes:
    """The reliability diagram of a card's calibration: accuracy against mean confidence per
    confidence bin, before and after the temperature, on the evaluation windows (bar widths:
    the bins; the diagonal: perfectly calibrated), with the windows per bin below."""
    fig = _new_figure(7, 4)
    ax, counts = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    for bins, color, label, marker in (
        (calibration.reliability_before, REF_COLOR, f"raw (ECE {calibration.ece_before:.3f})", "o"),
        (
            calibration.reliability_after,
            PROD_COLOR,
            f"T = {calibration.temperature:.3g} (ECE {calibration.ece_after:.3f})",
            "s",
        ),
    ):
        full = [b for b in bins if b.count]
        ax.plot(
            [b.confidence for b in full],
            [b.accuracy for b in full],
            marker=marker,
            color=color,
            label=label,
        )
    before = calibration.reliability_before
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        f"{calibration.windows_eval} evaluation windows, temperature fitted on "
        f"{calibration.windows_fit} others ({'applied' if calibration.applied else 'not applied'})",
        fontsize=9,
    )
    counts.bar(
        [b.lower for b in before],
        [b.count for b in before],
        width=[b.upper - b.lower for b in before],
        align="edge",
        color=REF_COLOR,
    )
    counts.set_ylabel("windows")
    counts.set_xlabel("confidence (largest probability), per bin")
    counts.set_xlim(0, 1)
    return _png(fig)


def timeline_png(
    files: Sequence[ProfileFile], views: Sequence[ProfileView], classes: Sequence[str]
) -> bytes:
    counts = [profiles.int_counts(v, PRED_CLASS) for v in views]
    ids = sorted({k for c in counts for k in c})
    fig = _new_figure(12, 5.5)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    x = np.arange(len(files))
    bottom = np.zeros(len(files))
    cmap = _colors(len(ids))
    for color, k in zip(cmap, ids, strict=True):
        h = np.array([c.get(k, 0) for c in counts], float)
        name = classes[k] if 0 <= k < len(classes) else f"class {k}"
        ax.bar(x, h, bottom=bottom, color=color, label=name, width=0.8)
        bottom += h
    ax.set_ylabel("windows")
    ax.set_title("Predicted activities per profile file")
    if ids:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    conf = [profiles.distribution(v, CONFIDENCE) for v in views]
    flip = [profiles.distribution(v, FLIP) for v in views]
    ax2.plot(
        x, [d.mean if d else np.nan for d in conf], "o-", color=REF_COLOR, label="mean confidence"
    )
    ax2.plot(x, [d.mean if d else np.nan for d in flip], "s-", color=DRIFT_COLOR, label="flip rate")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax2.grid(alpha=0.3)
    labels = [f"{f.start:%m-%d %H:%M}\n{f.writer}{' (open)' if f.partial else ''}" for f in files]
    step = max(1, len(files) // 16)
    ax2.set_xticks(x[::step], labels[::step], fontsize=7)
    ax2.set_xlabel("profile file (start, UTC, and writer)")
    return _png(fig)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]
