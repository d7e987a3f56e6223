"""HAR_TRACING* → BentoML's ``tracing`` configuration (har/serving/assembly.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from har.serving.assembly import (
    SERVICE_CONFIG,
    api_service_config,
    model_service_config,
    tracing_config,
)
from har.settings import Settings


def test_off_by_default_adds_nothing() -> None:
    s = Settings()
    assert s.tracing is False and tracing_config(s) == {}
    assert model_service_config(s) == SERVICE_CONFIG
    assert "tracing" not in api_service_config(s)


def test_on_exports_otlp_http_to_the_endpoint_at_the_sample_rate() -> None:
    s = Settings(
        tracing=True, tracing_endpoint="http://collector:4318/v1/traces", tracing_sample_rate=0.25
    )
    expected = {
        "exporter_type": "otlp",
        "sample_rate": 0.25,
        "otlp": {"protocol": "http", "endpoint": "http://collector:4318/v1/traces"},
    }
    assert tracing_config(s) == {"tracing": expected}
    # both services: the model worker's spans join the API worker's traces
    assert model_service_config(s)["tracing"] == expected
    api = api_service_config(s.model_copy(update={"api_workers": 3}))
    assert api["tracing"] == expected and api["workers"] == 3


def test_bentoml_accepts_the_config_and_the_pinned_exporter_imports() -> None:
    from _bentoml_sdk.service.config import validate
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    s = Settings(tracing=True)
    assert validate(api_service_config(s))["tracing"]["otlp"]["protocol"] == "http"
    assert trace_exporter.OTLPSpanExporter(endpoint=s.tracing_endpoint)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_sample_rate_is_a_share(rate: float) -> None:
    with pytest.raises(ValidationError, match="tracing_sample_rate"):
        Settings(tracing=True, tracing_sample_rate=rate)


def test_the_tracer_comes_from_bentoml_s_provider_only_when_tracing() -> None:
    """``api_tracer`` reads BentoML's (private) ``BentoMLContainer.tracer_provider``: this
    fails the day that name moves (docs/bentoml-patches.md)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    from har.serving.assembly import api_tracer

    assert api_tracer(Settings()) is None
    assert callable(BentoMLContainer.tracer_provider.get)
