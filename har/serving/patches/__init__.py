"""Every patch of BentoML's private internals, one module each, in one registry checked at start.

Each module defines one :class:`~har.serving.patches.guard.Patch` (``PATCH``): what it
changes, why (the upstream defect), its upstream issue, what is lost without it and when it
can go (docs/bentoml-patches.md shows the same table), its ``check`` and its ``apply``.
``har.serving.assembly.configure`` calls :func:`apply_patches` at start, in every process,
before anything else. Each patch is checked first (:func:`~har.serving.patches.guard.examine`).
A patch whose targets have another shape is not applied, and one on another version is
applied untested; either way one WARNING names the patch, what was expected and what was
found, and what the service loses. For the patches the service's correctness rests on
(``required``) start is refused instead (``SystemExit``), unless
``HAR_ALLOW_UNTESTED_BENTOML=1`` (``Settings.allow_untested_bentoml``).
tests/unit/serving/patches/test_bentoml_patches.py runs the same checks against the installed
BentoML.
"""

from __future__ import annotations

from collections.abc import Iterable

from har.serving.patches import (
    client_errors,
    dispatcher_wait,
    docs_page,
    graceful_stop,
    media_types,
    metric_labels,
    request_tracing,
    traffic_timers,
)
from har.serving.patches.guard import Patch, Verdict, describe, examine, logger, refusal

#: Name of the patch that is left out when BentoML's tracing is wanted (``HAR_TRACING=1``).
TRACING = request_tracing.NAME

#: The registry, in the order the patches are applied.
PATCHES: tuple[Patch, ...] = (
    traffic_timers.PATCH,
    metric_labels.PATCH,
    dispatcher_wait.PATCH,
    media_types.PATCH,
    request_tracing.PATCH,
    client_errors.PATCH,
    graceful_stop.PATCH,
    docs_page.PATCH,
)


def apply_patches(
    *, tracing: bool, allow_untested: bool, patches: Iterable[Patch] = PATCHES
) -> list[Verdict]:
    """Check every patch, then apply those whose targets have the expected shape.

    Args:
        tracing: BentoML's request tracing is wanted (``HAR_TRACING``): the tracing patch
            is left out.
        allow_untested: ``HAR_ALLOW_UNTESTED_BENTOML``: start even where a required patch
            does not match.

    Returns:
        The verdicts, in the order applied. One WARNING per patch that does not match.

    Raises:
        SystemExit: a required patch does not match and ``allow_untested`` is false
            (nothing is applied then).
    """
    chosen = [p for p in patches if not (tracing and p.name == TRACING)]
    verdicts = [examine(p) for p in chosen]
    refused = [v for v in verdicts if v.patch.required and not v.ok]
    if refused and not allow_untested:
        others = [v.patch.name for v in verdicts if not v.ok and not v.patch.required]
        raise SystemExit(refusal(refused, others))
    for v in verdicts:
        if not v.ok:
            logger.warning("%s", describe(v))
    for v in verdicts:
        if not v.changed and v.patch.apply is not None:
            v.patch.apply()
    return verdicts
