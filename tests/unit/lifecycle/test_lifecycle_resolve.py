"""ensure-model with HAR_MODEL_URI: exactly the registry's version, stored once, labelled;
what the service reports about it; the one-line message for a model that is not stored."""

from __future__ import annotations

import bentoml
import pytest

from har.cli import main
from har.domain.errors import InputError
from har.lifecycle import aliases, gate, store
from har.lifecycle.register import register_model
from har.lifecycle.resolve import bento_tag, ensure_served_model
from har.lifecycle.served import publish_model_info, served_registry_info
from har.runtime import model_store
from har.runtime.model_store import stored_labels
from har.runtime.onnx_model import file_sha256
from har.settings import get_settings


def ensure_model(capsys, monkeypatch, uri: str) -> str:
    monkeypatch.setenv("HAR_MODEL_URI", uri)
    get_settings.cache_clear()
    try:
        assert main(["ensure-model"]) == 0
    finally:
        monkeypatch.delenv("HAR_MODEL_URI")
        get_settings.cache_clear()
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.slow  # seconds of MLflow or matplotlib: not in `make test-fast`
def test_ensure_model_imports_exactly_the_alias_holder(
    capsys, monkeypatch, settings, bundled, degraded, eval_small
):
    model, card = bundled
    v1 = register_model(model, card, settings, name="served")
    v2 = register_model(degraded, card, settings, name="served")
    c = store.client(settings)
    data = gate.load_eval_data(eval_small)
    aliases.promote(c, settings, "served", v1.version, data)

    exports = []  # the run's ONNX export travels with it: nothing exported again
    monkeypatch.setattr(model_store, "export_onnx_for", lambda *a: exports.append(a))
    tag = ensure_model(capsys, monkeypatch, "models:/served@champion")
    assert tag == bento_tag("served", v1.version, v1.sha256)
    _, folder, stored_card = model_store.load_card(tag)
    assert exports == [] and stored_card.onnx is not None and stored_card.onnx.passed
    assert file_sha256(folder / model_store.ONNX_FILE) == stored_card.onnx.sha256
    labels = stored_labels(tag)
    assert served_registry_info(labels) == {
        "uri": "models:/served@champion",
        "name": "served",
        "version": v1.version,
        "alias": "champion",
        "run_id": v1.run_id,
    }
    before = len(bentoml.models.list("served"))
    assert ensure_model(capsys, monkeypatch, "models:/served@champion") == tag  # idempotent
    assert len(bentoml.models.list("served")) == before

    # after a (forced) promotion the alias names the other version: another tag
    aliases.promote(c, settings, "served", v2.version, data, force=True, reason="test")
    tag2 = ensure_model(capsys, monkeypatch, "models:/served@champion")
    assert tag2 == bento_tag("served", v2.version, v2.sha256) != tag
    # by number: the first version again, now labelled as resolved without an alias
    assert ensure_model(capsys, monkeypatch, f"models:/served/{v1.version}") == tag
    assert served_registry_info(stored_labels(tag))["alias"] == ""


def test_unknown_registry_names_fail_in_one_line(settings):
    with pytest.raises(InputError, match="not in the registry"):
        ensure_served_model(settings.model_copy(update={"model_uri": "models:/nope@champion"}))


def test_a_tag_that_is_not_stored_names_the_command(settings):
    s = settings.model_copy(update={"model_tag": "someone-elses:v1", "model_uri": None})
    with pytest.raises(InputError) as exc:
        ensure_served_model(s)
    assert "python -m har ensure-model" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_the_default_tag_stores_the_bundled_model(settings):
    tag = ensure_served_model(settings.model_copy(update={"model_uri": None}))
    assert tag.startswith("har-cnn-bilstm:")
    assert served_registry_info(stored_labels(tag)) is None


def test_model_info_gauge():
    from prometheus_client import REGISTRY

    info = {"uri": "models:/m@champion", "name": "m", "version": "3", "alias": "champion"}
    publish_model_info("m:mlflow-v3-abc", {**info, "run_id": "r1"})
    labels = {"name": "m", "version": "3", "alias": "champion", "run_id": "r1"}
    assert REGISTRY.get_sample_value("har_model_info", labels) == 1.0
    publish_model_info("plain:v1", None)
    plain = {"name": "plain", "version": "v1", "alias": "", "run_id": ""}
    assert REGISTRY.get_sample_value("har_model_info", plain) == 1.0
