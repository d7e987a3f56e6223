"""The MLflow client for the configured store, and the registry's naming conventions.

The store is ``settings.mlflow_tracking_uri`` (tracking and registry alike): by
default a SQLite file in ``mlruns/`` with its artifacts in ``mlruns/artifacts``,
or any MLflow server. Everything goes through an explicit ``MlflowClient``, so
no global MLflow state (``mlflow.set_tracking_uri``) is touched.

A registered version carries its files under one artifact folder::

    model/model.keras             the Keras 3 model
    model/card.json               its card (har/domain/card.py)
    model/reference_profile.bin   the whylogs reference profile, when known
"""

from __future__ import annotations

import getpass
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from har.domain.errors import InputError
from har.settings import MODEL_URI_PATTERN, Settings

#: Artifact folder of a version's files inside its run.
ARTIFACT_DIR = "model"
#: Tag holding the sha256 of the ``.keras`` file (same file registered twice: same tag).
SHA_TAG = "har.sha256"


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/NAME@ALIAS`` (``alias`` set) or ``models:/NAME/VERSION`` URI."""

    uri: str
    name: str
    alias: str | None
    version: str | None


def parse_model_uri(uri: str) -> ModelRef:
    """Split a registry URI; ``InputError`` for anything but the two supported forms."""
    m = MODEL_URI_PATTERN.fullmatch(uri or "")
    if m is None:
        raise InputError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {uri!r}")
    return ModelRef(uri, m["name"], m["alias"], m["version"])


def client(settings: Settings) -> Any:
    """An ``MlflowClient`` on the configured tracking and registry URI."""
    # MLflow 3 sends usage telemetry from a background thread unless told not to:
    # nothing here may reach the network on its own.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(
            "the lifecycle commands need MLflow: pip install -c requirements.lock -e '.[lifecycle]'"
        ) from None
    uri = settings.mlflow_tracking_uri
    local = local_store_dir(uri)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def local_store_dir(tracking_uri: str) -> Path | None:
    """Folder of an embedded SQLite store (``sqlite:///PATH``), else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).parent


def experiment_id(c: Any, settings: Settings) -> str:
    """Id of ``settings.mlflow_experiment``, created on first use (artifacts beside an
    embedded store; a server chooses its own artifact location)."""
    exp = c.get_experiment_by_name(settings.mlflow_experiment)
    if exp is not None:
        return str(exp.experiment_id)
    local = local_store_dir(settings.mlflow_tracking_uri)
    location = (local / "artifacts").as_uri() if local is not None else None
    return str(c.create_experiment(settings.mlflow_experiment, artifact_location=location))


def version_of(c: Any, ref: ModelRef) -> Any:
    """The ``ModelVersion`` a URI points to; ``InputError`` naming what is missing."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.alias is not None:
            return c.get_model_version_by_alias(ref.name, ref.alias)
        return c.get_model_version(ref.name, ref.version)
    except MlflowException as exc:
        raise InputError(f"{ref.uri}: not in the registry ({_first_line(exc)})") from None


def get_version(c: Any, name: str, version: str | int) -> Any:
    """A ``ModelVersion`` by number; ``InputError`` if it does not exist."""
    return version_of(c, parse_model_uri(f"models:/{name}/{version}"))


def download_version(c: Any, mv: Any, dest: Path | None = None) -> Path:
    """Download a version's files; returns the folder holding ``model.keras`` and
    ``card.json`` (a fresh temporary folder unless ``dest`` is given)."""
    import mlflow

    dest = Path(dest or tempfile.mkdtemp(prefix=f"har-{mv.name}-v{mv.version}-"))
    source = c.get_model_version_download_uri(mv.name, mv.version)
    out = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dest), tracking_uri=c._tracking_client.tracking_uri
    )
    return Path(out)


def user() -> str:
    """Who runs the command (recorded beside promotions and rollbacks)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
