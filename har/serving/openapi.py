"""The docs page (``GET /``, ``GET /docs.json``): what this service is, which versions it runs,
its endpoints grouped by purpose, and an example for each.

BentoML builds the OpenAPI document in ``Service.openapi_spec``
(``_bentoml_sdk/service/openapi.py``): the title is the service name, the version the Bento's
(``"None"`` under ``bentoml serve service:...``), the description the Bento's README or BentoML's
placeholder, every ``@bentoml.api`` under one "Service APIs" tag, the mounted FastAPI routes under
"default" and ``/healthz`` ``/livez`` ``/readyz`` ``/metrics`` under "Infrastructure". None of
that can be set through a public argument, so :class:`DocumentedService` (handed to
``bentoml.service(service_class=...)``, a public argument) rewrites the generated document.
It relies on ``Service.openapi_spec``, the attrs classes of
``bentoml._internal.service.openapi.specification`` (``OpenAPISpecification``, ``Info``, ``Tag``,
``PathItem``, ``Operation``) and ``bentoml._internal.utils.cattr``: the ``docs-page`` entry of
``har/serving/patches/docs_page.py`` checks them at start (a WARNING where they changed).
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import bentoml

from har import __version__
from har.domain.card import ModelCard

#: Endpoint groups, in the order the page shows them.
TAGS: dict[str, str] = {
    "prediction": "Classify windows of wrist IMU samples or whole recordings.",
    "model": "Which model is served: its tag and card.",
    "monitoring": "What was served compared with the model's training reference.",
    "infrastructure": "Health probes and Prometheus metrics (BentoML's own endpoints).",
}
_ROUTES: dict[str, str] = {
    "/predict": "prediction",
    "/predict_recording": "prediction",
    "/model": "model",
    "/healthz": "infrastructure",
    "/livez": "infrastructure",
    "/readyz": "infrastructure",
    "/metrics": "infrastructure",
}
_PREFIXES: dict[str, str] = {"/monitoring/": "monitoring"}
#: One-line summaries of BentoML's infrastructure endpoints (their descriptions are HTML).
_SUMMARIES = {
    "/healthz": "Liveness (deprecated alias of /livez)",
    "/livez": "Liveness probe: 200 while the server runs",
    "/readyz": "Readiness probe: 200 once the model service answers",
    "/metrics": "Prometheus metrics (text exposition format)",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: Examples of query parameters: the last hour (durations before now, see
#: ``har/monitoring/store.py``), so *Try it out* answers whenever the page is opened.
_QUERY_EXAMPLES = {"since": "1h", "until": "0s"}
TITLE = "HAR: human-activity recognition from a wrist IMU"
#: Monitoring pages linked from the description when the service has them.
_PAGES = {
    "/monitoring/report": "drift report (HTML)",
    "/monitoring/drift": "drift as JSON",
}


def tag_for(route: str) -> str | None:
    """The group of an endpoint (a key of :data:`TAGS`), ``None`` for a route it does not know."""
    if route in _ROUTES:
        return _ROUTES[route]
    return next((tag for prefix, tag in _PREFIXES.items() if route.startswith(prefix)), None)


def package_version() -> str:
    """The ``har`` package's version: ``har.__version__``, the one source ``pyproject.toml`` reads.

    Not the installed distribution's metadata: the Bento (and so the image) carries ``har/`` as
    files, with no metadata to read.
    """
    return __version__


def describe(card: ModelCard, model_tag: str, routes: list[str]) -> str:
    """The page's Markdown description: what the service does, units, window geometry, versions.

    Args:
        card: the served model's card (window in samples, hop, sample rate in Hz, classes).
        model_tag: the served model's resolved tag (``name:version``).
        routes: the document's paths; monitoring pages among them are linked.
    """
    seconds = card.window / card.sample_rate_hz
    links = [f"[{label}](.{route})" for route, label in _PAGES.items() if route in routes]
    # BentoML's page hides the title (its stylesheet expects the description to open with
    # a heading, as its placeholder does): the heading is the visible title.
    return "\n".join(
        [
            f"# {TITLE}",
            "",
            "Recognises the exercise a person does from a wrist-worn IMU (accelerometer + "
            "gyroscope): one prediction per window of samples, or a timeline of activities "
            "for a whole recording (CSV upload). The same model is served over gRPC.",
            "",
            f"**Served model** `{model_tag}` · **package** `har {package_version()}` · "
            f"**BentoML** `{bentoml.__version__}`",
            "",
            f"- **Window**: {card.window} samples × {len(card.channels)} channels "
            f"({', '.join(card.channels)}), time-major, at {card.sample_rate_hz:g} Hz "
            f"= {seconds:g} s; consecutive windows start {card.hop} samples apart.",
            f"- **Units**: accelerometer `{card.units.acc}`, gyroscope `{card.units.gyro}` "
            "by default; `/predict` takes other units in `units`, `/predict_recording` in "
            "`acc_unit` / `gyro_unit`.",
            f"- **Classes** ({len(card.classes)}): {', '.join(card.classes)}.",
            *([f"- **Monitoring**: {' · '.join(links)}."] if links else []),
            "",
            "Every endpoint below has an example: open it and press *Try it out*. More in the "
            "repository's `README.md`: *Calling the service* (curl, Python, gRPC), "
            "*Monitoring*, *Your own model* and *Settings*.",
        ]
    )


def _with_example(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Add a media-type ``example`` to a JSON body, and examples to the query parameters.

    Swagger UI fills *Try it out* from a media type's ``example``; in an OpenAPI 3.0 document it
    ignores the ``examples`` pydantic writes into a property, so the body example is assembled
    from each property's first ``examples`` entry (or its default).
    """
    body = operation.get("requestBody") or {}
    for media_type, media in body.get("content", {}).items():
        schema = _resolve(media.get("schema", {}), schemas)
        if media_type == "application/json" and "example" not in media:
            example = {
                name: prop["examples"][0] if prop.get("examples") else prop.get("default")
                for name, prop in schema.get("properties", {}).items()
                if prop.get("examples") or "default" in prop
            }
            media["example"] = example
        elif media_type == "multipart/form-data":
            media["schema"] = _single_files(schema)
    for param in operation.get("parameters", []):
        if "example" not in param and param.get("name") in _QUERY_EXAMPLES:
            param["example"] = _QUERY_EXAMPLES[param["name"]]
    return operation


def _single_files(schema: dict[str, Any]) -> dict[str, Any]:
    """Show ``list[Path]`` fields of at most one file as one binary field (a file chooser).

    The service accepts one part per name for such a field, so the wire format is unchanged.
    """
    props = {}
    for name, prop in schema.get("properties", {}).items():
        items = prop.get("items", {})
        one_file = prop.get("maxItems") == 1 and items.get("format") == "binary"
        if prop.get("type") == "array" and one_file:
            text = prop.get("description", "One file (optional: see the description).")
            prop = {**items, "title": prop.get("title", name), "description": text}
        props[name] = prop
    return {**schema, "properties": props}


def _first_sentence(text: str) -> str:
    """The first sentence of an endpoint's docstring, on one line (what the page lists)."""
    flat = " ".join(text.replace("`", "").split())
    return flat.split(". ", 1)[0].rstrip(".")


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return dict(schemas.get(ref.rsplit("/", 1)[1], {}))
    return schema


def _retag(route: str, item: Any, schemas: dict[str, Any]) -> Any:
    tag = tag_for(route)
    changes = {}
    for method in _METHODS:
        op = getattr(item, method, None)
        if op is None:
            continue
        # an attrs Operation, or a dict holding attrs objects: as plain JSON-like dicts
        op = _with_example(bentoml_unstructure(op), schemas)
        if tag is not None:
            op["tags"] = [tag]
        op["summary"] = _SUMMARIES.get(route) or _first_sentence(op.get("description", ""))
        changes[method] = op
    return attrs.evolve(item, **changes)


def bentoml_unstructure(obj: Any) -> dict[str, Any]:
    """An attrs object of BentoML's OpenAPI classes as the dict it would serialise to."""
    from bentoml._internal.utils.cattr import bentoml_cattr

    return dict(bentoml_cattr.unstructure(obj))


def document(spec: Any, card: ModelCard, model_tag: str) -> Any:
    """This service's OpenAPI document, from the one BentoML generated.

    Args:
        spec: BentoML's ``OpenAPISpecification``.
        card: the served model's card.
        model_tag: its resolved tag.

    Returns:
        A new ``OpenAPISpecification`` (the input is not changed): title, version (the ``har``
        package's), description, the tags of :data:`TAGS`, an example on every request.
    """
    from bentoml._internal.service.openapi.specification import Info, Tag

    schemas = bentoml_unstructure(spec.components or {}).get("schemas", {})
    paths = {route: _retag(route, item, schemas) for route, item in spec.paths.items()}
    return attrs.evolve(
        spec,
        info=Info(
            title=TITLE,
            version=package_version(),
            description=describe(card, model_tag, list(paths)),
        ),
        tags=[Tag(name=name, description=text) for name, text in TAGS.items()],
        paths=paths,
    )


@functools.cache
def _served(tag: str) -> tuple[str, ModelCard]:
    from har.runtime import model_store

    resolved, folder = model_store.stored_model(tag)
    return resolved, ModelCard.from_file(folder / model_store.CARD_FILE)


class DocumentedService(bentoml.Service):
    """A BentoML service whose docs page describes this project (see the module docstring).

    ``bentoml.service`` gets :func:`documented_service`'s subclass, which carries the model
    tag to document when no dependency serves a model.
    """

    #: The tag documented when no dependency serves a model (``settings.model_tag``).
    default_model_tag: str = ""

    @property
    def openapi_spec(self) -> Any:
        model_tag, card = _served(self._model_tag())
        return document(super().openapi_spec, card, model_tag)

    def _model_tag(self) -> str:
        """The tag of the model a dependency serves (``Service.models``), else the setting's."""
        for dep in self.dependencies.values():
            for model in getattr(dep.on, "models", None) or []:
                return str(model.tag)
        return self.default_model_tag


def documented_service(model_tag: str) -> type[DocumentedService]:
    """:class:`DocumentedService` documenting ``model_tag`` (the caller's ``settings.model_tag``)
    when no dependency serves a model; for ``bentoml.service(service_class=...)``."""
    return type(DocumentedService.__name__, (DocumentedService,), {"default_model_tag": model_tag})
