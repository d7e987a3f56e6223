"""The OpenAPI document behind the docs page (``har/serving/openapi.py`` applied to ``service.py``):
this service's title, versions and description, endpoints grouped by purpose, an example
for every request."""

from __future__ import annotations

import importlib.metadata
import json
import sys

import pytest
import yaml

from har.serving.openapi import TAGS
from tests.helpers.servers import ROOT

PLACEHOLDER = "Machine Learning Service created with BentoML"


@pytest.fixture(scope="module")
def spec_object(bundled_tag):
    sys.path.insert(0, str(ROOT))
    import service

    return service.HARService.openapi_spec


@pytest.fixture(scope="module")
def spec(spec_object) -> dict:
    return json.loads(json.dumps(spec_object.asdict()))


@pytest.fixture(scope="module")
def card(bundled_tag):
    from har.runtime import model_store

    return model_store.load_model(bundled_tag).card


def _operations(spec: dict):
    for route, item in spec["paths"].items():
        for method, op in item.items():
            yield route, method, op


def test_title_and_version_are_this_package(spec):
    assert spec["info"]["title"].startswith("HAR")
    assert spec["info"]["version"] == importlib.metadata.version("har")


def test_description_says_model_version_and_geometry(spec, card, bundled_tag):
    text = spec["info"]["description"]
    assert PLACEHOLDER not in text and "slack" not in text.lower()
    assert text.startswith(f"# {spec['info']['title']}\n")  # the page's visible title
    assert bundled_tag in text
    assert f"har {importlib.metadata.version('har')}" in text
    assert f"{card.window} samples" in text
    assert f"{card.sample_rate_hz:g} Hz" in text
    assert f"Classes** ({len(card.classes)})" in text
    assert all(name in text for name in card.classes)
    assert "README.md" in text
    # monitoring pages the service has are linked (relative to the page)
    assert "](./monitoring/drift)" in text
    if "/monitoring/report" in spec["paths"]:
        assert "](./monitoring/report)" in text


def test_every_operation_is_in_one_of_the_four_groups(spec):
    assert [t["name"] for t in spec["tags"]] == list(TAGS)
    seen = {}
    for route, method, op in _operations(spec):
        assert len(op.get("tags", [])) == 1 and op["tags"][0] in TAGS, (route, method, op)
        assert op["summary"] and "<" not in op["summary"], (route, op["summary"])
        seen.setdefault(op["tags"][0], set()).add(route)
    assert seen["prediction"] == {"/predict", "/predict_recording"}
    assert seen["model"] == {"/model"}
    assert "/monitoring/drift" in seen["monitoring"]
    assert seen["infrastructure"] == {"/healthz", "/livez", "/readyz", "/metrics"}


def test_every_request_body_and_parameter_has_an_example(spec):
    checked = 0
    for route, _, op in _operations(spec):
        for param in op.get("parameters", []):
            assert "example" in param or "default" in param.get("schema", {}), (route, param)
            checked += 1
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            if media_type == "application/json":
                assert media.get("example"), route
            else:  # a form: files to choose, every other field has a default
                for name, prop in media["schema"]["properties"].items():
                    assert prop.get("format") == "binary" or "default" in prop, (route, name)
            checked += 1
    assert checked >= 4  # /predict, /predict_recording, since, until


def test_predict_example_is_one_window_at_rest_of_the_model_geometry(spec, card):
    media = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    windows = media["example"]["windows"]
    assert len(windows) == 1
    assert len(windows[0]) == card.window
    assert all(len(row) == len(card.channels) for row in windows[0])
    assert windows[0][0][:3] == [0.0, 0.0, 9.81]  # gravity on z, nothing else


def test_recording_upload_fields_are_single_binary_files(spec):
    media = spec["paths"]["/predict_recording"]["post"]["requestBody"]["content"]
    props = media["multipart/form-data"]["schema"]["properties"]
    for name in ("file", "accelerometer", "gyroscope"):
        assert props[name]["type"] == "string" and props[name]["format"] == "binary", name
    assert "curl -F file=@" in spec["paths"]["/predict_recording"]["post"]["description"]


def test_document_still_drives_bentoml(spec, spec_object):
    # what BentoML reads back: operation names of the API methods, and the Bento's openapi.yaml
    names = {op.get("x-bentoml-name") for _, _, op in _operations(spec)}
    assert {"predict", "predict_recording"} <= names
    assert yaml.safe_load(yaml.dump(spec_object))["info"]["version"] == spec["info"]["version"]
