"""``python -m load_tests.reliability.mixed``: mixed HTTP + gRPC load on a fresh ``bentoml serve``.

Starts the service (``tests/helpers/servers.py``), then runs ``wrk`` on ``/predict`` and
``h2load`` on gRPC ``Predict`` at the same time (half the concurrency each, one 200x6
window per request), and counts the model-call retries the server logged
(``service.py`` logs each at WARNING). Exits non-zero on any client error or retry.
The 2-minute form proves the BentoML move; ``--duration 600`` is the soak.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from load_tests.bench.common import GRPC_PATH
from load_tests.bench.loadgen import (
    LoadResult,
    ensure_tools,
    grpc_response_bytes,
    run_h2load,
    run_wrk,
    write_wrk_script,
)
from load_tests.bench.workload import example_window, prepare_model, write_bodies
from tests.helpers.servers import bentoml_serve, home_sharing_store

RETRY_LINE = "model call retried once"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load; print one line per protocol and the retry count."""
    p = argparse.ArgumentParser(prog="python -m load_tests.reliability.mixed", description=__doc__)
    p.add_argument("--duration", type=int, default=120, help="seconds of load")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight, both protocols")
    p.add_argument("--monitoring", choices=("on", "off"), default="on")
    ns = p.parse_args(argv)
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="har-mixed-"))
    setup = prepare_model(tmp)
    json_body, grpc_body = write_bodies(tmp, example_window())
    lua = write_wrk_script(tmp / "post.lua", json_body)
    env = {"HAR_MODEL_TAG": setup.tag, "HAR_MONITORING": "1" if ns.monitoring == "on" else "0"}
    home = home_sharing_store(tmp / "home", setup.model_store)
    half = max(1, ns.concurrency // 2)
    results: dict[str, LoadResult | BaseException] = {}
    with bentoml_serve(env, log_dir=tmp, home=home, profile_dir=tmp / "profiles") as server:
        url = f"http://{server.grpc_target}{GRPC_PATH}"
        resp_bytes = grpc_response_bytes(url, grpc_body)

        def go(name: str, fn: object) -> None:
            try:
                results[name] = fn()  # type: ignore[operator]
            except BaseException as exc:  # reported below
                results[name] = exc

        jobs = {
            "http": lambda: run_wrk(f"{server.url}/predict", lua, half, ns.duration),
            "grpc": lambda: run_h2load(
                url, grpc_body, half, ns.duration, resp_bytes, tmp / "h2load.log"
            ),
        }
        threads = [threading.Thread(target=go, args=(k, f)) for k, f in jobs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log = server.log
    retries = log.read_text(errors="replace").count(RETRY_LINE)
    bad = retries > 0
    for name, r in results.items():
        if isinstance(r, BaseException):
            print(f"{name}: FAILED {type(r).__name__}: {r}")
            bad = True
            continue
        print(
            f"{name}: c={half} {r.ok} OK, {r.errors} errors, {r.rate:.0f} req/s, "
            f"p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms"
        )
        bad = bad or r.errors > 0
    print(f"model-call retries logged: {retries}; server log {log}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
