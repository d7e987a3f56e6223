"""A small BentoML service served in-process by BentoML's own app, with or without the
patches: what BentoML does with a few requests, printed as JSON.

Run in a subprocess by test_bentoml_patches.py and test_patch_effects.py beside it
(``python tests/unit/serving/patches/bentoml_probe_app.py patched|upstream``): BentoML's app factory and
its Prometheus metrics are process-wide, so each mode gets a fresh process.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from pathlib import Path
from typing import Any


def main(mode: str) -> dict[str, Any]:
    if mode == "patched":
        from har.serving.patches import apply_patches

        apply_patches(tracing=False, allow_untested=False)
    import bentoml
    from starlette.testclient import TestClient

    from har.domain.errors import ModelUnavailableError

    @bentoml.service(name="probe", traffic={"timeout": 60})
    class Probe:
        @bentoml.api
        def echo(self, text: str, n: int = 1) -> str:
            return text * n

        @bentoml.api
        def size(self, upload: Path) -> int:
            return upload.stat().st_size

        @bentoml.api
        def unavailable(self) -> str:
            raise ModelUnavailableError("the model service is restarting")

    app = Probe.to_asgi()
    out: dict[str, Any] = {}

    def answer(r: Any) -> list[Any]:
        return [r.status_code, r.text]

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/echo", json={"text": "hi", "n": 2})
        out["echo"] = answer(r)
        out["request_id_header"] = r.headers.get("x-bentoml-request-id")
        json_headers = {"content-type": "application/json"}
        out["not_json"] = answer(c.post("/echo", content=b"{not json", headers=json_headers))
        out["missing_field"] = answer(c.post("/echo", json={"n": 2}))
        out["upload_as_url"] = answer(c.post("/size", data={"upload": "http://127.0.0.1:9/x"}))
        no_boundary = {"content-type": "multipart/form-data"}
        out["no_boundary"] = answer(c.post("/size", content=b"--x\r\n", headers=no_boundary))
        r = c.post("/unavailable", json={})
        out["unavailable"] = [*answer(r), r.headers.get("retry-after")]
        for i in range(3):
            c.get(f"/random-{i}/x")
        metrics = c.get("/metrics").text
        out["request_total"] = sorted(
            line.split("{", 1)[1].split("}", 1)[0]
            for line in metrics.splitlines()
            if line.startswith("bentoml_service_request_total{")
        )

        async def live_traffic_timers() -> int:
            loop = asyncio.get_running_loop()
            handles = loop._scheduled  # type: ignore[attr-defined]
            return sum(
                1 for h in handles if not h.cancelled() and "_set_timer_out" in repr(h._callback)
            )

        assert c.portal is not None
        out["live_traffic_timers"] = c.portal.call(live_traffic_timers)
    out["middlewares"] = [m.cls.__name__ for m in app.user_middleware]
    return out


@functools.cache
def run(mode: str) -> dict[str, Any]:
    """:func:`main` in a fresh Python process (``mode``: ``patched`` or ``upstream``)."""
    import os
    import subprocess
    import tempfile

    from tests.helpers.paths import ROOT as root

    with tempfile.TemporaryDirectory(prefix="har-probe-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "PROMETHEUS_MULTIPROC_DIR": tmp,  # BentoML's /metrics reads this folder
            "BENTOML_HOME": str(Path(tmp) / "bentoml"),
        }
        done = subprocess.run(
            [sys.executable, __file__, mode],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
