"""``BodySizeLimitMiddleware`` (har/http/endpoints.py): 413 for bodies over the limit however they
are sent, 408 for bodies that do not arrive in time; the app sees the whole body once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from har.http.endpoints import BodySizeLimitMiddleware


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _call(
    chunks: list[bytes], headers: list | None = None, delay: float = 0.0, app: Any = None, **kw: Any
):
    sent: list[dict] = []
    queue = list(chunks)

    async def receive() -> dict:
        if delay:
            await asyncio.sleep(delay)
        if not queue:
            await asyncio.sleep(3600)
        body = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    async def send(msg: dict) -> None:
        sent.append(msg)

    limited = BodySizeLimitMiddleware(app or _echo, **kw)
    scope = {"type": "http", "headers": headers or []}
    asyncio.run(limited(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_app_sees_the_whole_body():
    assert _call([b"ab", b"cd", b"e"], max_bytes=1024) == (200, b"abcde")


def test_chunked_body_over_the_limit_is_413():
    status, body = _call([b"x" * 600, b"x" * 600], max_bytes=1024)
    assert status == 413
    assert "limit 1024 bytes" in json.loads(body)["error"]


def test_declared_length_over_the_limit_is_413_without_reading():
    status, _ = _call([], headers=[(b"content-length", b"5000")], max_bytes=1024)
    assert status == 413


def test_a_body_that_never_completes_is_408():
    status, body = _call([b"{"] + [b"x"] * 1000, delay=0.01, max_bytes=10**6, read_timeout_s=0.2)
    assert status == 408
    assert "0.2 s" in json.loads(body)["error"]


async def _answers_500_on_disconnect(scope: Any, receive: Any, send: Any) -> None:
    """An app that turns a client gone mid-body into a 500 (as BentoML's handlers do)."""
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"internal"})
            return
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_apps_own_answer_to_an_overrun_is_replaced_by_413():
    app = _answers_500_on_disconnect
    status, body = _call([b"x" * 600, b"x" * 600, b"x"], max_bytes=1024, app=app)
    assert status == 413
    assert "1200 bytes" in json.loads(body)["error"]
    assert _call([b"x" * 600, b"x" * 400], max_bytes=1024, app=app) == (200, b"ok")
