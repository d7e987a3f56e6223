"""The model lifecycle: an MLflow registry (embedded SQLite store by default), a
promotion gate, alias history and rollback, and serving what the registry names.

Modules:
    store         the MLflow client, registry URIs, downloading a version's files
    register      ``python -m har register``: log a run, register a version
    training_run  the run of ``make train`` (parameters, per-fold metrics, confusion images)
    gate          evaluation figures and the promotion verdict
    aliases       ``promote`` / ``rollback`` with the alias history kept as tags
    listing       ``python -m har models``
    resolve       ``models:/`` URI → BentoML store (idempotent); the tag to serve
    served        ``GET /model``'s ``registry`` object and the ``har_model_info`` gauge

Importing this package does not import MLflow (the serving image does not carry it), nor
BentoML: the BentoML model store is :mod:`har.runtime.model_store`'s. The commands are
:mod:`har.cli.lifecycle`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from har.lifecycle.served import publish_model_info, served_registry_info

if TYPE_CHECKING:
    from pathlib import Path

    from har.lifecycle.register import Registered
    from har.settings import Settings

__all__ = [
    "ensure_served_model",
    "log_training_run",
    "publish_model_info",
    "served_registry_info",
]


def ensure_served_model(settings: Settings) -> str:
    """See :func:`har.lifecycle.resolve.ensure_served_model`."""
    from har.lifecycle.resolve import ensure_served_model as ensure

    return ensure(settings)


def log_training_run(
    model_path: Path, card_path: Path, settings: Settings, **kwargs: Any
) -> Registered:
    """See :func:`har.lifecycle.training_run.log_training_run`."""
    from har.lifecycle.training_run import log_training_run as log

    return log(model_path, card_path, settings, **kwargs)
