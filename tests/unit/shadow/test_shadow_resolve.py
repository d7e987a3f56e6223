"""Which shadow model the settings name: tags, registry URIs, and their errors."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from har.domain.errors import InputError
from har.settings import Settings
from har.shadow import resolve_shadow_tag


def test_no_shadow_by_default_and_an_empty_tag_means_none() -> None:
    assert resolve_shadow_tag(Settings()) is None
    assert resolve_shadow_tag(Settings(shadow_model_tag="", shadow_model_uri="")) is None


def test_a_stored_tag_is_resolved_and_an_unknown_one_is_refused(bundled_tag: str) -> None:
    name = bundled_tag.split(":")[0]
    assert resolve_shadow_tag(Settings(shadow_model_tag=f"{name}:latest")) == bundled_tag
    with pytest.raises(InputError, match="import-model"):
        resolve_shadow_tag(Settings(shadow_model_tag="no-such-model:latest"))


def test_the_shadow_and_the_served_model_share_one_resolver(bundled_tag: str) -> None:
    """``resolve_tag`` answers for both: the same tag, the same refusal."""
    from har.lifecycle.resolve import ensure_served_model, resolve_tag

    s = Settings(model_tag=bundled_tag, shadow_model_tag=bundled_tag)
    assert resolve_shadow_tag(s) == ensure_served_model(s) == resolve_tag(None, bundled_tag, s)
    assert resolve_tag(None, None, s) is None and resolve_tag("", "", s) is None
    missing = "no-such-model:latest"
    with pytest.raises(InputError) as served:
        ensure_served_model(Settings(model_tag=missing))
    with pytest.raises(InputError) as shadow:
        resolve_shadow_tag(Settings(shadow_model_tag=missing))
    assert str(served.value) == str(shadow.value)


def test_a_registry_uri_needs_the_lifecycle_code(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(shadow_model_uri="models:/har@challenger")
    monkeypatch.setitem(sys.modules, "har.lifecycle.resolve", None)  # lifecycle not installed
    with pytest.raises(InputError, match="needs the lifecycle extra"):
        resolve_shadow_tag(s)
    with pytest.raises(ValidationError, match="models:/NAME@ALIAS"):
        Settings(shadow_model_uri="s3://bucket/model.keras")
