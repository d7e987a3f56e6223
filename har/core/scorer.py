"""The transport-agnostic core of the service, shared by HTTP, gRPC and offline scoring.

:class:`Scorer` counts and shape-checks client windows (decoded to float32 by each
transport's edge), converts units, applies the card's scaler, refuses what is not finite
(one scan), awaits the (batched) model and feeds monitoring. It returns the typed results of
:mod:`har.domain.results`; each transport builds its own answer from them once
(:mod:`har.core.answers` the JSON of the HTTP API and ``python -m har predict``,
:mod:`har.grpc.service` the protobuf messages). A live sensor stream is a
:class:`StreamSession` (:meth:`Scorer.stream`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from har.domain.calibration import apply_temperature
from har.domain.card import CANONICAL_UNITS, ModelCard, Units
from har.domain.errors import InputError
from har.domain.model_call import Infer
from har.domain.preprocessing import SCALED, Preprocessor, Windows, check_finite
from har.domain.recordings import Recording
from har.domain.results import Predictions, RecordingResult, StreamResult
from har.domain.streaming import StreamWindower
from har.domain.timeline import Timeline, TimelineBuilder, TimelineOptions, timeline_of
from har.settings import Settings

#: Stream chunks with more samples than this are converted and windowed in a worker
#: thread, so that one huge chunk does not stall the event loop the HTTP API shares.
THREAD_CHUNK_SAMPLES = 5_000
#: A recording may have this many times ``max_windows`` windows.
RECORDING_WINDOWS_FACTOR = 16


class Observer(Protocol):
    """What the scorer needs from monitoring (``har.monitoring.Monitor``)."""

    def observe(
        self, windows: np.ndarray, probs: np.ndarray, *, sequence_key: str | None = None
    ) -> None: ...


class Sampler(Protocol):
    """What the scorer needs from the sample kept for labelling (``har.monitoring.samples``)."""

    def offer(
        self,
        canonical: np.ndarray,
        probs: np.ndarray,
        units: Units | None,
        *,
        predicted: np.ndarray | None = None,
        confidence: np.ndarray | None = None,
    ) -> int: ...

    def close(self, timeout: float = 10.0) -> None: ...


class Scorer:
    """Turns client windows, recordings or streams into predictions through the model.

    Args:
        card: the served model's card.
        tag: the served model's tag (transports echo it in every answer).
        infer: the model (see :data:`har.domain.model_call.Infer`).
        monitor: optional observer of every served window (canonical units) and its output.
        max_windows: most windows accepted in one request (a recording: 16 times that;
            a stream chunk: that many hops of time).
        max_fill: gaps of at most this many samples are interpolated, longer ones split.
        timeline: how recordings' and streams' timelines are smoothed by default
            (the service's: ``TimelineOptions.from_settings(settings)``).
        max_resampled_samples: most samples the resampler may allocate for one recording.
        temperature: the card's applied calibration temperature (``None``: raw probabilities).
            Applied here, after the model call, so the model worker's output, and the shadow
            that taps it, stay raw; answers and monitoring get the calibrated values.
        sampler: optional sample of served windows kept for labelling (``HAR_SAMPLE_DIR``),
            offered every scored window as answered.
    """

    def __init__(
        self,
        card: ModelCard,
        tag: str,
        infer: Infer,
        *,
        monitor: Observer | None = None,
        max_windows: int = 4096,
        max_fill: int = 2,
        timeline: TimelineOptions | None = None,
        max_resampled_samples: int = 4_000_000,
        temperature: float | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.card = card
        self.tag = tag
        self.infer = infer
        self.monitor = monitor
        self.max_windows = max_windows
        self.max_fill = max_fill
        self.timeline = timeline or TimelineOptions()
        self.pre = Preprocessor(card, max_fill=max_fill, max_samples=max_resampled_samples)
        self.temperature = temperature
        self.sampler = sampler

    async def score(
        self,
        canonical: np.ndarray,
        *,
        sequence_key: str | None = None,
        units: Units | None = None,
    ) -> Predictions:
        """Scale canonical windows ``(N, window, 6)`` float32 cut by the service (a recording's,
        a stream's), run the model, record them for monitoring.

        Args:
            sequence_key: windows sharing a key are consecutive (a recording, a stream);
                monitoring counts flips between them.
            units: the units the client declared (kept with sampled windows; ``None``: not
                known here).

        Raises:
            InputError: a value that overflows float32 once scaled.
        """
        scaled = self.pre.scale(canonical)
        check_finite(scaled, self.card.channels, SCALED)
        return await self._infer(canonical, scaled, sequence_key=sequence_key, units=units)

    async def _infer(
        self,
        canonical: np.ndarray,
        scaled: np.ndarray,
        *,
        sequence_key: str | None = None,
        units: Units | None = None,
    ) -> Predictions:
        """Run the model on validated ``scaled`` windows; feed monitoring and the sample the
        ``canonical`` ones. The model's ``(N, n_classes)`` float32 probabilities are taken as
        they come (:data:`~har.domain.model_call.Infer`'s contract), calibrated when asked."""
        probs = await self.infer(scaled)
        if self.temperature is not None:
            probs = apply_temperature(probs, self.temperature)
        if self.monitor is not None:
            self.monitor.observe(canonical, probs, sequence_key=sequence_key)
        answer = Predictions.from_probs(
            probs, self.card.classes, calibrated=self.temperature is not None
        )
        if self.sampler is not None:  # the answer's classes and confidences, not recomputed
            self.sampler.offer(
                canonical,
                answer.probs,
                units,
                predicted=answer.class_ids,
                confidence=answer.confidence,
            )
        return answer

    def check_windows(self, windows: np.ndarray) -> None:
        """Raise unless a client's windows are at most ``max_windows``, shaped ``(N, window, 6)``.

        Args:
            windows: as a transport's edge decodes them (an array; a JSON scalar in place of
                the windows arrives as a 0-d array).

        Raises:
            InputError: too many windows, or the wrong shape.
        """
        if windows.ndim > 0 and len(windows) > self.max_windows:
            raise InputError(
                f"too many windows in one request: {len(windows)} (at most {self.max_windows}); "
                "split the request or use /predict_recording"
            )
        self.pre.check_shape(windows)

    async def predict(self, windows: np.ndarray, units: Units = CANONICAL_UNITS) -> Predictions:
        """One prediction per client window, in request order (``POST /predict``, gRPC ``Predict``).

        Args:
            windows: float32 (C-contiguous) in ``units``, as the transport's edge decoded them
                (``har.http.request_body``, ``har.grpc.service``): counted and shape-checked
                here (:meth:`check_windows`), never cast again.
            units: the units the client declared.

        Raises:
            InputError: too many windows, the wrong shape, NaN or infinity (as sent, after
                the unit conversion or after scaling).
        """
        self.check_windows(windows)
        return await self.predict_checked(windows, units)

    async def predict_checked(
        self, windows: np.ndarray, units: Units = CANONICAL_UNITS
    ) -> Predictions:
        """:meth:`predict` for windows whose count and shape the edge has checked already (the
        Open Inference Protocol's ``InferenceModel.check_inputs``, before reading the data)."""
        canonical, scaled = self.pre.model_input(windows, units)
        return await self._infer(canonical, scaled, units=units)

    async def predict_recording(
        self, rec: Recording, smoothing: str | None = None
    ) -> RecordingResult:
        """Windows of a whole recording, their predictions and the activity timeline.

        Args:
            smoothing: the timeline's method for this recording (default, or "": the
                scorer's ``timeline.smoothing``); the windows keep their raw predictions.

        Raises:
            InputError: an unknown ``smoothing``, an unusable or too long recording.
        """
        options = self.timeline.override(smoothing or None)
        w = self.pre.windows(rec.time, rec.values)
        most = self.max_windows * RECORDING_WINDOWS_FACTOR
        if len(w) > most:
            raise InputError(f"recording too long: {len(w)} windows (at most {most})")
        # a fresh key per recording: its windows are consecutive, unrelated to any other
        preds = await self.score(w.values, sequence_key=f"rec-{uuid.uuid4().hex}")
        timeline = timeline_of(w, preds.probs, self.card.classes, options=options)
        return RecordingResult(w, preds, timeline)

    def stream(self, name: str = "stream") -> StreamSession:
        """A new live-stream session; ``name`` prefixes its key in monitoring."""
        return StreamSession(self, f"{name}-{uuid.uuid4().hex}")


class StreamSession:
    """One live sensor stream: chunks of raw samples in, scored windows out.

    Units may be set on the first chunk only (default canonical). Windows are cut by a
    :class:`~har.domain.streaming.StreamWindower` (same windows as the offline path) and
    scored as they complete; errors name the chunk (numbered from 0). Every scored
    window is kept for :meth:`timeline` (``K + 3`` numbers each). Made by
    :meth:`Scorer.stream`.
    """

    def __init__(self, scorer: Scorer, key: str) -> None:
        self.scorer = scorer
        self.key = key
        self.units = CANONICAL_UNITS
        self.chunks = 0  # chunks received
        self.windows = 0  # windows scored
        self._windower: StreamWindower | None = None
        self._timeline = TimelineBuilder(scorer.card.classes)

    async def push(
        self, timestamps: Sequence[float], values: Sequence[float], units: Units | None = None
    ) -> StreamResult:
        """Add one chunk; the windows it completes, scored.

        Args:
            timestamps: ``n`` seconds (any origin), increasing across the stream.
            values: ``n x 6`` samples, time-major (flat ``(6n,)`` or ``(n, 6)``).
            units: the chunk's declared units, if it declares any.

        Raises:
            InputError: units changed after the first chunk, wrong value count, NaN,
                timestamps that do not increase (see :meth:`StreamWindower.push`).
        """
        n = self.chunks
        self.chunks += 1
        if units is not None:
            self._set_units(n, units)
        if len(timestamps) > THREAD_CHUNK_SAMPLES:
            new = await asyncio.to_thread(self._cut, n, timestamps, values)
        else:
            new = self._cut(n, timestamps, values)
        return await self._score(new)

    async def close(self) -> StreamResult:
        """The stream has ended: the windows held back for the filter's look-ahead, scored."""
        return await self._score(self._window().flush())

    def timeline(self, smoothing: str | None = None) -> Timeline:
        """The activity timeline of every window scored so far (call after :meth:`close`).

        Args:
            smoothing: the method (default, or "": the scorer's ``timeline.smoothing``).

        Raises:
            InputError: an unknown ``smoothing``.
        """
        options = self.scorer.timeline.override(smoothing or None)
        return self._timeline.build(options=options)

    def _set_units(self, n: int, units: Units) -> None:
        if n == 0:
            self.units = units
        elif units != self.units:
            raise InputError(
                f"chunk {n}: units can only be set on a stream's first chunk; the stream "
                f"is in acc={self.units.acc!r}, gyro={self.units.gyro!r}, this chunk says "
                f"acc={units.acc!r}, gyro={units.gyro!r}"
            )

    def _window(self) -> StreamWindower:
        if self._windower is None:  # units are known from the first chunk on
            self._windower = StreamWindower(
                self.scorer.card,
                self.scorer.max_fill,
                units=self.units,
                max_chunk_windows=self.scorer.max_windows,
            )
        return self._windower

    def _cut(self, n: int, timestamps: Sequence[float], values: Sequence[float]) -> Windows:
        """Validate chunk ``n`` and window it."""
        k = len(timestamps)
        v = np.asarray(values, np.float64)
        if v.size != 6 * k:
            raise InputError(
                f"chunk {n}: {v.size} values for {k} timestamps; send 6 values per "
                f"timestamp ({k} x 6 = {6 * k}, time-major: {self.scorer.card.channels})"
            )
        try:
            return self._window().push(np.asarray(timestamps, np.float64), v.reshape(k, 6))
        except InputError as exc:
            raise InputError(f"chunk {n}: {exc}") from None

    async def _score(self, new: Windows) -> StreamResult:
        first = self.windows
        if len(new) == 0:
            empty = Predictions.from_probs(
                np.empty((0, len(self.scorer.card.classes)), np.float32), self.scorer.card.classes
            )
            return StreamResult(first, new, empty)
        preds = await self.scorer.score(new.values, sequence_key=self.key, units=self.units)
        self.windows += len(new)
        self._timeline.add(new, preds.probs)
        return StreamResult(first, new, preds)


def served_scorer(settings: Settings, infer: Infer, *, worker_id: str) -> Scorer:
    """The API service's scorer: the stored model ``settings.model_tag`` (its card and
    tag), monitored by a started ``har.monitoring.Monitor`` (``worker_id`` names the
    worker's profiles) unless ``settings.monitoring`` is off, with the request limits
    and timeline options of ``settings``, calibrated by the card's applied temperature
    unless ``settings.calibration`` is off, keeping a sample of served windows in
    ``settings.sample_dir`` when set (``har.monitoring.samples``; started here, closed by the
    caller with ``scorer.sampler.close()``)."""
    from har.runtime import model_store

    tag, stored = model_store.stored_model(settings.model_tag)
    card = ModelCard.from_file(stored / model_store.CARD_FILE)
    monitor = None
    if settings.monitoring:
        from har.monitoring import Monitor

        ref = stored / model_store.REFERENCE_FILE
        monitor = Monitor(card, settings, ref if ref.is_file() else None, worker_id=worker_id)
        monitor.start()
    sampler = None
    if settings.sample_dir is not None:
        from har.monitoring.samples import SampleKeeper

        sampler = SampleKeeper(
            settings.sample_dir,
            model=tag,
            classes=card.classes,
            uncertain_below=settings.uncertain_below,
            random_share=settings.sample_random_share,
            drift_share=settings.sample_drift_share,
            max_bytes=int(settings.sample_max_mb * 1024 * 1024),
            flush_s=settings.sample_flush_s,
            worker_id=worker_id,
            drifting=(lambda: monitor.drifting) if monitor is not None else None,
        )
        sampler.start()
    return Scorer(
        card,
        tag,
        infer,
        monitor=monitor,
        sampler=sampler,
        max_windows=settings.max_windows_per_request,
        max_fill=settings.max_fill_samples,
        timeline=TimelineOptions.from_settings(settings),
        max_resampled_samples=settings.max_resampled_samples,
        temperature=(
            card.calibration.served_temperature
            if settings.calibration and card.calibration is not None
            else None
        ),
    )
