"""Why each BentoML workaround in ``service.py`` is still needed on the pinned BentoML.

Each test shows the upstream behaviour the workaround exists for. When an upgrade fixes
it, the test fails: remove the workaround (and the test) then.
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


def _pristine_traffic_module() -> Any:
    """A fresh copy of BentoML's ``traffic`` module (``service.py`` patches the real one)."""
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


def test_patched_timeout_middleware_leaves_no_timer(service_module: Any) -> None:
    assert traffic.TimeoutMiddleware._har_cancels_timer  # type: ignore[attr-defined]
    assert _pending_timers_after_one_request(traffic.TimeoutMiddleware) == []


@pytest.fixture(scope="module")
def service_module() -> Any:
    """``service.py`` imported (applies the patches at import)."""
    import sys

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    import service

    return service


def _client_to(url: str) -> Any:
    from _bentoml_impl.client.proxy2 import AsyncClient

    return AsyncClient(url, server_ready_timeout=0)


def test_upstream_dependency_probe_raises_when_the_model_worker_is_gone(tmp_path: Path) -> None:
    """BentoML's own dependency probe (``runner_probe``) calls ``is_ready(5)`` on the
    model service: with its socket gone (worker killed, or still starting) that raises
    instead of answering False, so ``/readyz`` would fail with a 500, not a 503. Hence
    ``runner_probe={"enabled": False}`` and ``HARService.__is_ready__``."""

    async def probe() -> None:
        client = _client_to(f"file://{tmp_path / 'gone.sock'}")
        try:
            await client.is_ready(5)
        finally:
            await client.close()

    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(probe())


def test_upstream_dependency_probe_raises_on_a_model_worker_that_does_not_answer() -> None:
    """A model worker that accepts but never answers (busy starting): the probe's 5-s
    deadline raises a timeout instead of returning False (it only catches
    ``ServerTimeoutError``)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        async def probe() -> None:
            client = _client_to(f"http://127.0.0.1:{port}")
            try:
                await client.is_ready(1)
            finally:
                await client.close()

        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(probe())


def test_our_readiness_probe_answers_false_for_a_gone_model_worker(
    service_module: Any, tmp_path: Path
) -> None:
    class Dependency:
        async def is_ready(self, timeout: int) -> bool:
            client = _client_to(f"file://{tmp_path / 'gone.sock'}")
            try:
                return bool(await client.is_ready(timeout))
            finally:
                await client.close()

    svc = object.__new__(service_module.HARService.inner)
    svc.__dict__["model_service"] = Dependency()
    assert asyncio.run(service_module.HARService.inner.__is_ready__(svc)) is False
