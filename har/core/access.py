"""Optional bearer tokens for the HTTP and gRPC APIs (off unless tokens are configured).

Tokens come from ``HAR_API_TOKENS`` (comma-separated) and/or ``HAR_API_TOKENS_FILE``
(one per line; blank lines and lines starting with ``#`` are ignored); both sources
are merged. With at least one token configured:

- HTTP: every request needs ``Authorization: Bearer <token>``, except the probes
  ``/healthz``, ``/livez``, ``/readyz``, the docs page (``/``, ``/docs.json`` and its
  ``/static_content/`` assets: a browser cannot send a bearer token to it, and it
  describes the API without serving any data) and ``/metrics`` (unless
  ``HAR_METRICS_AUTH=1``). Missing or wrong token: 401 with ``WWW-Authenticate: Bearer``
  and a JSON ``{"error": ...}`` body; the request body is never read.
- gRPC: every call needs the metadata ``authorization: Bearer <token>`` except
  ``grpc.health.v1.Health``; server reflection needs it too (``grpcurl -H
  'authorization: Bearer <token>'`` sends it with reflection calls). Missing or wrong
  token: ``UNAUTHENTICATED``; the request message is never parsed.

A presented token is compared with :func:`hmac.compare_digest` against every
configured token (no early exit), so the answer time does not depend on which
token, or which prefix of one, matched.

``service.py`` wires it::

    access = Access.from_settings(settings)
    HARService.add_asgi_middleware(BearerAuthMiddleware, access=access)
    await start_grpc_server(..., interceptors=access.grpc_interceptors())
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc

from har.core.answers import error_answer_bytes
from har.settings import Settings

logger = logging.getLogger(__name__)

#: HTTP paths that never need a token (probes, and the docs page with its assets).
OPEN_PATHS: frozenset[str] = frozenset({"/healthz", "/livez", "/readyz", "/", "/docs.json"})
#: Path prefixes that never need a token (the docs page's JavaScript and CSS).
OPEN_PREFIXES: tuple[str, ...] = ("/static_content/", "/assets/")
METRICS_PATH = "/metrics"
#: gRPC methods under this prefix never need a token (load balancers and Kubernetes probe it).
GRPC_OPEN_PREFIX = "/grpc.health.v1.Health/"
#: RFC 6750 ``b64token``: what may follow ``Bearer`` in a header (and in gRPC metadata).
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MISSING = "missing bearer token: send the header 'Authorization: Bearer <token>'"
_MISSING_GRPC = "missing bearer token: send the metadata 'authorization: Bearer <token>'"
_INVALID = "invalid bearer token"


class AccessConfigError(ValueError):
    """The token settings cannot be used (unreadable file, a token with invalid characters)."""


def parse_tokens(text: str, *, source: str, separator: str | None = None) -> list[str]:
    """Tokens in ``text``: split on ``separator`` (``None``: lines), stripped, empties dropped.

    Lines starting with ``#`` are comments when reading line by line.

    Raises:
        AccessConfigError: a token is not an RFC 6750 ``b64token`` (letters, digits,
            ``-._~+/``, trailing ``=``), naming ``source`` and the item's position.
    """
    items = text.splitlines() if separator is None else text.split(separator)
    tokens = []
    for i, raw in enumerate(items, start=1):
        item = raw.strip()
        if not item or (separator is None and item.startswith("#")):
            continue
        if not _TOKEN.fullmatch(item):
            where = f"line {i}" if separator is None else f"item {i}"
            raise AccessConfigError(
                f"{source} {where}: a token may hold only letters, digits and -._~+/ "
                "(optionally ending in =)"
            )
        tokens.append(item)
    return tokens


def load_tokens(tokens: str, tokens_file: Path | None) -> tuple[str, ...]:
    """The configured tokens: ``tokens`` (comma-separated) plus the lines of ``tokens_file``.

    Raises:
        AccessConfigError: the file cannot be read, or a token is malformed.
    """
    found = parse_tokens(tokens, source="HAR_API_TOKENS", separator=",")
    if tokens_file is not None:
        try:
            text = Path(tokens_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AccessConfigError(
                f"HAR_API_TOKENS_FILE: cannot read {tokens_file}: {exc}"
            ) from exc
        found += parse_tokens(text, source=f"HAR_API_TOKENS_FILE ({tokens_file})")
    return tuple(dict.fromkeys(found))  # de-duplicated, order kept


@dataclass(frozen=True)
class Access:
    """Who may call the APIs: the configured bearer tokens (none: everyone).

    Attributes:
        tokens: the accepted tokens (empty: access control is off).
        metrics_auth: ``/metrics`` needs a token too.
    """

    tokens: tuple[str, ...] = field(default=(), repr=False)
    metrics_auth: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """Read ``HAR_API_TOKENS``, ``HAR_API_TOKENS_FILE`` and ``HAR_METRICS_AUTH``.

        Raises:
            AccessConfigError: see :func:`load_tokens` (raised at start-up, not per request).
        """
        tokens = load_tokens(settings.api_tokens.get_secret_value(), settings.api_tokens_file)
        if (settings.api_tokens.get_secret_value() or settings.api_tokens_file) and not tokens:
            raise AccessConfigError(
                "HAR_API_TOKENS / HAR_API_TOKENS_FILE are set but hold no token; "
                "unset them to switch access control off"
            )
        return cls(tokens=tokens, metrics_auth=settings.metrics_auth)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    @cached_property
    def _encoded(self) -> tuple[bytes, ...]:
        return tuple(t.encode("ascii") for t in self.tokens)

    def accepts(self, authorization: str | bytes | None) -> bool:
        """Whether an ``Authorization`` value (``"Bearer <token>"``) carries a configured token.

        The scheme is case-insensitive; the token is compared in constant time with every
        configured token.
        """
        if not self.tokens:
            return True
        if authorization is None:
            return False
        raw = authorization.encode() if isinstance(authorization, str) else authorization
        scheme, _, presented = raw.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        presented = presented.strip()
        matched = False
        for token in self._encoded:
            matched |= hmac.compare_digest(presented, token)
        return matched

    def http_path_is_open(self, path: str) -> bool:
        """Whether an HTTP request to ``path`` is served without a token."""
        if path == METRICS_PATH:
            return not self.metrics_auth
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The interceptors ``start_grpc_server`` needs (none when access control is off)."""
        return [BearerAuthInterceptor(self)] if self.enabled else []


class BearerAuthMiddleware:
    """ASGI middleware answering 401 to HTTP requests without a configured bearer token.

    Args:
        app: the wrapped ASGI application.
        access: the tokens and open paths (a pass-through when ``access.enabled`` is false).
    """

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if (
            not self.access.enabled
            or kind not in ("http", "websocket")
            or self.access.http_path_is_open(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if self.access.accepts(header):
            await self.app(scope, receive, send)
            return
        logger.debug("401 for %s %s", scope.get("method", kind), scope.get("path"))
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        challenge = b'Bearer realm="har"'
        if header is not None:
            challenge += b', error="invalid_token"'
        body = error_answer_bytes(_MISSING if header is None else _INVALID)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _metadata_value(metadata: Sequence[Any] | None, key: str) -> str | bytes | None:
    for item in metadata or ():
        k, v = item
        if k == key:
            return v  # type: ignore[no-any-return]
    return None


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """``grpc.aio`` interceptor answering ``UNAUTHENTICATED`` to calls without a token.

    ``grpc.health.v1.Health`` is always open. A refused call gets a handler of the same
    streaming kind that never deserializes the request and aborts at once.
    """

    def __init__(self, access: Access) -> None:
        self.access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method.startswith(GRPC_OPEN_PREFIX):
            return await continuation(handler_call_details)
        presented = _metadata_value(handler_call_details.invocation_metadata, "authorization")
        if self.access.accepts(presented):
            return await continuation(handler_call_details)
        logger.debug("UNAUTHENTICATED for %s", method)
        handler = await continuation(handler_call_details)
        return _refusing_handler(handler, _MISSING_GRPC if presented is None else _INVALID)


def _refusing_handler(handler: grpc.RpcMethodHandler | None, message: str) -> Any:
    """A handler shaped like ``handler`` (unary/stream in and out) that aborts UNAUTHENTICATED."""

    request_streaming = bool(handler and handler.request_streaming)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        if request_streaming:
            await _drain(request)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    response_streaming = bool(handler and handler.response_streaming)
    serializer = handler.response_serializer if handler else None
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(request_streaming, response_streaming)]
    # No request deserializer: the refused request's bytes are never parsed.
    return make(refuse, request_deserializer=None, response_serializer=serializer)


async def _drain(requests: Any) -> None:
    """Let a refused client finish sending (a few messages, a short time; never parsed).

    A call ended while grpc.aio's client is still writing its request iterator fails
    there as INTERNAL ("Internal error from Core") instead of with our status (1 in 3
    refused streams in a reproduction); reading what the client already sent avoids that.
    """
    import asyncio
    import contextlib

    async def read() -> None:
        n = 0
        async for _ in requests:
            n += 1
            if n >= _DRAIN_MESSAGES:
                return

    with contextlib.suppress(TimeoutError, grpc.RpcError):
        await asyncio.wait_for(read(), timeout=_DRAIN_SECONDS)


#: Bounds of what a refused streaming call may still send before its status.
_DRAIN_MESSAGES = 64
_DRAIN_SECONDS = 1.0


__all__ = [
    "GRPC_OPEN_PREFIX",
    "OPEN_PATHS",
    "Access",
    "AccessConfigError",
    "BearerAuthInterceptor",
    "BearerAuthMiddleware",
    "load_tokens",
    "parse_tokens",
]
