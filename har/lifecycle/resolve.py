"""From a registry URI to a model in the BentoML store, and the served model's tag.

``import_registered("models:/NAME@ALIAS")`` resolves the alias to a version and stores
exactly that version as ``<name>:mlflow-v<version>-<sha256[:12]>``: the same version
always gives the same tag, and a second import finds it instead of copying again. The
stored model's labels say where it came from (``mlflow_name``, ``mlflow_version``,
``mlflow_run_id``, ``mlflow_alias``, ``mlflow_uri``, ``sha256``).

MLflow is imported only when a registry URI is given: the serving image, which runs
a model that is already stored, does not carry it.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from har.domain.errors import InputError
from har.runtime import model_store
from har.settings import DEFAULT_MODEL_NAME, Settings


def bento_tag(name: str, version: str, sha256: str) -> str:
    """BentoML tag of a registry version, e.g. ``har-cnn-bilstm:mlflow-v3-1f2e3d4c5b6a``
    (names are lower-cased and anything BentoML does not accept becomes ``-``)."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:63] or "model"
    return f"{safe}:mlflow-v{version}-{sha256[:12]}"


def import_registered(uri: str, settings: Settings) -> str:
    """Store the version ``uri`` names (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``)
    in the BentoML model store unless it is there already; return its tag.

    Raises:
        InputError: the URI is malformed, the name/alias/version is not in the registry,
            or the downloaded file does not match the version's recorded sha256.
    """
    from har.lifecycle import store
    from har.lifecycle.register import sha256_of

    ref = store.parse_model_uri(uri)
    c = store.client(settings)
    mv = store.version_of(c, ref)
    sha = mv.tags.get(store.SHA_TAG) or ""
    labels = {
        "source": "mlflow",
        "mlflow_uri": uri,
        "mlflow_name": ref.name,
        "mlflow_version": str(mv.version),
        "mlflow_alias": ref.alias or "",
        "mlflow_run_id": mv.run_id or "",
        "sha256": sha,
    }
    with tempfile.TemporaryDirectory(prefix="har-resolve-") as tmp:
        folder = None
        if not sha:  # registered by other means: hash what is downloaded
            folder = store.download_version(c, mv, Path(tmp))
            sha = labels["sha256"] = sha256_of(folder / model_store.MODEL_FILE)
        tag = bento_tag(ref.name, str(mv.version), sha)
        if model_store.relabel(tag, labels):
            return tag
        folder = folder or store.download_version(c, mv, Path(tmp))
        if sha256_of(folder / model_store.MODEL_FILE) != sha:
            raise InputError(
                f"{uri}: the downloaded model.keras does not match version {mv.version}'s "
                f"sha256 {sha[:12]}…"
            )
        ref_file = folder / model_store.REFERENCE_FILE
        return model_store.import_model_once(
            folder / model_store.MODEL_FILE,
            folder / model_store.CARD_FILE,
            name=tag,
            reference_profile=ref_file if ref_file.is_file() else None,
            labels=labels,
            onnx_path=folder / model_store.ONNX_FILE,  # the run's export, when it passed
        )


def ensure_served_model(settings: Settings) -> str:
    """The tag the service should serve (``HAR_MODEL_URI``, else ``HAR_MODEL_TAG``), stored if
    it can be: :func:`resolve_tag`."""
    tag = resolve_tag(settings.model_uri, settings.model_tag, settings)
    assert tag is not None  # model_tag always has a value
    return tag


def resolve_tag(uri: str | None, tag: str | None, settings: Settings) -> str | None:
    """The one resolver of a model setting pair (the served model's, the shadow's) to a
    stored tag; ``None`` when neither is set.

    ``uri`` set: that registry version, imported if needed. Otherwise ``tag`` if stored;
    the bundled reference model is stored on demand when the default name is asked for.
    Anything else is an ``InputError`` saying in one line which command stores it.
    """
    if uri:
        return import_registered(uri, settings)
    if not tag:
        return None
    name, _, version = tag.partition(":")
    if name == DEFAULT_MODEL_NAME and version in ("", "latest"):
        return model_store.ensure_bundled_model()  # stored now, or again without an export
    try:
        return model_store.stored_model(tag)[0]
    except InputError:
        raise InputError(
            f"model {tag!r} is not in the BentoML model store: run "
            "`python -m har ensure-model` (bundled model, or HAR_MODEL_URI=models:/NAME@ALIAS) "
            "or `python -m har import-model MODEL.keras --card CARD.json`"
        ) from None
