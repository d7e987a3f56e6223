"""The command line: ``python -m har <command>`` (also installed as ``har``).

Commands:
    import-model     store a Keras model + card in the BentoML model store, print the tag
    ensure-model     import the bundled reference model unless already stored (make serve)
    runtime          which runtime (onnx / tensorflow) serves stored models, and why
    predict          score a recording offline with the service's own code path
    data             materialise the labelled training data under data/raw/
    train-reference  train and evaluate the bundled reference model
    reference        attach a reference profile (for drift) to a stored model
    drift-report     render served profiles against the reference as an HTML page
    timeline-eval    raw vs smoothed timelines against the truth of the demo recordings
    register, promote, rollback, models   the MLflow model lifecycle (har/cli/lifecycle.py)
    samples export, samples label          windows kept for labelling (har/cli/samples.py)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from har.domain.errors import InputError
from har.settings import PRETRAINED_DIR, PROJECT_ROOT

#: Where ``python -m har data`` writes the labelled recordings (git-ignored).
RAW_DIR = PROJECT_ROOT / "data" / "raw"
#: Where training the bundled model writes its held-out windows.
FIXTURES_DIR = PROJECT_ROOT / "tests" / "fixtures"
#: Where training the bundled model regenerates the demo data.
PRODUCTION_DIR = PROJECT_ROOT / "data" / "production"


def _cmd_import_model(args: argparse.Namespace) -> int:
    from har.runtime import model_store

    ref = None
    if args.reference_data is not None:
        ref = _reference_from_data(args.model, args.card, args.reference_data)
    tag = model_store.import_model(
        args.model,
        args.card,
        name=args.name,
        reference_profile=ref,
        calibration_data=args.calibration_data,
    )
    print(f"imported {args.model} with card {args.card}")
    print(tag)
    return 0


def _reference_from_data(model_path: Path, card_path: Path, data: Path) -> Path:
    """Build a reference profile from training windows (.npz 'windows') or a recording."""
    import tempfile

    import numpy as np

    from har.domain.card import ModelCard
    from har.domain.preprocessing import Preprocessor
    from har.domain.recordings import read_csv_recording
    from har.runtime.model_store import REFERENCE_FILE, load_keras
    from har.training.artifacts import write_reference

    card = ModelCard.from_file(card_path)
    pre = Preprocessor(card)
    if data.suffix == ".npz":
        windows = pre.check_windows(np.load(data)["windows"])
    else:
        rec = read_csv_recording(data)
        windows = pre.windows(rec.time, rec.values).values
    out = Path(tempfile.mkdtemp()) / REFERENCE_FILE
    return write_reference(load_keras(model_path), card, windows, out)


def _cmd_ensure_model(args: argparse.Namespace) -> int:
    from har.lifecycle import ensure_served_model
    from har.settings import get_settings

    if args.shadow:  # the shadow's tag (empty line: no shadow), see har/shadow
        from har.shadow import resolve_shadow_tag

        print(resolve_shadow_tag(get_settings()) or "")
        return 0
    print(ensure_served_model(get_settings()))
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from har.runtime import model_store

    loaded = model_store.load_model(args.tag)
    folder = loaded.path
    ref = _reference_from_data(
        folder / model_store.MODEL_FILE, folder / model_store.CARD_FILE, args.data
    )
    print(model_store.set_reference_profile(loaded.tag, ref))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from har.core.offline import score_file
    from har.domain.card import Units
    from har.settings import get_settings

    result = score_file(
        args.recording,
        get_settings(),
        gyroscope=args.gyroscope,
        model_tag=args.model,
        units=Units.parse({"acc": args.acc_unit, "gyro": args.gyro_unit}),
        out=args.out,
        smoothing=args.smoothing,
    )
    print(result)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from har.training.data import materialise_raw

    print(materialise_raw(args.out))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from har.training.pipeline import train_reference

    bundled = args.out.resolve() == PRETRAINED_DIR.resolve()
    fixtures = args.fixtures_dir or (FIXTURES_DIR if bundled else None)
    production = args.production_dir or (PRODUCTION_DIR if bundled else None)
    card = train_reference(
        args.out,
        epochs=args.epochs,
        quick=args.quick,
        seed=args.seed,
        fixtures_dir=fixtures,
        production_dir=production,
    )
    print(card)
    return 0


def _cmd_drift_report(args: argparse.Namespace) -> int:
    from har.monitoring import drift_report
    from har.runtime import model_store
    from har.settings import get_settings

    reference = args.reference
    calibration = None
    try:  # the served model's reference profile and calibration evidence
        _, folder, card = model_store.load_card(get_settings().model_tag)
        calibration = card.calibration
        reference = reference or folder / model_store.REFERENCE_FILE
    except InputError:
        reference = reference or model_store.BUNDLED_REFERENCE
    out = drift_report(
        args.profiles,
        reference,
        args.out,
        args.since,
        settings=get_settings(),
        calibration=calibration,
    )
    print(out)
    return 0


def _cmd_timeline_eval(args: argparse.Namespace) -> int:
    from har.core.offline import load_for_scoring
    from har.domain.timeline import TimelineOptions
    from har.settings import get_settings
    from har.training.timeline_eval import (
        compare,
        heldout_sessions,
        markdown_table,
        production_sessions,
    )

    settings = get_settings()
    _, card, model = load_for_scoring(args.model, settings.model_tag)
    sessions = production_sessions(args.production, align_tolerance_s=settings.align_tolerance_s)
    if not args.no_heldout:
        sessions += heldout_sessions()
    options = TimelineOptions.from_settings(settings).override(
        switch_penalty=args.switch_penalty, min_segment_s=args.min_segment_s
    )
    rows = compare(sessions, card, model, max_fill=settings.max_fill_samples, options=options)
    print(markdown_table(rows))
    return 0


def _cmd_settings_table(args: argparse.Namespace) -> int:
    from har.cli.settings_docs import PAGE, settings_table, write_page

    if args.write:
        where = PAGE.relative_to(PROJECT_ROOT).as_posix()
        print(f"{where}: settings table " + ("rewritten" if write_page() else "up to date"))
    else:
        print(settings_table(), end="")
    return 0


def _cmd_runtime(args: argparse.Namespace) -> int:
    from har.runtime import model_store
    from har.runtime.onnx_model import choose_runtime
    from har.settings import get_settings

    setting = get_settings().runtime
    choices = []
    for tag in args.tags:
        resolved, folder, card = model_store.load_card(tag)
        choices.append(choose_runtime(setting, card, folder))
        print(f"{resolved}: {choices[-1].runtime} ({choices[-1].reason})", file=sys.stderr)
    print("tensorflow" if any(c.runtime == "tensorflow" for c in choices) else "onnx")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and ``--help``)."""
    from har.cli.lifecycle import add_model_file_arguments
    from har.domain.card import ACC_UNITS, GYRO_UNITS
    from har.domain.smoothing import SMOOTHING_METHODS
    from har.settings import get_settings

    p = argparse.ArgumentParser(prog="python -m har", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import-model", help="store a Keras model with its card; prints the tag")
    add_model_file_arguments(
        s,
        name_help="model name in the store (default: the card's name)",
        reference_help="training windows (.npz with 'windows', canonical units) or a canonical "
        "CSV recording, to build the reference profile for drift",
    )
    s.set_defaults(func=_cmd_import_model)

    s = sub.add_parser("ensure-model", help="import the bundled model unless already stored")
    s.add_argument(
        "--shadow",
        action="store_true",
        help="print the shadow model's stored tag instead (HAR_SHADOW_MODEL_URI/_TAG; empty: none)",
    )
    s.set_defaults(func=_cmd_ensure_model)

    s = sub.add_parser(
        "runtime",
        help="print the runtime stored models serve on under HAR_RUNTIME: `tensorflow` if "
        "any of them needs TensorFlow, else `onnx` (make image picks the image's packages so)",
    )
    s.add_argument("tags", nargs="+", help="stored model tags (the served one, the shadow)")
    s.set_defaults(func=_cmd_runtime)

    s = sub.add_parser("reference", help="attach a reference profile to a stored model")
    s.add_argument("tag", help="model tag in the store")
    s.add_argument("data", type=Path, help=".npz with 'windows' or a canonical CSV")
    s.set_defaults(func=_cmd_reference)

    s = sub.add_parser("predict", help="score a recording offline (same code as the service)")
    s.add_argument("recording", type=Path, help="canonical CSV, or Garmin accelerometer file")
    s.add_argument("--gyroscope", type=Path, help="Garmin gyroscope file (with a Garmin pair)")
    s.add_argument("--model", help=f"model tag (default {get_settings().model_tag})")
    s.add_argument("--acc-unit", default=ACC_UNITS[0], choices=ACC_UNITS)
    s.add_argument("--gyro-unit", default=GYRO_UNITS[0], choices=GYRO_UNITS)
    s.add_argument("--out", type=Path, help="write per-window predictions to this CSV")
    s.add_argument(
        "--smoothing",
        choices=SMOOTHING_METHODS,
        help=f"timeline smoothing (default HAR_SMOOTHING, now {get_settings().smoothing})",
    )
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("data", help="materialise the labelled data set under data/raw/")
    s.add_argument("--out", type=Path, default=RAW_DIR)
    s.set_defaults(func=_cmd_data)

    s = sub.add_parser("train-reference", help="train + evaluate the bundled reference model")
    s.add_argument("--out", type=Path, default=PRETRAINED_DIR)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--quick", action="store_true", help="a tiny smoke run")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--fixtures-dir",
        type=Path,
        help=f"where the held-out windows go (default: {FIXTURES_DIR} for the bundled "
        "model, else --out)",
    )
    s.add_argument(
        "--production-dir",
        type=Path,
        help=f"regenerate the demo data there (default: {PRODUCTION_DIR} for the bundled "
        "model, else none)",
    )
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("drift-report", help="HTML report: served profiles vs the reference")
    s.add_argument("--profiles", type=Path, default=get_settings().profile_dir)
    s.add_argument("--reference", type=Path, default=None, help="default: the served model's")
    s.add_argument("--since", help="ISO 8601 time or a duration such as 2h, 30m")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=_cmd_drift_report)

    s = sub.add_parser("timeline-eval", help="raw vs smoothed timelines against the truth")
    s.add_argument("--production", type=Path, default=Path("data/production"))
    s.add_argument("--no-heldout", action="store_true", help="skip the held-out sessions")
    s.add_argument("--model", help="model tag (default: the served one, else the bundled file)")
    s.add_argument("--switch-penalty", type=float, help="default HAR_SWITCH_PENALTY")
    s.add_argument("--min-segment-s", type=float, help="default HAR_MIN_SEGMENT_S")
    s.set_defaults(func=_cmd_timeline_eval)

    from har.cli.lifecycle import add_commands

    add_commands(sub)  # register, promote, rollback, models

    from har.cli.samples import add_commands as add_samples_commands

    add_samples_commands(sub)  # samples export, samples label

    s = sub.add_parser("settings-table", help="the HAR_* settings as a markdown table")
    s.add_argument("--write", action="store_true", help="rewrite docs/settings.md's table")
    s.set_defaults(func=_cmd_settings_table)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; user errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
