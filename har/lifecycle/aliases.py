"""Moving an alias (``champion`` by default): ``promote`` through the gate, ``rollback``
to the previous holder.

Every move is kept on the registered model as the tag ``alias_history.<alias>``: a
JSON list (oldest first) of ``{"version", "at", "by", "action"}``, ``action`` being
``promote``, ``force`` (gate overridden) or ``external`` (a holder set by other means,
found when the alias next moved). The last entry is the current holder; ``rollback`` drops it and gives the alias to
the entry before. Gate figures and forced overrides are also tagged on the version
(``gate.<alias>.*``, ``force.<alias>.*``), so the registry says who promoted what, why.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from har.domain.errors import InputError
from har.lifecycle import gate, store
from har.settings import Settings

#: At most this many moves are kept per alias (an MLflow tag value holds 5000 characters).
HISTORY_LIMIT = 40


class GateRefused(InputError):
    """The candidate did not pass the gate; ``decision`` holds both models' figures."""

    def __init__(self, decision: gate.Decision) -> None:
        super().__init__("; ".join(decision.reasons))
        self.decision = decision


@dataclass(frozen=True)
class Promotion:
    """Outcome of ``promote``: the decision, the previous holder, and whether it was forced."""

    name: str
    alias: str
    version: str
    previous: str | None
    decision: gate.Decision
    forced: bool


def history_tag(alias: str) -> str:
    return f"alias_history.{alias}"


def history(c: Any, name: str, alias: str) -> list[dict[str, Any]]:
    """The alias's recorded moves, oldest first (empty if never moved by these commands)."""
    tags = c.get_registered_model(name).tags
    raw = tags.get(history_tag(alias))
    return json.loads(raw) if raw else []


def holder(c: Any, name: str, alias: str) -> str | None:
    """Version number holding ``alias`` now, or ``None``."""
    from mlflow.exceptions import MlflowException

    try:
        return str(c.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _record(c: Any, name: str, alias: str, entries: list[dict[str, Any]]) -> None:
    c.set_registered_model_tag(name, history_tag(alias), json.dumps(entries[-HISTORY_LIMIT:]))


def check_override(force: bool, reason: str | None) -> None:
    """An override is never anonymous: ``force`` needs a non-empty ``reason``."""
    if force and not (reason and reason.strip()):
        raise InputError("--force needs --reason TEXT (recorded with your user name)")


def promote(
    c: Any,
    settings: Settings,
    name: str,
    version: str,
    eval_data: gate.EvalData,
    *,
    alias: str = "champion",
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    """Give ``alias`` to ``name``/``version`` if it passes the gate against the holder.

    ``force`` (which needs a ``reason``) overrides the comparison of figures, never a
    card that does not fit or a model that does not predict: such a model cannot be
    served at all.

    Raises:
        GateRefused: worse than the holder beyond the tolerance (figures in ``decision``).
        InputError: unknown version, missing reason, unloadable model or data.
    """
    check_override(force, reason)
    mv = store.get_version(c, name, version)
    version = str(mv.version)
    current = holder(c, name, alias)
    with tempfile.TemporaryDirectory(prefix="har-gate-") as tmp:
        figures = gate.evaluate(
            store.download_version(c, mv, Path(tmp) / "candidate"), eval_data, version
        )
        held = None
        if current is not None and current != version:
            held_mv = store.get_version(c, name, current)
            folder = store.download_version(c, held_mv, Path(tmp) / "holder")
            held = gate.evaluate(folder, eval_data, current)
    decision = gate.decide(
        figures,
        held,
        accuracy_tol=settings.gate_accuracy_tolerance,
        macro_f1_tol=settings.gate_macro_f1_tolerance,
    )
    prefix = f"gate.{alias}"
    c.set_model_version_tag(name, version, f"{prefix}.accuracy", f"{figures.accuracy:.6f}")
    c.set_model_version_tag(name, version, f"{prefix}.macro_f1", f"{figures.macro_f1:.6f}")
    c.set_model_version_tag(name, version, f"{prefix}.eval_data", eval_data.source)
    c.set_model_version_tag(name, version, f"{prefix}.against", current or "none")
    c.set_model_version_tag(name, version, f"{prefix}.passed", str(decision.passed).lower())
    if not decision.passed and not force:
        raise GateRefused(decision)
    forced = not decision.passed
    if forced:
        for key, value in (("by", store.user()), ("reason", reason), ("at", store.now())):
            c.set_model_version_tag(name, version, f"force.{alias}.{key}", str(value))
    if current != version:
        entries = history(c, name, alias)
        if current is not None and (not entries or entries[-1]["version"] != current):
            # moved outside these commands: keep that holder so rollback can return to it
            entries.append({"version": current, "at": None, "by": None, "action": "external"})
        c.set_registered_model_alias(name, alias, version)
        entries.append(
            {
                "version": version,
                "at": store.now(),
                "by": store.user(),
                "action": "force" if forced else "promote",
            }
        )
        _record(c, name, alias, entries)
    return Promotion(name, alias, version, current, decision, forced)


def rollback(c: Any, name: str, alias: str = "champion") -> tuple[str, str]:
    """Give ``alias`` back to its previous holder; returns ``(from_version, to_version)``.

    Raises:
        InputError: the alias has no holder, or no earlier holder is recorded.
    """
    current = holder(c, name, alias)
    if current is None:
        raise InputError(f"{name} has no version with alias {alias!r}: nothing to roll back")
    entries = history(c, name, alias)
    while entries and entries[-1]["version"] == current:
        entries.pop()
    if not entries:
        raise InputError(
            f"no earlier holder of {name}@{alias} is recorded (version {current} is the first)"
        )
    target = entries[-1]["version"]
    c.set_registered_model_alias(name, alias, target)
    c.set_model_version_tag(
        name,
        current,
        f"rollback.{alias}",
        json.dumps({"at": store.now(), "by": store.user(), "to": target}),
    )
    _record(c, name, alias, entries)
    return current, target
