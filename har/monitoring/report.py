"""The drift report: one self-contained HTML page comparing served windows with the reference.

``python -m har drift-report [--profiles DIR] [--since T] --out report.html``
calls :func:`drift_report`. The page holds, with every plot an inline PNG
(matplotlib, Agg, no pyplot state):

* the interval's status, rows, confidence and stability (as ``GET /monitoring/drift``);
* drift scores of every input feature against their thresholds (bar chart and table);
* per channel (``acc_x`` .. ``gyro_z``), reference vs production distributions of
  the window mean, std, min and max, and of the two magnitudes, read from the
  profiles' KLL sketches;
* reference vs production confidence histogram;
* predicted-activity mix, mean confidence and flip rate per profile file over time.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from har.errors import InputError
from har.monitoring import profiles, store
from har.monitoring.drift import DriftConfig, summarise
from har.monitoring.features import (
    CONFIDENCE,
    FLIP,
    MAGNITUDES,
    PRED_CLASS,
    STATS,
    input_feature_names,
)
from har.monitoring.profiles import Distribution, ProfileView
from har.monitoring.store import ProfileFile
from har.settings import Settings, get_settings

REF_COLOR = "#4c72b0"
PROD_COLOR = "#dd8452"
DRIFT_COLOR = "#c44e52"
OK_COLOR = "#55a868"
UNITS = {"acc": "m/s²", "gyro": "deg/s"}


def drift_report(
    profiles: Path,
    reference: Path,
    out: Path,
    since: str | None = None,
    until: str | None = None,
    *,
    settings: Settings | None = None,
) -> Path:
    """Render the report of the profiles in ``profiles`` (the CLI entry point).

    Args:
        profiles: folder of profile files (``HAR_PROFILE_DIR``).
        reference: the model's reference profile (``reference_profile.bin``).
        out: HTML file to write.
        since, until: interval bounds, ISO 8601 (UTC when no offset) or a duration
            before now (``30m``, ``6h``, ``2d``); ``None`` = open.

        settings: thresholds (``HAR_DRIFT_THRESHOLD``, ``HAR_DRIFT_MIN_ROWS``,
            ``HAR_UNCERTAIN_BELOW``); default: the process settings.

    Returns:
        ``out``.

    Raises:
        InputError: missing reference, no profiles in the interval, unreadable times.
    """
    return render_report(
        Path(profiles),
        Path(reference),
        Path(out),
        since=store.as_utc(since),
        until=store.as_utc(until),
        settings=settings or get_settings(),
    )


def render_report(
    profiles_dir: Path,
    reference_path: Path,
    out: Path,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    settings: Settings | None = None,
    config: DriftConfig | None = None,
) -> Path:
    """Write the HTML report of ``profiles_dir``'s files overlapping ``[since, until]``.

    Args:
        profiles_dir: folder of profile files.
        reference_path: reference profile file.
        out: HTML file to write (its folder is created).
        since, until: interval bounds (datetime, ISO 8601 or ``30m``-style duration).
        settings: source of the drift thresholds when ``config`` is not given.
        config: drift thresholds, minimum rows and uncertain confidence.

    Returns:
        ``out``.
    """
    since_t, until_t = store.as_utc(since), store.as_utc(until)
    if not Path(reference_path).is_file():
        raise InputError(f"reference profile not found: {reference_path}")
    files = store.list_profiles(profiles_dir, since_t, until_t)
    if not files:
        raise InputError(
            f"no profile files in {profiles_dir} for the interval "
            f"{since_t or 'start'} .. {until_t or 'now'}"
        )
    cfg = config or DriftConfig.from_settings(settings or get_settings())
    reference = profiles.read_view(Path(reference_path))
    views = [profiles.read_view(f.path) for f in files]
    production = profiles.merge_views(views)
    answer = summarise(
        reference,
        production,
        cfg,
        since=since_t or files[0].start,
        until=until_t or files[-1].end,
    )
    classes = profiles.classes_of(production) or profiles.classes_of(reference) or []

    sections = [
        _summary_html(answer, files),
        _figure("fig-drift-scores", "Drift score per feature", _drift_scores_png(answer)),
        _features_table(answer),
        "<h2>Input distributions: reference vs production</h2>",
        "<p>Density of each window statistic, from the profiles' KLL sketches. "
        "Panel titles give the Hellinger distance (red: at or above threshold).</p>",
    ]
    scores = {f["name"]: f for f in answer["features"]}
    for ch in _channels(reference):
        png = _channel_png(ch, reference, production, scores)
        sections.append(_figure(f"channel-{ch}", f"{ch}: reference vs production", png))
    sections.append(
        _figure(
            "fig-magnitudes",
            "magnitudes: reference vs production",
            _panels_png(
                list(MAGNITUDES),
                reference,
                production,
                scores,
                [
                    f"window mean of |acc| ({UNITS['acc']})",
                    f"window mean of |gyro| ({UNITS['gyro']})",
                ],
            ),
        )
    )
    sections.append("<h2>Model outputs</h2>")
    sections.append(
        _figure(
            "fig-confidence",
            "confidence histogram: reference vs production",
            _confidence_png(reference, production, cfg.uncertain_below),
        )
    )
    sections.append(
        _figure(
            "fig-activity-mix",
            "activity mix, confidence and flip rate per profile file",
            _timeline_png(files, views, classes),
        )
    )
    page = _page(answer, "\n".join(sections))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


# --------------------------------------------------------------------------- HTML
def _page(answer: dict[str, Any], body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>HAR drift report ({html.escape(answer["status"])})</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }}
h1 {{ margin-bottom: .2em; }} h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
td, th {{ border: 1px solid #ccc; padding: .25em .6em; text-align: left; font-size: 14px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.badge {{ display: inline-block; padding: .15em .7em; border-radius: .8em; color: white; }}
.ok {{ background: {OK_COLOR}; }} .drift {{ background: {DRIFT_COLOR}; }}
.insufficient_data {{ background: #8c8c8c; }}
tr.drifted td {{ background: #f8dcdc; }}
figure {{ margin: 1em 0; }} figure img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 13px; }}
.features {{ columns: 2; }}
</style></head><body>
<h1>HAR drift report</h1>
{body}
</body></html>
"""


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _summary_html(answer: dict[str, Any], files: Sequence[ProfileFile]) -> str:
    st = answer["status"]
    conf, stab, iv = answer["confidence"], answer["stability"], answer["interval"]
    writers = sorted({f.writer for f in files})
    rows = [
        ("Status", f'<span class="badge {html.escape(st)}">{html.escape(st)}</span>'),
        ("Interval (UTC)", f"{html.escape(str(iv['since']))} → {html.escape(str(iv['until']))}"),
        ("Windows profiled", f"{answer['rows']}"),
        ("Profile files", f"{len(files)} from {len(writers)} writer(s): {', '.join(writers)}"),
        ("Reference windows", f"{answer['reference_rows']}"),
        ("Features drifted", f"{sum(f['drifted'] for f in answer['features'])}"),
        ("Mean confidence", _fmt(conf["mean"])),
        (
            f"Uncertain share (confidence < {conf['uncertain_below']})",
            _fmt(conf["uncertain_share"]),
        ),
        (
            "Flip rate (consecutive windows)",
            f"{_fmt(stab['flip_rate'])} over {stab['pairs']} pairs",
        ),
        ("Predicted-class mix distance", _fmt(answer["outputs"]["class_mix_distance"])),
    ]
    if "reason" in answer:
        rows.append(("Note", html.escape(answer["reason"])))
    cells = "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table id="summary">{cells}</table>'


def _features_table(answer: dict[str, Any]) -> str:
    lines = [
        '<details><summary>Scores table</summary><table id="features">',
        "<tr><th>feature</th><th>score</th><th>threshold</th><th>drifted</th></tr>",
    ]
    for f in answer["features"]:
        cls = ' class="drifted"' if f["drifted"] else ""
        lines.append(
            f"<tr{cls}><td>{html.escape(f['name'])}</td><td class='num'>{_fmt(f['score'])}</td>"
            f"<td class='num'>{f['threshold']:.2f}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>"
        )
    lines.append("</table></details>")
    return "\n".join(lines)


def _figure(fig_id: str, alt: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    a = html.escape(alt)
    return (
        f'<figure id="{fig_id}"><img alt="{a}" src="data:image/png;base64,{data}">'
        f"<figcaption>{a}</figcaption></figure>"
    )


# -------------------------------------------------------------------------- plots
def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _channels(reference: ProfileView) -> list[str]:
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


def _panels_png(
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


def _channel_png(
    channel: str,
    reference: ProfileView,
    production: ProfileView,
    scores: dict[str, dict[str, Any]],
) -> bytes:
    unit = UNITS.get(channel.split("_")[0], "")
    names = [f"{channel}_{s}" for s in STATS]
    return _panels_png(
        names, reference, production, scores, [f"window {s} ({unit})" for s in STATS]
    )


def _drift_scores_png(answer: dict[str, Any]) -> bytes:
    feats = answer["features"]
    fig = _new_figure(12, 0.22 * len(feats) + 1.2)
    ax = fig.subplots()
    y = np.arange(len(feats))[::-1]
    vals = [f["score"] if f["score"] is not None else 0.0 for f in feats]
    colors = [DRIFT_COLOR if f["drifted"] else REF_COLOR for f in feats]
    ax.barh(y, vals, color=colors, height=0.7)
    for yi, f in zip(y, feats, strict=True):
        ax.plot([f["threshold"]] * 2, [yi - 0.45, yi + 0.45], color="black", linewidth=1.5)
    ax.set_yticks(y, [f["name"] for f in feats], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Hellinger distance to the reference (black ticks: threshold)")
    ax.set_title(f"Drift scores ({answer['rows']} windows, status {answer['status']})")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _confidence_png(reference: ProfileView, production: ProfileView, uncertain: float) -> bytes:
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


def _timeline_png(
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
    labels = [f"{f.start:%m-%d %H:%M}\n{f.writer}" for f in files]
    step = max(1, len(files) // 16)
    ax2.set_xticks(x[::step], labels[::step], fontsize=7)
    ax2.set_xlabel("profile file (start, UTC, and writer)")
    return _png(fig)


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]
