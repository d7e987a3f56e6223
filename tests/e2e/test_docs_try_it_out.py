"""*Try it out* on the docs page of a real ``bentoml serve``, driven in headless Chromium over
the DevTools protocol: each example runs as the page sends it, and ``/predict_recording``
offers a file chooser for each upload field."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from typing import Any

import aiohttp
import pytest

from tests.helpers.servers import bentoml_serve, free_port

pytestmark = pytest.mark.e2e
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,2400"]  # fmt: skip


class Tab:
    """One Chromium tab over the DevTools protocol (JSON messages on a websocket)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.n = ws, 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg["result"]

    async def js(self, expr: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    async def wait(self, expr: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not await self.js(expr):
            assert time.monotonic() < end, f"timed out waiting for {expr}"
            await asyncio.sleep(0.2)

    async def try_it_out(self, op: str) -> tuple[int, str] | None:
        """Open operation ``op`` (its DOM id), press *Try it out*, then *Execute* unless it has
        file fields; ``(status, body)`` shown by the page, or ``None`` if not executed."""
        sel = f"#{op}"
        await self.wait(f"!!document.querySelector('{sel} .opblock-summary')")
        await self.js(
            f"(document.querySelector('{sel} .opblock-summary-control') "
            f"|| document.querySelector('{sel} .opblock-summary')).click()"
        )
        await self.wait(f"!!document.querySelector('{sel} .try-out__btn')")
        await self.js(f"document.querySelector('{sel} .try-out__btn').click()")
        await self.wait(f"!!document.querySelector('{sel} .execute')")
        if await self.js(f"document.querySelectorAll('{sel} input[type=file]').length"):
            return None
        await self.js(f"document.querySelector('{sel} .execute').click()")
        row = f"{sel} .live-responses-table tbody tr.response"
        await self.wait(f"!!document.querySelector('{row} .response-col_status')")
        status = await self.js(f"document.querySelector('{row} .response-col_status').innerText")
        body = await self.js(f"document.querySelector('{row} .microlight').innerText")
        return int(status.strip()), body


async def _drive(url: str) -> dict[str, Any]:
    port = free_port()
    # Chromium's helper processes may still write the profile as it goes away
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        cmd = ["chromium", *FLAGS, f"--user-data-dir={profile}",
               f"--remote-debugging-port={port}", "about:blank"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(150):
                    try:
                        targets = await (await s.get(f"http://127.0.0.1:{port}/json/list")).json()
                        break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.2)
                page = next(t for t in targets if t["type"] == "page")
                async with s.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    tab = Tab(ws)
                    await tab.send("Page.navigate", url=f"{url}/")
                    results: dict[str, Any] = {}
                    for op in ("operations-prediction-har__predict",
                               "operations-model-model_model_get",
                               "operations-monitoring-drift_monitoring_drift_get",
                               "operations-infrastructure-get_readyz"):  # fmt: skip
                        results[op] = await tab.try_it_out(op)
                    rec = "#operations-prediction-har__predict_recording"
                    results["recording"] = await tab.try_it_out(rec[1:])
                    results["file_fields"] = await tab.js(
                        f"[...document.querySelectorAll('{rec} input[type=file]')]"
                        ".map(e => e.closest('tr').querySelector('.parameter__name').innerText)"
                    )
                    return results
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # the browser and its helper processes
            proc.wait(30)


@pytest.fixture(scope="module")
def results(tmp_path_factory, bundled_tag) -> dict[str, Any]:
    with bentoml_serve(log_dir=tmp_path_factory.mktemp("try-logs")) as server:
        return asyncio.run(_drive(server.url))


def test_predict_example_runs_and_says_at_rest(results, bundled_tag):
    status, body = results["operations-prediction-har__predict"]
    assert status == 200, body
    answer = json.loads(body)
    assert answer["model"] == bundled_tag and len(answer["predictions"]) == 1


def test_get_endpoints_run_from_the_page(results, bundled_tag):
    status, body = results["operations-model-model_model_get"]
    assert status == 200 and json.loads(body)["tag"] == bundled_tag
    status, body = results["operations-monitoring-drift_monitoring_drift_get"]
    assert status == 200, body  # since=1h, until=0s: the last hour
    assert results["operations-infrastructure-get_readyz"][0] == 200


def test_recording_form_has_a_file_chooser_per_upload_field(results):
    assert results["recording"] is None  # not executed: it has file fields
    names = [" ".join(n.split()) for n in results["file_fields"]]
    assert [n.split(" ")[0] for n in names] == ["file", "accelerometer", "gyroscope"]
