"""A shadow model: a second model scored on the served windows, off the response path.

``HAR_SHADOW_MODEL_TAG`` (a BentoML tag) or ``HAR_SHADOW_MODEL_URI`` (a registry URI,
resolved to a stored tag by :func:`resolve_shadow_tag`, as ``HAR_MODEL_URI`` is for the
served model; ``python -m har ensure-model --shadow`` prints it) makes ``service.py``
start a second model service. :func:`attach` wraps the API worker's model call: after
the served model has answered, the same scaled windows and its probabilities go to a
bounded :class:`~har.shadow.queue.ShadowQueue`, and the client gets its answer at once.
:class:`~har.shadow.compare.ShadowStats` compares both models window by window
(``GET /monitoring/shadow``, the ``har_shadow_*`` metrics, a section of the live drift
report); a :class:`~har.shadow.store.ShadowStore` in ``<HAR_PROFILE_DIR>/shadow`` shares
its counts with the other API workers (``HAR_API_WORKERS``), so the answer covers all.

Modules:
    queue    the bounded queue and its background tasks
    compare  agreement, disagreement counts, mean confidences per time bucket; metrics
    store    every API worker's counts in a shared folder, one file per worker and hour
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from har.domain.card import ModelCard
from har.domain.errors import InputError
from har.domain.model_call import Infer
from har.monitoring.metrics import shadow_metrics
from har.settings import Settings
from har.shadow.compare import BUCKET_S, RETENTION_S, ShadowStats
from har.shadow.queue import ShadowQueue
from har.shadow.store import ShadowStore

log = logging.getLogger(__name__)

__all__ = [
    "Shadow",
    "ShadowQueue",
    "ShadowStats",
    "ShadowStore",
    "attach",
    "resolve_shadow_tag",
]

URI_NEEDS_LIFECYCLE = (
    "HAR_SHADOW_MODEL_URI needs the lifecycle extra (har.lifecycle, MLflow) and is resolved "
    "by `python -m har ensure-model --shadow`; or set HAR_SHADOW_MODEL_TAG to a stored tag"
)


def resolve_shadow_tag(settings: Settings) -> str | None:
    """The stored tag of the configured shadow model (``None``: no shadow), resolved as the
    served model's is (``har.lifecycle.resolve.resolve_tag``): ``HAR_SHADOW_MODEL_URI`` wins
    (the registry version it names is stored in the BentoML store if needed), else
    ``HAR_SHADOW_MODEL_TAG``.

    Raises:
        InputError: the tag is not stored, or a URI without the lifecycle code.
    """
    uri, tag = settings.shadow_model_uri, settings.shadow_model_tag
    if not (uri or tag):
        return None
    try:
        from har.lifecycle.resolve import resolve_tag
    except ImportError:
        if uri:
            raise InputError(URI_NEEDS_LIFECYCLE) from None
        raise
    return resolve_tag(uri, tag, settings)


def rescaler(primary: ModelCard, shadow: ModelCard) -> Callable[[np.ndarray], np.ndarray] | None:
    """The function taking the served model's scaled input to the shadow's (``None``: the
    same scaler). The card's scaler is a per-channel z-score (har/domain/card.py).

    Raises:
        InputError: the shadow expects other windows (length, sample rate).
    """
    if (primary.window, primary.sample_rate_hz) != (shadow.window, shadow.sample_rate_hz):
        raise InputError(
            f"shadow model {shadow.name!r} takes {shadow.window}-sample windows at "
            f"{shadow.sample_rate_hz} Hz, the served model {primary.window} at "
            f"{primary.sample_rate_hz} Hz: it cannot score the same windows"
        )
    if primary.scaler == shadow.scaler:
        return None
    (mp, sp), (ms, ss) = primary.scaler.arrays(), shadow.scaler.arrays()
    gain, offset = sp / ss, (mp - ms) / ss

    def prepare(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x * gain + offset).astype(np.float32, copy=False)
        return out

    return prepare


def shared_store(
    settings: Settings, primary_tag: str, shadow_tag: str, worker_id: str | None
) -> ShadowStore | None:
    """The folder this worker shares its counts in (``None``: it cannot be created)."""
    from har.monitoring.store import writer_name

    folder = settings.profile_dir / "shadow"
    try:
        return ShadowStore(
            folder,
            primary_tag,
            shadow_tag,
            writer=writer_name(worker_id, os.getpid()),
            bucket_s=BUCKET_S,
            retention_s=RETENTION_S,
        )
    except OSError as exc:
        log.warning("shadow counts stay in this worker's memory: %s (%s)", folder, exc)
        return None


class Shadow:
    """One API worker's shadow: its queue and its comparison.

    Args:
        queue: the bounded queue in front of the shadow model.
        stats: the comparison the queue's results go to.
    """

    def __init__(self, queue: ShadowQueue, stats: ShadowStats) -> None:
        self.queue = queue
        self.stats = stats

    @classmethod
    def build(
        cls,
        settings: Settings,
        primary: ModelCard,
        primary_tag: str,
        shadow: ModelCard,
        shadow_tag: str,
        infer: Infer,
        *,
        metrics: bool = True,
        worker_id: str | None = None,
        tracer: Any = None,
    ) -> Shadow:
        """The shadow of ``settings`` (``shadow_*``, ``max_batch_size``) calling ``infer``;
        its counts are shared in ``<settings.profile_dir>/shadow`` under ``worker_id``
        (with the process id), or kept in memory only if that folder cannot be made. With an
        OpenTelemetry ``tracer`` each shadow call is a span in its requests' traces
        (:class:`~har.shadow.queue.ShadowQueue`)."""
        m = shadow_metrics() if metrics else None
        stats = ShadowStats(
            primary.classes,
            shadow.classes,
            model=shadow_tag,
            primary_model=primary_tag,
            min_windows=settings.shadow_min_windows,
            metrics=m,
            store=shared_store(settings, primary_tag, shadow_tag, worker_id),
        )
        queue = ShadowQueue(
            infer,
            stats.record,
            stats.record_dropped,
            capacity=settings.shadow_queue_windows,
            max_batch=settings.max_batch_size,
            timeout_s=settings.shadow_timeout_s,
            inflight=settings.shadow_inflight,
            prepare=rescaler(primary, shadow),
            tracer=tracer,
            model_tag=shadow_tag,
        )
        if m is not None:
            queue.on_queued = m.queued.inc
        return cls(queue, stats)

    def tap(self, infer: Infer) -> Infer:
        """``infer``, whose every answer also queues its input for the shadow (never awaited)."""

        async def call(x: np.ndarray) -> np.ndarray:
            y = await infer(x)
            try:
                self.queue.submit(x, np.asarray(y))
            except Exception:  # the shadow never fails a client's request
                self.stats.record_dropped(int(x.shape[0]), "error")
            return y

        return call

    def answer(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        """``GET /monitoring/shadow`` (see :meth:`ShadowStats.answer`); ``queued``: windows
        waiting in this worker's queue."""
        return {**self.stats.answer(since, until), "queued": self.queue.pending}

    async def close(self) -> None:
        """Drain the queue (windows still waiting are dropped) and write the counts."""
        await self.queue.close()
        self.stats.flush()


def attach(
    scorer: Any,
    settings: Settings,
    shadow_tag: str | None,
    infer: Infer,
    *,
    worker_id: str | None = None,
    tracer: Any = None,
) -> Shadow | None:
    """Give ``scorer`` (a :class:`har.core.scorer.Scorer`) a shadow calling ``infer`` (the shadow
    model service), or do nothing when ``shadow_tag`` is ``None``. The scorer's monitor,
    if any, adds the comparison to its drift report; ``worker_id`` names this API
    worker's files of shared counts; with an OpenTelemetry ``tracer`` each shadow call is a
    span (``None``: none)."""
    if shadow_tag is None:
        return None
    from har.runtime import model_store

    card = ModelCard.from_file(model_store.stored_model(shadow_tag)[1] / model_store.CARD_FILE)
    shadow = Shadow.build(
        settings,
        scorer.card,
        scorer.tag,
        card,
        shadow_tag,
        infer,
        worker_id=worker_id,
        tracer=tracer,
    )
    scorer.infer = shadow.tap(scorer.infer)
    if getattr(scorer, "monitor", None) is not None:
        scorer.monitor.shadow_answer = shadow.answer
    if getattr(scorer, "sampler", None) is not None:
        shadow.queue.on_compared = keep_disagreements(scorer, card)
    return shadow


def keep_disagreements(
    scorer: Any, shadow: ModelCard
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None]:
    """The shadow queue's ``on_compared`` giving ``scorer.sampler`` the windows the two models
    disagree on: the scaled input back in canonical units (``x * scale + mean`` of the served
    card), the served output calibrated as it was answered, the shadow's classes by name."""
    from har.domain.calibration import apply_temperature

    mean, sd = scorer.card.scaler.arrays()
    names = np.asarray(shadow.classes)

    def on_compared(x: np.ndarray, primary: np.ndarray, other: np.ndarray) -> None:
        if scorer.temperature is not None:
            primary = apply_temperature(primary, scorer.temperature)
        canonical = np.asarray(x, np.float32) * sd + mean
        scorer.sampler.offer_disagreement(canonical, primary, names[other.argmax(axis=1)])

    return on_compared
