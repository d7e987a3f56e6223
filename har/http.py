"""HTTP-only pieces of the service that do not need BentoML: body limits and uploads."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from har.errors import InputError
from har.recordings import Recording, read_csv_recording, read_garmin_pair

Scope = dict[str, Any]


class BodySizeLimitMiddleware:
    """ASGI middleware answering 413 to request bodies larger than ``max_bytes``.

    Checks ``Content-Length`` up front and counts streamed (chunked) bodies as they
    arrive, so an oversized upload is refused without being buffered whole.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(seen)
            return msg

        async def tracking_send(msg: dict[str, Any]) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as exc:
            if not started:
                await self._reject(send, 413, self._message(exc.size))

    def _message(self, size: int) -> str:
        return f"request body too large: {size} bytes (limit {self.max_bytes} bytes)"

    @staticmethod
    async def _reject(send: Any, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
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


def client_error(exc: Exception, status: int = 400) -> Any:
    """The JSON answer to a client's mistake: ``{"error": message}`` with a 4xx status."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(exc)}, status_code=status)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


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
    """The recording of a ``/predict_recording`` upload: a canonical CSV or a Garmin pair."""
    if file is not None:
        if accelerometer is not None or gyroscope is not None:
            raise InputError(
                "send either 'file' or the pair 'accelerometer' + 'gyroscope', not both"
            )
        units = {"acc": acc_unit, "gyro": gyro_unit}
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
