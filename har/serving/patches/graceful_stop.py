"""graceful-stop: uvicorn's stop in BentoML's workers lets the model service outlive its callers.

What the patch does and why: :mod:`har.serving.graceful`; this module checks what it relies
on and installs it, keeping upstream's ``handle_exit``, ``on_tick`` and ``shutdown``.
"""

from __future__ import annotations

from har.serving import graceful
from har.serving.patches.guard import (
    UPSTREAM,
    UVICORN_WRITTEN_FOR,
    WRITTEN_FOR,
    Expect,
    Patch,
    module_source,
)


def check() -> list[str]:
    import uvicorn
    from bentoml._internal.container import BentoMLContainer
    from bentoml._internal.context import server_context

    e = Expect()
    server = uvicorn.Server
    e.params(server, "handle_exit", ("self", "sig", "frame"))
    e.params(server, "on_tick", ("self", "counter"))
    e.params(server, "shutdown", ("self", "sockets"))
    e.calls_in(server, "main_loop", "await self.on_tick(counter)")
    e.calls_in(server, "capture_signals", "self.handle_exit")
    e.calls_in(server, "_serve", "await self.shutdown(sockets=sockets)")
    e.calls_in(server, "__init__", "self.should_exit")
    e.calls(
        "_bentoml_impl.worker.service",
        module_source("_bentoml_impl.worker.service"),
        "uvicorn.Server(config).run(",
    )
    e.attribute(BentoMLContainer, "remote_runner_mapping")
    e.attribute(server_context, "service_type")
    return e.found


def install() -> None:
    import uvicorn

    if not getattr(uvicorn.Server, "_har_graceful", False):
        for name in ("handle_exit", "on_tick", "shutdown"):
            setattr(uvicorn.Server, UPSTREAM + name, vars(uvicorn.Server)[name])
    graceful.install()


PATCH = Patch(
    name="graceful-stop",
    what="uvicorn.Server.handle_exit / on_tick / shutdown, in BentoML's workers: the model "
    "worker keeps serving until the API workers are done, the API worker begins its gRPC "
    "stop with the HTTP drain (har/serving/graceful.py; relies on BentoMLContainer."
    "remote_runner_mapping and server_context.service_type)",
    why="BentoML sends SIGTERM to every worker at once: the model worker exits while the "
    "API worker still has requests for it",
    upstream="none found",
    loses="requests in flight at a stop (rolling update, scale-down) answered 503 / "
    "UNAVAILABLE instead of served",
    until="BentoML stops dependencies after their callers",
    required=True,
    check=check,
    apply=install,
    written_for={"bentoml": WRITTEN_FOR, "uvicorn": UVICORN_WRITTEN_FOR},
)
