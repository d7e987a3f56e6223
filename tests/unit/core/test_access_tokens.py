"""har.core.access: token loading, the ASGI middleware (in-process) and the gRPC interceptor
(a real ``grpc.aio`` server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hmac

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from har.core import access as access_mod
from har.core.access import Access, AccessConfigError, BearerAuthMiddleware, load_tokens
from har.settings import Settings

TOKENS = ("alpha-token-1", "beta/token+2==")


# --- token settings ---------------------------------------------------------------------


def test_tokens_from_both_settings_are_merged(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# rotated 2026-12\n\n  gamma-3  \nalpha-token-1\n")
    settings = Settings(api_tokens=" alpha-token-1 , beta/token+2==,", api_tokens_file=f)
    acc = Access.from_settings(settings)
    assert acc.tokens == ("alpha-token-1", "beta/token+2==", "gamma-3")
    assert acc.enabled and not acc.metrics_auth
    assert "alpha" not in repr(acc) and "alpha" not in repr(settings)  # secrets stay out of logs


def test_no_token_settings_switch_access_off():
    acc = Access.from_settings(Settings())
    assert not acc.enabled and acc.grpc_interceptors() == []
    assert acc.accepts(None)


@pytest.mark.parametrize(
    ("tokens", "file_text", "needle"),
    [
        ("good,bad token", None, "HAR_API_TOKENS item 2"),
        ("", "ok\nnot;ok\n", "line 2"),
        (" , ", None, "hold no token"),
        ("", "# only a comment\n", "hold no token"),
    ],
)
def test_unusable_token_settings_fail_at_start_naming_the_place(
    tmp_path, tokens, file_text, needle
):
    file = None
    if file_text is not None:
        file = tmp_path / "tokens"
        file.write_text(file_text)
    with pytest.raises(AccessConfigError, match=needle):
        Access.from_settings(Settings(api_tokens=tokens, api_tokens_file=file))


def test_missing_token_file_names_the_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(AccessConfigError, match=f"HAR_API_TOKENS_FILE: cannot read {missing}"):
        load_tokens("", missing)


def test_token_is_compared_in_constant_time_with_every_token(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access_mod.hmac, "compare_digest", spy)
    acc = Access(tokens=TOKENS)
    assert acc.accepts(f"Bearer {TOKENS[0]}")  # matches the first: still compares with all
    assert [b for _, b in calls] == [t.encode() for t in TOKENS]
    calls.clear()
    assert not acc.accepts(b"Bearer alpha-token")  # a prefix of a token is not a token
    assert len(calls) == len(TOKENS)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKENS[1]}", True),
        (f"bearer {TOKENS[0]}", True),  # the scheme is case-insensitive (RFC 7235)
        (f"Bearer   {TOKENS[0]} ", True),
        (TOKENS[0], False),  # no scheme
        (f"Basic {TOKENS[0]}", False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Bearer {TOKENS[0]}x", False),
        ("Bearer älpha", False),
    ],
)
def test_accepts(header, ok):
    assert Access(tokens=TOKENS).accepts(header) is ok


# --- HTTP middleware --------------------------------------------------------------------


def _app(seen: list[str]) -> Starlette:
    async def endpoint(request):
        seen.append(request.url.path)
        await request.body()
        return PlainTextResponse("ok")

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    paths = ["/predict", "/healthz", "/livez", "/readyz", "/metrics", "/", "/docs.json"]
    routes = [Route(p, endpoint, methods=["GET", "POST"]) for p in paths]
    routes += [Route("/static_content/{f}", endpoint), WebSocketRoute("/ws", ws)]
    return Starlette(routes=routes)


def _client(acc: Access, seen: list[str]) -> TestClient:
    return TestClient(BearerAuthMiddleware(_app(seen), access=acc))


def test_middleware_refuses_missing_and_wrong_tokens_without_calling_the_app():
    seen: list[str] = []
    client = _client(Access(tokens=TOKENS), seen)
    r = client.post("/predict", content=b"x" * 1000)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="har"'
    assert r.headers["content-type"] == "application/json"
    assert "Authorization: Bearer" in r.json()["error"]
    r = client.post("/predict", headers={"Authorization": "Bearer wrong"}, content=b"{}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="har", error="invalid_token"'
    assert r.json() == {"error": "invalid bearer token"}
    r = client.get("/unknown/path")
    assert r.status_code == 401  # unknown paths are not told apart from known ones
    assert seen == []


def test_middleware_passes_requests_with_a_configured_token():
    seen: list[str] = []
    client = _client(Access(tokens=TOKENS), seen)
    for token in TOKENS:
        r = client.post("/predict", headers={"authorization": f"Bearer {token}"}, content=b"{}")
        assert (r.status_code, r.text) == (200, "ok")
    assert seen == ["/predict", "/predict"]
    assert client.get("/nope", headers={"authorization": f"Bearer {TOKENS[0]}"}).status_code == 404


@pytest.mark.parametrize("metrics_auth", [False, True])
def test_probes_and_docs_are_open_metrics_only_when_configured(metrics_auth):
    seen: list[str] = []
    client = _client(Access(tokens=TOKENS, metrics_auth=metrics_auth), seen)
    for path in ("/healthz", "/livez", "/readyz", "/", "/docs.json", "/static_content/a.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/metrics").status_code == (401 if metrics_auth else 200)
    ok = client.get("/metrics", headers={"authorization": f"Bearer {TOKENS[0]}"})
    assert ok.status_code == 200
    for near_miss in ("/healthz/", "/readyz/x", "/metricsx", "/docs.json/x"):
        assert client.get(near_miss).status_code == 401, near_miss


def test_middleware_is_a_pass_through_when_off():
    seen: list[str] = []
    client = _client(Access(), seen)
    assert client.post("/predict", content=b"{}").status_code == 200
    assert seen == ["/predict"]


def test_websocket_without_token_is_closed_with_policy_violation():
    client = _client(Access(tokens=TOKENS), [])
    with pytest.raises(WebSocketDisconnect) as err, client.websocket_connect("/ws"):
        pass
    assert err.value.code == 1008
    headers = {"authorization": f"Bearer {TOKENS[0]}"}
    with client.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_text() == "hi"


# --- gRPC interceptor -------------------------------------------------------------------

ECHO = "test.Echo"


def _echo_handlers() -> grpc.GenericRpcHandler:
    async def unary(request: bytes, context) -> bytes:
        return b"echo:" + request

    async def stream(requests, context):
        async for r in requests:
            yield b"echo:" + r

    return grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
            "Parsed": grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=health_pb2.HealthCheckRequest.FromString
            ),
        },
    )


async def _serve(acc: Access) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=acc.grpc_interceptors())
    server.add_generic_rpc_handlers((_echo_handlers(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((ECHO, health.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _calls(target: str, metadata) -> dict[str, object]:
    """The outcome (reply or status code) of each kind of call with ``metadata``."""

    async def outcome(coro):
        try:
            return await coro
        except grpc.aio.AioRpcError as exc:
            return exc.code()

    async with grpc.aio.insecure_channel(target) as ch:
        unary = ch.unary_unary(f"/{ECHO}/Unary")
        stream = ch.stream_stream(f"/{ECHO}/Stream")
        parsed = ch.unary_unary(f"/{ECHO}/Parsed")

        async def stream_all():
            call = stream(iter([b"a", b"b"]), metadata=metadata, timeout=5)
            return [r async for r in call]

        async def reflect():
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            call = stub.ServerReflectionInfo(iter([req]), metadata=metadata, timeout=5)
            return sorted(
                s.name for r in [await call.read()] for s in r.list_services_response.service
            )

        return {
            "unary": await outcome(unary(b"x", metadata=metadata, timeout=5)),
            "stream": await outcome(stream_all()),
            "garbage": await outcome(parsed(b"\xff\xff\xff", metadata=metadata, timeout=5)),
            "unknown": await outcome(
                ch.unary_unary("/no.Such/Method")(b"", metadata=metadata, timeout=5)
            ),
            "reflection": await outcome(reflect()),
            "health": await outcome(
                health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), metadata=metadata, timeout=5
                )
            ),
        }


def test_interceptor_on_a_real_grpc_server():
    async def main():
        server, target = await _serve(Access(tokens=TOKENS))
        try:
            none = await _calls(target, None)
            wrong = await _calls(target, (("authorization", "Bearer nope"),))
            right = await _calls(target, (("authorization", f"Bearer {TOKENS[1]}"),))
        finally:
            await server.stop(None)
        return none, wrong, right

    none, wrong, right = asyncio.run(main())
    unauth = grpc.StatusCode.UNAUTHENTICATED
    serving = health_pb2.HealthCheckResponse.SERVING
    for refused in (none, wrong):
        assert {k: v for k, v in refused.items() if k != "health"} == {
            "unary": unauth,
            "stream": unauth,
            "garbage": unauth,  # a refused request's bytes are never parsed
            "unknown": unauth,  # unknown methods are not told apart from known ones
            "reflection": unauth,
        }
        assert refused["health"].status == serving
    assert right["unary"] == b"echo:x"
    assert right["stream"] == [b"echo:a", b"echo:b"]
    assert right["garbage"] != unauth  # parsed, and refused as unparsable
    assert right["unknown"] == grpc.StatusCode.UNIMPLEMENTED
    assert right["reflection"] == sorted([ECHO, health.SERVICE_NAME])
    assert right["health"].status == serving


def test_interceptor_messages_say_what_to_send():
    async def main():
        server, target = await _serve(Access(tokens=TOKENS))
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                call = ch.unary_unary(f"/{ECHO}/Unary")
                details = []
                for md in (None, (("authorization", "Bearer nope"),)):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(b"x", metadata=md, timeout=5)
                    details.append(err.value.details())
                return details
        finally:
            await server.stop(None)

    missing, wrong = asyncio.run(main())
    assert "authorization: Bearer <token>" in missing
    assert wrong == "invalid bearer token"
