"""Why each BentoML workaround (``har/serving/patches/``, ``har/serving/model_client.py``) is
still needed on the pinned BentoML.

Each ``upstream`` test shows the behaviour a workaround exists for. When an upgrade
fixes it, that test fails: remove the workaround (and the test) then.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bentoml._internal.server.http import traffic

from har.serving.model_client import model_ready
from har.serving.patches import traffic_timers


def _pristine_traffic_module() -> Any:
    """A fresh copy of BentoML's ``traffic`` module (the patch changes the real one)."""
    spec = importlib.util.spec_from_file_location("_pristine_traffic", traffic.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _fast_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _pending_timers_after_one_request(middleware_cls: Any) -> list[asyncio.TimerHandle]:
    """Run one request through ``middleware_cls(app, timeout=60)``; live timers afterwards."""

    async def run() -> list[asyncio.TimerHandle]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        mw = middleware_cls(_fast_app, timeout=60)
        await mw({"type": "http", "method": "GET", "path": "/"}, receive, send)
        assert sent[0]["status"] == 200
        loop = asyncio.get_running_loop()
        return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]

    return asyncio.run(run())


def test_upstream_timeout_middleware_still_leaks_a_timer_per_request() -> None:
    """BentoML's TimeoutMiddleware leaves its ``call_later`` timer scheduled after the
    response: one live timer (and its context) per request for the traffic timeout."""
    pristine = _pristine_traffic_module()
    assert not getattr(pristine.TimeoutMiddleware, "_har_cancels_timer", False)
    assert len(_pending_timers_after_one_request(pristine.TimeoutMiddleware)) == 1


def test_patched_timeout_middleware_leaves_no_timer() -> None:
    traffic_timers.cancel_traffic_timers()
    assert traffic.TimeoutMiddleware._har_cancels_timer  # type: ignore[attr-defined]
    assert _pending_timers_after_one_request(traffic.TimeoutMiddleware) == []


def _client_to(url: str) -> Any:
    from _bentoml_impl.client.proxy2 import AsyncClient

    return AsyncClient(url, server_ready_timeout=0)


class _Proxy:
    """Like the API service's remote proxy of the model service: ``is_ready(timeout)``."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def is_ready(self, timeout: float) -> bool:
        client = _client_to(self.url)
        try:
            return bool(await client.is_ready(timeout))  # type: ignore[arg-type]
        finally:
            await client.close()


def test_upstream_dependency_probe_raises_when_the_model_worker_is_gone(tmp_path: Path) -> None:
    """BentoML's own dependency probe (``runner_probe``) calls ``is_ready(5)`` on the
    model service: with its socket gone (worker killed, or not started yet) that raises
    instead of answering False, so ``/readyz`` would fail with a 500, not a 503. Hence
    ``runner_probe={"enabled": False}`` and :func:`har.serving.model_client.model_ready`."""
    proxy = _Proxy(f"file://{tmp_path / 'gone.sock'}")
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(proxy.is_ready(5))
    assert asyncio.run(model_ready(proxy)) is False


def test_upstream_dependency_probe_raises_on_a_model_worker_that_does_not_answer() -> None:
    """A model worker that accepts but never answers (busy starting): the probe's
    deadline raises a timeout instead of returning False (it only catches
    ``ServerTimeoutError``); ``model_ready`` answers False within its deadline."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        proxy = _Proxy(f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(proxy.is_ready(1))
        ready = asyncio.run(model_ready(proxy, probe_timeout_s=1, deadline_s=2))
        assert ready is False
