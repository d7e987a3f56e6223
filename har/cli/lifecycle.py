"""The lifecycle commands of ``python -m har``: register, promote, rollback, models.

``add_commands(sub)`` adds them to the main parser's subcommands (har/cli/commands.py). User
errors raise :class:`~har.domain.errors.InputError` (exit status 2); a promotion refused by
the gate prints both models' figures and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from har.settings import PROJECT_ROOT, get_settings

if TYPE_CHECKING:
    from har.lifecycle.gate import Decision

#: The committed held-out windows: the gate's evaluation data unless --eval-data says.
DEFAULT_EVAL_DATA = PROJECT_ROOT / "tests" / "fixtures" / "heldout_windows.npz"


def _register(args: argparse.Namespace) -> int:
    from har.lifecycle.register import register_model
    from har.lifecycle.training_run import log_training

    reg = register_model(
        args.model,
        args.card,
        get_settings(),
        name=args.name,
        reference_data=args.reference_data,
        calibration_data=args.calibration_data,
        run_name="train-reference" if args.training_run else None,
        log_extra=log_training if args.training_run else None,
    )
    print(f"run {reg.run_id}: {args.model} (sha256 {reg.sha256[:12]}…)")
    if reg.same_content_as:
        print(f"note: same file (sha256) as version(s) {', '.join(reg.same_content_as)}")
    print(reg)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from har.lifecycle import aliases, gate, store

    settings = get_settings()
    aliases.check_override(args.force, args.reason)  # before anything is loaded
    c = store.client(settings)
    data = gate.load_eval_data(args.eval_data)
    print(
        f"gate: {args.name}/{args.version} for alias {args.alias!r} on {data.source} "
        f"(tolerance: accuracy {settings.gate_accuracy_tolerance}, "
        f"macro-F1 {settings.gate_macro_f1_tolerance})"
    )
    try:
        p = aliases.promote(
            c,
            settings,
            args.name,
            args.version,
            data,
            alias=args.alias,
            force=args.force,
            reason=args.reason,
        )
    except aliases.GateRefused as refused:
        _print_figures(refused.decision)
        print(f"refused: {refused}", file=sys.stderr)
        print(f"{args.name}@{args.alias} stays with its holder (--force --reason TEXT overrides)")
        return 1
    _print_figures(p.decision)
    if p.previous == p.version:
        print(f"{p.name}@{p.alias} already is version {p.version}")
    else:
        how = "forced past the gate" if p.forced else "passed the gate"
        print(f"{p.name}@{p.alias}: version {p.previous or 'none'} -> {p.version} ({how})")
    return 0


def _print_figures(decision: Decision) -> None:
    held = decision.holder
    print(f"  candidate {decision.candidate}")
    print(f"  holder    {held}" if held is not None else "  holder    none (first holder)")


def _rollback(args: argparse.Namespace) -> int:
    from har.lifecycle import aliases, store

    c = store.client(get_settings())
    old, new = aliases.rollback(c, args.name, args.alias)
    print(f"{args.name}@{args.alias}: version {old} -> {new} (rolled back)")
    return 0


def _models(args: argparse.Namespace) -> int:
    from har.lifecycle import listing, store

    c = store.client(get_settings())
    print(listing.render(listing.describe(c, args.name)))
    return 0


def add_model_file_arguments(
    s: argparse.ArgumentParser, *, name_help: str, reference_help: str
) -> None:
    """The arguments of a command that takes a model file: ``model``, ``--card``, ``--name``
    and ``--reference-data`` (``import-model``, ``register``)."""
    s.add_argument("model", type=Path, help="a Keras 3 .keras file")
    s.add_argument("--card", type=Path, required=True, help="the model card (JSON)")
    s.add_argument("--name", help=name_help)
    s.add_argument("--reference-data", type=Path, help=reference_help)
    s.add_argument(
        "--calibration-data",
        type=Path,
        help="labelled windows (.npz with 'windows', canonical units, and 'labels') to fit the "
        "temperature on (default: the bundled held-out windows when they fit the card)",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``register``, ``promote``, ``rollback`` and ``models`` to ``python -m har``."""
    s = sub.add_parser("register", help="log a model + card to MLflow; prints NAME/VERSION")
    add_model_file_arguments(
        s,
        name_help="registered model name (default: the card's name)",
        reference_help="training windows (.npz with 'windows') or a canonical CSV, for the "
        "reference profile (default: the bundled profile when the file is the bundled model)",
    )
    s.add_argument(
        "--training-run",
        action="store_true",
        help="also log the card's training parameters, per-fold metrics and confusion "
        "matrices (what `make train` does after training)",
    )
    s.set_defaults(func=_register)

    s = sub.add_parser("promote", help="move an alias to a version through the gate")
    s.add_argument("name", help="registered model name")
    s.add_argument("version", help="version number")
    s.add_argument("--alias", default="champion")
    s.add_argument(
        "--eval-data",
        type=Path,
        default=DEFAULT_EVAL_DATA,
        help=".npz with 'windows' and 'labels' (default: the committed held-out windows)",
    )
    s.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    s.add_argument("--reason", help="why (required with --force; recorded with your user)")
    s.set_defaults(func=_promote)

    s = sub.add_parser("rollback", help="give an alias back to its previous holder")
    s.add_argument("name", help="registered model name")
    s.add_argument("--alias", default="champion")
    s.set_defaults(func=_rollback)

    s = sub.add_parser("models", help="registered versions, aliases, metrics and run ids")
    s.add_argument("name", nargs="?", help="one registered model (default: all)")
    s.set_defaults(func=_models)
