"""What the running service says about its model's registry origin.

``served_registry_info`` turns a stored model's labels (written by
:func:`har.lifecycle.resolve.import_registered`) into ``GET /model``'s ``"registry"``
object; ``publish_model_info`` sets the ``har_model_info`` gauge (value 1, labels
``name``, ``version``, ``alias``, ``run_id``). Neither imports MLflow: both run in
the serving image.
"""

from __future__ import annotations

from collections.abc import Mapping

from har.monitoring.metrics import model_info_gauge


def served_registry_info(stored_model_labels: Mapping[str, str]) -> dict[str, str] | None:
    """``{"uri", "name", "version", "alias", "run_id"}`` of a model stored from the registry,
    ``None`` for a model imported otherwise (the bundled model, ``import-model``)."""
    labels = stored_model_labels or {}
    if not labels.get("mlflow_name"):
        return None
    return {
        "uri": labels.get("mlflow_uri", ""),
        "name": labels["mlflow_name"],
        "version": labels.get("mlflow_version", ""),
        "alias": labels.get("mlflow_alias", ""),
        "run_id": labels.get("mlflow_run_id", ""),
    }


def publish_model_info(tag: str, info: Mapping[str, str] | None) -> None:
    """Set ``har_model_info{name, version, alias, run_id} 1`` for the served model.

    Registry fields when ``info`` is given; else the BentoML tag's name and version with
    empty alias and run id. Call it in a worker (``__init__``), never at import time:
    ``prometheus_client`` picks its multiprocess storage when first imported.
    """
    if info is not None:
        labels = (info["name"], info["version"], info["alias"], info["run_id"])
    else:
        name, _, version = tag.partition(":")
        labels = (name, version, "", "")
    model_info_gauge().labels(*labels).set(1)
