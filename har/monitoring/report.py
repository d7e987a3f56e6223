"""The drift report: one self-contained HTML page comparing served windows with the reference.

``python -m har drift-report [--profiles DIR] [--since T] --out report.html``
calls :func:`drift_report`; the running service renders the same page from its
live profiles (:meth:`har.monitoring.Monitor.report_html`). The page holds, with
every plot an inline PNG (:mod:`har.monitoring.report_plots`):

* the interval's status, rows, confidence and stability (as ``GET /monitoring/drift``);
* drift scores of every input feature against their thresholds (bar chart and table),
  for the whole interval and its recent part (:func:`har.monitoring.drift.evaluate`);
* per channel (``acc_x`` .. ``gyro_z``), reference vs production distributions of
  the window mean, std, min and max, and of the two magnitudes, read from the
  profiles' KLL sketches;
* reference vs production confidence histogram;
* the served model's reliability diagram before and after its calibration temperature, from
  the card's evidence (when the card has a ``calibration``; har/domain/calibration.py);
* predicted-activity mix, mean confidence and flip rate per profile file over time.
* in the service, with a shadow model (har/shadow): its agreement with the served model.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from har.domain.calibration import Calibration
from har.domain.errors import InputError
from har.monitoring import profiles, store
from har.monitoring import report_plots as plots
from har.monitoring.drift import DriftConfig, evaluate
from har.monitoring.features import MAGNITUDES
from har.monitoring.profiles import ProfileView
from har.monitoring.report_plots import DRIFT_COLOR, OK_COLOR, UNITS
from har.monitoring.store import ProfileFile
from har.settings import Settings


def drift_report(
    profiles: Path,
    reference: Path,
    out: Path,
    since: str | None = None,
    until: str | None = None,
    *,
    settings: Settings,
    calibration: Calibration | None = None,
) -> Path:
    """Render the report of the profiles in ``profiles`` (the CLI entry point).

    Args:
        profiles: folder of profile files (``HAR_PROFILE_DIR``).
        reference: the model's reference profile (``reference_profile.bin``).
        out: HTML file to write.
        since, until: interval bounds, ISO 8601 (UTC when no offset) or a duration
            before now (``30m``, ``6h``, ``2d``); ``None`` = open.
        settings: thresholds (``HAR_DRIFT_THRESHOLD``, ``HAR_DRIFT_MIN_ROWS``,
            ``HAR_UNCERTAIN_BELOW``) and the recent part (``HAR_PROFILE_INTERVAL_S``).
        calibration: the served model card's ``calibration`` (its reliability diagram).

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
        config=DriftConfig.from_settings(settings),
        recent_s=settings.profile_interval_s,
        calibration=calibration,
    )


def render_report(
    profiles_dir: Path,
    reference_path: Path,
    out: Path,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    config: DriftConfig,
    recent_s: float,
    calibration: Calibration | None = None,
) -> Path:
    """Write the HTML report of ``profiles_dir``'s files overlapping ``[since, until]``.

    Args:
        profiles_dir: folder of profile files (final and partial).
        reference_path: reference profile file.
        out: HTML file to write (its folder is created).
        since, until: interval bounds (datetime, ISO 8601 or ``30m``-style duration);
            open bounds become the first file's start and the last file's end.
        config: drift thresholds, minimum rows and uncertain confidence.
        recent_s: length of the recent part scored on its own (seconds).
        calibration: the card's calibration evidence (a reliability diagram; ``None``: none).

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
    reference = profiles.read_view(Path(reference_path))
    parts = [(f, profiles.read_view(f.path)) for f in files]
    answer, production = evaluate(
        reference,
        parts,
        config,
        since=since_t or files[0].start,
        until=until_t or max(f.end for f in files),
        recent_s=recent_s,
    )
    page = render_page(reference, production, parts, answer, config, calibration=calibration)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def render_page(
    reference: ProfileView,
    production: ProfileView,
    parts: Sequence[tuple[ProfileFile, ProfileView]],
    answer: dict[str, Any],
    config: DriftConfig,
    shadow: Mapping[str, Any] | None = None,
    *,
    calibration: Calibration | None = None,
) -> str:
    """The report page of an interval.

    Args:
        reference: the training windows' profile.
        production: merged profile of ``parts``.
        parts: ``(file, profile)`` of the interval, oldest first (one timeline bar each).
        answer: the drift answer of the interval (:func:`har.monitoring.drift.evaluate`).
        config: drift thresholds (the uncertain-confidence line).
        shadow: a ``GET /monitoring/shadow`` answer (har/shadow/compare.py): a section
            comparing the served model with the shadow model (``None`` or ``off``: none).
        calibration: the served model card's calibration: its reliability diagram before and
            after the temperature (``None``: the card has none, no section).

    Returns:
        A self-contained HTML document (no external resources).
    """
    files = [f for f, _ in parts]
    classes = profiles.classes_of(production) or profiles.classes_of(reference) or []
    sections = [
        _summary_html(answer, files),
        _figure("fig-drift-scores", "Drift score per feature", plots.drift_scores_png(answer)),
        _features_table(answer),
        "<h2>Input distributions: reference vs production</h2>",
        "<p>Density of each window statistic, from the profiles' KLL sketches. "
        "Panel titles give the Hellinger distance (red: at or above threshold).</p>",
    ]
    scores = {f["name"]: f for f in answer["features"]}
    for ch in plots.channels(reference):
        png = plots.channel_png(ch, reference, production, scores)
        sections.append(_figure(f"channel-{ch}", f"{ch}: reference vs production", png))
    magnitudes = plots.panels_png(
        list(MAGNITUDES),
        reference,
        production,
        scores,
        [f"window mean of |acc| ({UNITS['acc']})", f"window mean of |gyro| ({UNITS['gyro']})"],
    )
    sections += [
        _figure("fig-magnitudes", "magnitudes: reference vs production", magnitudes),
        "<h2>Model outputs</h2>",
        _figure(
            "fig-confidence",
            "confidence histogram: reference vs production",
            plots.confidence_png(reference, production, config.uncertain_below),
        ),
        _figure(
            "fig-activity-mix",
            "activity mix, confidence and flip rate per profile file",
            plots.timeline_png(files, [v for _, v in parts], classes),
        ),
    ]
    if calibration is not None:
        sections.append(_calibration_html(calibration))
    if shadow is not None and shadow.get("status") != "off":
        sections.append(_shadow_html(shadow))
    return _page(answer, "\n".join(sections))


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
        (
            "Recent part scored on its own",
            f"{answer['recent']['rows']} windows since {html.escape(str(answer['recent']['since']))}"
            if answer["recent"]["since"]
            else "no (the interval has no older profiles)",
        ),
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


def _shadow_html(shadow: Mapping[str, Any]) -> str:
    """The served model vs the shadow model on the same windows (every API worker's)."""
    conf = shadow.get("confidence") or {}
    rows = [
        ("Shadow model", html.escape(str(shadow["model"]))),
        ("Status", html.escape(str(shadow["status"]))),
        ("Windows scored by both", f"{shadow['windows']}"),
        ("Agreement (same activity)", _fmt(shadow["agreement"])),
        (
            "Mean confidence, served / shadow",
            f"{_fmt(conf.get('primary'))} / {_fmt(conf.get('shadow'))}",
        ),
        ("Windows dropped by the shadow", f"{shadow['dropped']}"),
    ]
    cells = "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    pairs = [(p, s, n) for p, row in shadow["disagreement"].items() for s, n in row.items()]
    lines = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{html.escape(s)}</td><td class='num'>{n}</td></tr>"
        for p, s, n in sorted(pairs, key=lambda r: -r[2])
    )
    return (
        '<h2>Shadow model</h2><table id="shadow">' + cells + "</table>"
        '<table id="shadow-disagreement"><tr><th>served</th><th>shadow</th><th>windows</th>'
        f"</tr>{lines}</table>"
    )


def _calibration_html(cal: Calibration) -> str:
    applied = (
        f"applied: served confidences are softmax(log p / {cal.temperature:.3g})"
        if cal.applied
        else f"not applied ({html.escape(cal.reason)})"
    )
    text = (
        "<h2>Calibration (from the model card)</h2>"
        f"<p>Temperature {cal.temperature:.3g}, {applied}. On {cal.windows_eval} labelled "
        f"windows the fit did not see ({html.escape(cal.split)}; "
        f"{html.escape(', '.join(cal.data))}): ECE {cal.ece_before:.4f} &rarr; "
        f"{cal.ece_after:.4f}, NLL {cal.nll_before:.4f} &rarr; {cal.nll_after:.4f}, "
        f"accuracy {cal.accuracy:.3f}.</p>"
    )
    return text + _figure(
        "fig-reliability", "reliability diagram before and after", plots.reliability_png(cal)
    )


def _features_table(answer: dict[str, Any]) -> str:
    lines = [
        '<details><summary>Scores table</summary><table id="features">',
        "<tr><th>feature</th><th>score</th><th>recent score</th><th>threshold</th>"
        "<th>drifted</th></tr>",
    ]
    for f in answer["features"]:
        cls = ' class="drifted"' if f["drifted"] else ""
        lines.append(
            f"<tr{cls}><td>{html.escape(f['name'])}</td><td class='num'>{_fmt(f['score'])}</td>"
            f"<td class='num'>{_fmt(f.get('recent_score'))}</td>"
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
