"""HTTP-only pieces of the service that do not need BentoML: body limits, uploads, answers."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import numpy as np
import orjson
from fastapi import Query
from pydantic import Field
from starlette.responses import Response

from har.core import answers
from har.core.scorer import Scorer
from har.domain.card import Units
from har.domain.errors import InputError
from har.domain.recordings import Recording, read_csv_recording, read_garmin_pair
from har.http.errors import RequestError

if TYPE_CHECKING:
    from har.shadow import Shadow

Scope = dict[str, Any]
EXAMPLE_WINDOW = [[0.0, 0.0, 9.81, 0.0, 0.0, 0.0]] * 200  # a watch lying flat, at rest
#: Request field types of the endpoints (their OpenAPI schema and runnable examples).
WINDOWS = Annotated[
    list[list[list[float]]],
    Field(
        description="N windows of `window` samples x 6 channels (acc_x, acc_y, acc_z, "
        "gyro_x, gyro_y, gyro_z), time-major; units as in `units`",
        examples=[[EXAMPLE_WINDOW]],
    ),
]
UNITS = Annotated[Units, Field(description="Units of the values (default m/s2 and deg/s).")]
SMOOTHING = Annotated[
    str,
    Field(
        description="Timeline smoothing: 'viterbi' (segments from a hidden-Markov pass with "
        "a switching penalty) or 'none' (each window's own prediction); windows keep their "
        "raw predictions either way. Default: HAR_SMOOTHING.",
        examples=["viterbi", "none"],
    ),
]
#: An optional upload is a list of at most one file: BentoML 1.4 cannot express
#: ``Path | None`` upload fields (its file schema breaks ``typing.Union``).
UPLOAD = Annotated[list[Path], Field(max_length=1)]
SINCE = Annotated[str | None, Query(description="ISO 8601 start (default: service start)")]
UNTIL = Annotated[str | None, Query(description="ISO 8601 end (default: now)")]


class BodySizeLimitMiddleware:
    """ASGI middleware bounding request bodies: 413 over ``max_bytes``, 408 when the
    client takes longer than ``read_timeout_s`` to send the whole body.

    ``Content-Length`` is checked up front; a streamed (chunked) body is counted as the
    app reads it. When a body runs over the limit or stalls, the app is told the client
    went away (``http.disconnect``, so it stops reading and nothing more is buffered) and
    whatever answer it then tries to send is replaced by the 413 / 408. The app reads
    the body itself, as without the middleware: reading it here first kept the API
    worker from finishing a graceful shutdown.
    """

    def __init__(self, app: Any, max_bytes: int, read_timeout_s: float = 20.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await self._reject(send, 413, self._message(declared))
                    return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        seen = 0
        body_done = False
        started = False
        refusal: tuple[int, str] | None = None
        disconnect: dict[str, Any] = {"type": "http.disconnect"}

        async def guarded_receive() -> dict[str, Any]:
            nonlocal seen, body_done, refusal
            if refusal is not None:
                return disconnect
            if body_done:  # after the body: only the disconnect is left to wait for
                return cast(dict[str, Any], await receive())
            try:
                msg = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                refusal = (408, f"request body not received within {self.read_timeout_s:g} s")
                return disconnect
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    refusal = (413, self._message(seen))
                    return disconnect
                body_done = not msg.get("more_body", False)
            return cast(dict[str, Any], msg)

        async def guarded_send(msg: dict[str, Any]) -> None:
            nonlocal started
            if refusal is not None:  # the app's own answer to the "disconnect" is dropped
                if not started:
                    started = True
                    await self._reject(send, *refusal)
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            started = True
            await self._reject(send, *refusal)

    def _message(self, size: int) -> str:
        return f"request body too large: {size} bytes (limit {self.max_bytes} bytes)"

    @staticmethod
    async def _reject(send: Any, status: int, message: str) -> None:
        body = answers.error_answer_bytes(message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def json_answer(answer: Any) -> Any:
    """``answer`` (plain JSON types) as a 200 response, serialised by orjson.

    Returned as a response, BentoML sends it as it is. Given the dict, it would validate
    it against the endpoint's output model, dump and serialise it with pydantic and
    build that model's JSON schema again for the content type, on every request (a large
    share of the API worker's time under load: docs/performance.md). Same JSON either way.
    """
    return Response(orjson.dumps(answer), media_type="application/json")


def shadow_answer(shadow: Shadow | None, since: str | None, until: str | None) -> Any:
    """``GET /monitoring/shadow``: the comparison over the ISO 8601 interval (``off`` without
    a shadow).

    Raises:
        InputError: an unreadable interval (400).
    """
    from har.monitoring.store import parse_interval
    from har.shadow.compare import off_answer

    start, end = parse_interval(since, until)
    return off_answer() if shadow is None else shadow.answer(start, end)


class HttpApi:
    """What the HTTP endpoints do, behind the signatures ``service.py`` declares.

    Each method answers the endpoint's JSON (:mod:`har.core.answers`) or raises the client's
    mistake (:class:`~har.domain.errors.InputError`), answered ``{"error": message}`` with a
    4xx by :mod:`har.http.errors`.

    Args:
        scorer: the transport-agnostic core.
        monitor: the scorer's ``har.monitoring.Monitor`` (``None``: monitoring is off).
        align_tolerance_s: Garmin accelerometer/gyroscope pairing tolerance (seconds).
        registry: where the served model came from in the MLflow registry
            (``har.lifecycle.served_registry_info``; ``None``: not from the registry).
    """

    def __init__(
        self,
        scorer: Scorer,
        monitor: Any | None,
        *,
        align_tolerance_s: float,
        registry: dict[str, str] | None = None,
    ) -> None:
        self.scorer = scorer
        self.monitor = monitor
        self.align_tolerance_s = align_tolerance_s
        self.registry = registry

    async def predict(self, windows: np.ndarray, units: Units) -> Any:
        """``POST /predict``: one prediction per window, in request order.

        ``windows`` and ``units`` come parsed (``har/http/request_body.py``: the windows as
        one float32 array, the scorer's input as it is).

        Raises:
            InputError: too many windows, the wrong shape, values that are not finite.
        """
        preds = await self.scorer.predict(windows, units)
        return json_answer(answers.predict_answer(self.scorer.tag, preds))

    async def predict_recording(
        self,
        file: Path | None,
        accelerometer: Path | None,
        gyroscope: Path | None,
        acc_unit: str,
        gyro_unit: str,
        smoothing: str | None = None,
    ) -> Any:
        """``POST /predict_recording``: windows, segments and seconds per activity
        (``smoothing``: the timeline's method, default the scorer's).

        Raises:
            InputError: unreadable, too short or too long uploads, unknown units or smoothing.
        """
        rec = await asyncio.to_thread(
            read_upload,
            file,
            accelerometer,
            gyroscope,
            acc_unit,
            gyro_unit,
            tolerance_s=self.align_tolerance_s,
        )
        result = await self.scorer.predict_recording(rec, smoothing)
        return json_answer(answers.recording_answer(self.scorer.tag, result))

    def model(self) -> answers.JSON:
        """``GET /model``: the served model's tag and card (and its registry origin)."""
        answer = answers.model_answer(self.scorer.tag, self.scorer.card)
        if self.registry is not None:
            answer["registry"] = self.registry
        return answer

    async def drift(self, since: str | None, until: str | None) -> Any:
        """``GET /monitoring/drift``: ``monitor.drift`` over the ISO 8601 interval."""
        return await self._monitoring("drift", since, until)

    async def report(self, since: str | None, until: str | None) -> Any:
        """``GET /monitoring/report``: the drift report page (``monitor.report_html``,
        cached by the monitor) over the ISO 8601 interval."""
        from starlette.responses import HTMLResponse

        return HTMLResponse(await self._monitoring("report_html", since, until))

    async def _monitoring(self, method: str, since: str | None, until: str | None) -> Any:
        """``monitor.<method>(start, end)`` in a thread.

        Raises:
            RequestError: 404, monitoring is off or the monitor cannot answer (no reference
                profile).
            InputError: an unreadable interval (400).
        """
        if self.monitor is None:
            raise RequestError("monitoring is disabled (HAR_MONITORING=0)", 404)
        from har.monitoring import parse_interval

        start, end = parse_interval(since, until)
        try:
            return await asyncio.to_thread(getattr(self.monitor, method), start, end)
        except InputError as exc:
            raise RequestError(str(exc), 404) from None


def _named(path: Path, label: str) -> io.BytesIO:
    """The uploaded file's bytes, named after its form field in error messages
    (the server-side temporary path means nothing to a client)."""
    buf = io.BytesIO(Path(path).read_bytes())
    buf.name = label
    return buf


def read_upload(
    file: Path | None,
    accelerometer: Path | None,
    gyroscope: Path | None,
    acc_unit: str,
    gyro_unit: str,
    *,
    tolerance_s: float,
) -> Recording:
    """The recording of a ``/predict_recording`` upload: a canonical CSV in the form
    fields' units (``acc_unit``, ``gyro_unit``), or a Garmin pair (its own units)."""
    if file is not None:
        if accelerometer is not None or gyroscope is not None:
            raise InputError(
                "send either 'file' or the pair 'accelerometer' + 'gyroscope', not both"
            )
        units = Units.parse({"acc": acc_unit, "gyro": gyro_unit})
        return read_csv_recording(_named(file, "upload 'file'"), units)
    if accelerometer is not None and gyroscope is not None:
        return read_garmin_pair(
            _named(accelerometer, "upload 'accelerometer'"),
            _named(gyroscope, "upload 'gyroscope'"),
            tolerance_s=tolerance_s,
        )
    if accelerometer is not None or gyroscope is not None:
        missing = "gyroscope" if gyroscope is None else "accelerometer"
        raise InputError(f"the Garmin export pair needs both files; '{missing}' is missing")
    raise InputError(
        "no recording: upload 'file' (canonical CSV) or 'accelerometer' + 'gyroscope' (Garmin)"
    )
