"""``python -m har models``: registered models, their versions, aliases, metrics, runs."""

from __future__ import annotations

from typing import Any

from har.domain.errors import InputError
from har.lifecycle import store

#: Run metrics shown per version, when the run logged them.
SHOWN_METRICS = ("heldout.accuracy", "heldout.macro_f1", "leave_subjects_out.mean.accuracy")


def describe(c: Any, name: str | None = None) -> list[dict[str, Any]]:
    """One dict per version (newest first within a model): ``name``, ``version``,
    ``aliases``, ``run_id``, ``sha256``, ``metrics`` (run metrics), ``gate`` (figures of
    the last gate per alias) and ``created`` (ms since the epoch)."""
    from mlflow.exceptions import MlflowException

    if name is not None:
        try:
            models = [c.get_registered_model(name)]
        except MlflowException:
            raise InputError(f"no registered model named {name!r}") from None
    else:
        models = c.search_registered_models()
    rows = []
    for rm in sorted(models, key=lambda m: m.name):
        versions = c.search_model_versions(f"name = '{rm.name}'")
        # search results leave ModelVersion.aliases empty; the registered model has them
        by_version: dict[str, list[str]] = {}
        for alias, version in (c.get_registered_model(rm.name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        for mv in sorted(versions, key=lambda v: -int(v.version)):
            metrics = c.get_run(mv.run_id).data.metrics if mv.run_id else {}
            gate = {k.removeprefix("gate."): v for k, v in mv.tags.items() if k.startswith("gate.")}
            rows.append(
                {
                    "name": rm.name,
                    "version": str(mv.version),
                    "aliases": sorted(by_version.get(str(mv.version), [])),
                    "run_id": mv.run_id,
                    "sha256": mv.tags.get(store.SHA_TAG, ""),
                    "metrics": metrics,
                    "gate": gate,
                    "created": mv.creation_timestamp,
                }
            )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`describe`'s rows (metrics are the run's, as the card
    claims them; "last gate" is what the gate measured)."""
    if not rows:
        return "no registered models (register one with `python -m har register`)"
    head = ["model", "version", "aliases", "run id", "sha256", *SHOWN_METRICS, "last gate"]
    table = [head]
    for r in rows:
        table.append(
            [
                r["name"],
                r["version"],
                ",".join(r["aliases"]) or "-",
                r["run_id"] or "-",
                r["sha256"][:12] or "-",
                *(f"{r['metrics'][m]:.4f}" if m in r["metrics"] else "-" for m in SHOWN_METRICS),
                _gate_summary(r["gate"]),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def _gate_summary(gate: dict[str, str]) -> str:
    """``champion: acc 0.9382 f1 0.9428 passed`` for each alias this version was gated for."""
    out = []
    for alias in sorted({k.split(".")[0] for k in gate}):
        acc, f1 = gate.get(f"{alias}.accuracy"), gate.get(f"{alias}.macro_f1")
        verdict = "passed" if gate.get(f"{alias}.passed") == "true" else "refused"
        if acc and f1:
            out.append(f"{alias}: acc {float(acc):.4f} f1 {float(f1):.4f} {verdict}")
    return "; ".join(out) or "-"
