"""docs-page: what ``har/serving/openapi.py`` relies on in BentoML's OpenAPI internals (patches nothing)."""

from __future__ import annotations

import inspect

from har.serving.patches.guard import Expect, Patch


def check() -> list[str]:
    import attrs
    import bentoml
    from bentoml._internal.service.openapi import specification as spec
    from bentoml._internal.utils.cattr import bentoml_cattr

    e = Expect()
    e.true(
        isinstance(inspect.getattr_static(bentoml.Service, "openapi_spec", None), property),
        "bentoml.Service.openapi_spec is no longer a property",
    )
    e.attribute(bentoml_cattr, "unstructure")
    for name, fields in (
        ("OpenAPISpecification", {"info", "paths", "tags", "components"}),
        ("Info", {"title", "version", "description"}),
        ("Tag", {"name", "description"}),
        ("PathItem", {"get", "post"}),
        ("Operation", {"tags", "summary", "description"}),
    ):
        cls = getattr(spec, name, None)
        has = {f.name for f in attrs.fields(cls)} if cls is not None and attrs.has(cls) else set()
        missing = sorted(fields - has)
        e.true(not missing, f"{spec.__name__}.{name} lacks the attrs fields {missing}")
    fields_of_service = {f.name for f in attrs.fields(bentoml.Service)}
    e.true("dependencies" in fields_of_service, "bentoml.Service has no 'dependencies' field")
    return e.found


PATCH = Patch(
    name="docs-page",
    what="har/serving/openapi.py rewrites BentoML's OpenAPI document with the attrs classes of "
    "bentoml._internal.service.openapi.specification and bentoml_cattr (patches nothing)",
    why="the document's title, version, description and tags cannot be set publicly",
    upstream="none found",
    loses="the docs page (GET /, /docs.json) may fail with a 500 or show BentoML's defaults",
    until="BentoML lets a service set its OpenAPI info and tags",
    required=False,
    check=check,
    apply=None,
)
