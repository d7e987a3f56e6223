"""Bounds on what clients can make BentoML do: metric labels by route (metric_labels),
request parse errors in our words (client_errors)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from har.domain.errors import quoted
from har.http.errors import RequestError
from har.serving.patches.client_errors import form_value, validation_message
from har.serving.patches.metric_labels import UNMATCHED_PATH, route_label


def _routes() -> list:
    read = FastAPI()
    read.get("/model")(lambda: {})
    read.get("/items/{name}")(lambda name: {})

    async def ok(request):  # pragma: no cover - never called
        return None

    app = Starlette(routes=[Route("/predict", ok, methods=["POST"]), Mount("/", read)])
    return app.routes


def test_unknown_paths_share_one_label():
    routes = _routes()
    assert route_label(routes, "/predict") == "/predict"
    assert route_label(routes, "/model") == "/model"
    assert route_label(routes, "/items/abc") == "/items/{name}"
    labels = {route_label(routes, f"/random-{i}/x") for i in range(300)}
    assert labels == {UNMATCHED_PATH}


class _Body(BaseModel):
    windows: list[list[float]]
    n: int


def test_validation_errors_in_our_words():
    with pytest.raises(ValidationError) as info:
        _Body.model_validate_json(b'{"windows": [["x"]]}')
    msg = validation_message(info.value)
    assert msg == "invalid request: 'windows[0][0]' must be a number; 'n' is required"
    with pytest.raises(ValidationError) as info:
        _Body.model_validate_json(b"{not json")
    msg = validation_message(info.value)
    assert msg == "invalid request: the body is not valid JSON"
    assert "pydantic" not in msg and "http" not in msg


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("g", "g"),  # not JSON: the text, as BentoML keeps it
        ('"rad/s"', "rad/s"),  # JSON: its value, as BentoML reads it
        ("12", 12),
        ("1" + "0" * 400, "1" + "0" * 400),  # beyond a double: kept as text (a 400 later)
        ("NaN", "NaN"),
        (b"viterbi", "viterbi"),  # a text field sent as a file part
    ],
)
def test_form_text_fields_read_as_bentoml_reads_them(value, parsed):
    assert form_value("acc_unit", value) == parsed


@pytest.mark.parametrize("value", ["[" * 100_000, b"[" * 100_000 + b"]" * 100_000])
def test_form_text_field_nested_too_deeply_is_a_400_naming_the_field(value):
    with pytest.raises(RequestError) as info:
        form_value("gyro_unit", value)
    assert info.value.status == 400
    assert "form field 'gyro_unit'" in str(info.value) and "nested too deeply" in str(info.value)


def test_values_in_messages_are_bounded():
    assert quoted("g") == "'g'"
    assert quoted("x" * 10_000) == f"{'x' * 40!r}... (10000 characters)"
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert quoted(deep) == "an array" and quoted({"a": deep}) == "an object"
    assert quoted(None) == "null" and quoted(True) == "true" and quoted(1e39) == "the number 1e+39"
