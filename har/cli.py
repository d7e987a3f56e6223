"""The command line: ``python -m har <command>`` (also installed as ``har``).

Commands:
    import-model     store a Keras model + card in the BentoML model store, print the tag
    ensure-model     import the bundled reference model unless already stored (make serve)
    predict          score a recording offline with the service's own code path
    data             materialise the labelled training data under data/raw/
    train-reference  train and evaluate the bundled reference model
    reference        attach a reference profile (for drift) to a stored model
    drift-report     render served profiles against the reference as an HTML page
    register, promote, rollback, models   the MLflow model lifecycle (har/lifecycle/cli.py)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from har.errors import InputError


def _cmd_import_model(args: argparse.Namespace) -> int:
    from har import registry

    ref = None
    if args.reference_data is not None:
        ref = _reference_from_data(args.model, args.card, args.reference_data)
    tag = registry.import_model(args.model, args.card, name=args.name, reference_profile=ref)
    print(f"imported {args.model} with card {args.card}")
    print(tag)
    return 0


def _reference_from_data(model_path: Path, card_path: Path, data: Path) -> Path:
    """Build a reference profile from training windows (.npz 'windows') or a recording."""
    import tempfile

    import numpy as np

    from har.card import ModelCard
    from har.inference import CompiledModel
    from har.monitoring import build_reference_profile, write_reference_profile
    from har.preprocessing import Preprocessor
    from har.recordings import read_csv_recording
    from har.registry import load_keras

    card = ModelCard.from_file(card_path)
    pre = Preprocessor(card)
    if data.suffix == ".npz":
        windows = pre.check_windows(np.load(data)["windows"])
    else:
        rec = read_csv_recording(data)
        windows = pre.windows(rec.time, rec.values).values
    probs = CompiledModel(load_keras(model_path), xla=False)(pre.scale(windows))
    out = Path(tempfile.mkdtemp()) / "reference_profile.bin"
    write_reference_profile(build_reference_profile(windows, probs, classes=card.classes), out)
    return out


def _cmd_ensure_model(args: argparse.Namespace) -> int:
    from har.lifecycle import ensure_served_model
    from har.settings import get_settings

    print(ensure_served_model(get_settings()))
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from har import registry

    loaded = registry.load_model(args.tag)
    folder = loaded.path
    ref = _reference_from_data(folder / registry.MODEL_FILE, folder / registry.CARD_FILE, args.data)
    print(registry.set_reference_profile(loaded.tag, ref))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from har.batch import score_file

    result = score_file(
        args.recording,
        gyroscope=args.gyroscope,
        model_tag=args.model,
        acc_unit=args.acc_unit,
        gyro_unit=args.gyro_unit,
        out=args.out,
    )
    print(result)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from har.dataset import materialise_raw

    print(materialise_raw(args.out))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from har.training import train_reference

    print(train_reference(args.out, epochs=args.epochs, quick=args.quick, seed=args.seed))
    return 0


def _cmd_drift_report(args: argparse.Namespace) -> int:
    from har.monitoring import drift_report

    reference = args.reference
    if reference is None:
        from har import registry
        from har.settings import get_settings

        try:
            reference = registry.model_folder(get_settings().model_tag) / registry.REFERENCE_FILE
        except InputError:
            reference = registry.BUNDLED_REFERENCE
    out = drift_report(args.profiles, reference, args.out, args.since)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and ``--help``)."""
    from har.settings import PRETRAINED_DIR, get_settings

    p = argparse.ArgumentParser(prog="python -m har", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import-model", help="store a Keras model with its card; prints the tag")
    s.add_argument("model", type=Path, help="a Keras 3 .keras file")
    s.add_argument("--card", type=Path, required=True, help="the model card (JSON)")
    s.add_argument("--name", help="model name in the store (default: the card's name)")
    s.add_argument(
        "--reference-data",
        type=Path,
        help="training windows (.npz with 'windows', canonical units) or a canonical CSV "
        "recording, to build the reference profile for drift",
    )
    s.set_defaults(func=_cmd_import_model)

    s = sub.add_parser("ensure-model", help="import the bundled model unless already stored")
    s.set_defaults(func=_cmd_ensure_model)

    s = sub.add_parser("reference", help="attach a reference profile to a stored model")
    s.add_argument("tag", help="model tag in the store")
    s.add_argument("data", type=Path, help=".npz with 'windows' or a canonical CSV")
    s.set_defaults(func=_cmd_reference)

    s = sub.add_parser("predict", help="score a recording offline (same code as the service)")
    s.add_argument("recording", type=Path, help="canonical CSV, or Garmin accelerometer file")
    s.add_argument("--gyroscope", type=Path, help="Garmin gyroscope file (with a Garmin pair)")
    s.add_argument("--model", help=f"model tag (default {get_settings().model_tag})")
    s.add_argument("--acc-unit", default="m/s2", choices=["m/s2", "g", "milli_g"])
    s.add_argument("--gyro-unit", default="deg/s", choices=["deg/s", "rad/s"])
    s.add_argument("--out", type=Path, help="write per-window predictions to this CSV")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("data", help="materialise the labelled data set under data/raw/")
    s.add_argument("--out", type=Path, default=Path("data/raw"))
    s.set_defaults(func=_cmd_data)

    s = sub.add_parser("train-reference", help="train + evaluate the bundled reference model")
    s.add_argument("--out", type=Path, default=PRETRAINED_DIR)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--quick", action="store_true", help="a tiny smoke run")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("drift-report", help="HTML report: served profiles vs the reference")
    s.add_argument("--profiles", type=Path, default=get_settings().profile_dir)
    s.add_argument("--reference", type=Path, default=None, help="default: the served model's")
    s.add_argument("--since", help="ISO 8601 time or a duration such as 2h, 30m")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=_cmd_drift_report)

    from har.lifecycle.cli import add_commands

    add_commands(sub)  # register, promote, rollback, models
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
