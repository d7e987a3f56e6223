"""media-types: each BentoML IO model's response media type computed once per class."""

from __future__ import annotations

from har.serving.patches.guard import Expect, Patch

#: :func:`~har.serving.patches.guard.fingerprint` of ``IOMixin.mime_type`` on WRITTEN_FOR.
FINGERPRINT = "babaa4832e83deb7"


def cache_media_types() -> None:
    """Compute each BentoML IO model's response media type once, not on every response.

    ``IOMixin.mime_type()`` is called for every response; for a root model (the model
    service's ndarray answers) it builds a pydantic ``TypeAdapter`` and a JSON schema
    each time (a visible share of the model worker's time: docs/performance.md). The
    answer depends on
    the class alone (its fields and ``media_type``, fixed once BentoML has built it), so
    it is kept per class. Idempotent.
    """
    from _bentoml_sdk.io_models import IOMixin

    if hasattr(IOMixin, "_har_upstream_mime_type"):  # patched already
        return
    compute = IOMixin._har_upstream_mime_type = IOMixin.mime_type.__func__
    cache = MEDIA_TYPES

    def mime_type(cls: type) -> str:
        try:
            return cache[cls]
        except KeyError:
            answer: str = compute(cls)
            cache[cls] = answer
            return answer

    IOMixin.mime_type = classmethod(mime_type)


#: :func:`cache_media_types`' answers, per IO model class.
MEDIA_TYPES: dict[type, str] = {}


def check() -> list[str]:
    from _bentoml_sdk.io_models import IOMixin

    e = Expect()
    e.true(
        isinstance(vars(IOMixin).get("mime_type"), classmethod),
        "_bentoml_sdk.io_models.IOMixin.mime_type is no longer a classmethod",
    )
    e.source(IOMixin, "mime_type", ("cls",), FINGERPRINT)
    return e.found


PATCH = Patch(
    name="media-types",
    what="_bentoml_sdk.io_models.IOMixin.mime_type: computed once per class (cache_media_types)",
    why="computed on every response, building a pydantic JSON schema each time",
    upstream="none found",
    loses="~5 % of the model worker's time at 1 connection",
    until="BentoML caches it",
    required=False,
    check=check,
    apply=cache_media_types,
)
