"""What operators see of the gRPC server: request metrics, spans, and a test-only fault hook.

:class:`ObservabilityInterceptor` wraps every method of every service on the server it is
registered with (``har.v1``, health, reflection, and any service added later), outermost,
so that calls refused by the token check count too. Per call it records, in the metrics
of :mod:`har.monitoring.metrics`:

* ``har_grpc_server_started_total`` and, when the call ends,
  ``har_grpc_server_handled_total`` with its status code (``OK`` when the handler
  returned; the code it aborted with; ``UNKNOWN`` for an exception that escaped it;
  ``DEADLINE_EXCEEDED`` or ``CANCELLED`` when the call was cancelled under it);
* ``har_grpc_server_handling_seconds`` (a stream: from its start to its end);
* for streaming calls, ``har_grpc_server_msg_received_total`` /
  ``har_grpc_server_msg_sent_total`` and ``har_grpc_server_open_streams``.

Label values are bounded: ``grpc_service`` and ``grpc_method`` come from the method's
path only when the server has a handler for it; any other path is counted once as
``unknown``/``unknown`` (code ``UNIMPLEMENTED``) and left to gRPC to refuse.

With a tracer (``HAR_TRACING=1``) each call is a ``SERVER`` span named
``<service>/<method>`` (attributes ``rpc.system``, ``rpc.service``, ``rpc.method``,
``rpc.grpc.status_code``), a child of the W3C ``traceparent`` in the call's metadata if
the client sent one; the model call made for it is its child span
(:func:`har.serving.model_client.observed`).

Fault injection (``HAR_FAULT_INJECTION=1``, for tests only): a call whose metadata has
``x-har-fault: internal`` or ``x-har-fault: unavailable`` runs with
:data:`har.domain.model_call.INJECTED_FAULT` set, so its model call fails as a broken
model (``INTERNAL``) or an unreachable model service (``UNAVAILABLE``) would, through
the servicer's own error handling (a ``StreamPredict`` fails at its first window).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import grpc

from har.domain.model_call import FAULTS, INJECTED_FAULT
from har.monitoring.metrics import UNKNOWN, GrpcMetrics

#: The metadata key of an injected fault (read only with ``HAR_FAULT_INJECTION=1``).
FAULT_METADATA = "x-har-fault"
#: Codes a span marks as an error of the server (OpenTelemetry's RPC conventions).
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}
_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def split_method(path: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``; anything else → unknown."""
    service, sep, method = path.lstrip("/").rpartition("/")
    if not sep or not service or not method:
        return UNKNOWN, UNKNOWN
    return service, method


@contextmanager
def _accounted(call: _Call, context: grpc.aio.ServicerContext) -> Iterator[None]:
    """One call's span, counts and duration around its handler, with the call's injected
    fault (if any) set for the handler's model calls; ends the call with the handler's
    status (an exception's, else the context's)."""
    with call.span() as span:
        call.begin()
        token = INJECTED_FAULT.set(call.fault) if call.fault else None
        try:
            yield
        except BaseException as exc:
            call.end(status_of(context, exc), span)
            raise
        finally:
            if token is not None:
                INJECTED_FAULT.reset(token)
        call.end(status_of(context, None), span)


def _handler(make: Callable[..., Any], behaviour: Any, handler: Any) -> Any:
    """``make`` (a ``grpc.*_rpc_method_handler``) of ``behaviour`` with ``handler``'s
    (de)serializers."""
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def status_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    """The status a call ends with, after its handler returned (``exc=None``) or raised."""
    if isinstance(exc, BaseException) and not isinstance(exc, Exception):  # cancelled
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    code: Any = context.code()
    if isinstance(code, int):
        code = _BY_VALUE.get(code)
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


class _Children:
    """The metric children of one method (looked up once: label lookups take a lock)."""

    def __init__(self, m: GrpcMetrics, service: str, method: str, kind: str) -> None:
        self.labels = (service, method, kind)
        self.started = m.started.labels(service, method, kind)
        self.handled = m.handled
        self.by_code: dict[grpc.StatusCode, Any] = {}
        self.handling = m.handling.labels(service, method)
        self.received = m.received.labels(service, method)
        self.sent = m.sent.labels(service, method)
        self.open = m.open_streams.labels(service, method)

    def code(self, code: grpc.StatusCode) -> Any:
        child = self.by_code.get(code)
        if child is None:
            child = self.by_code[code] = self.handled.labels(*self.labels, code.name)
        return child


class _Call:
    """One call's metric children, span and timing."""

    def __init__(
        self,
        obs: ObservabilityInterceptor,
        service: str,
        method: str,
        kind: str,
        metadata: Any,
    ) -> None:
        self.kind, self.tracer = kind, obs.tracer
        self.service, self.method = service, method
        self.metadata = metadata
        self.streaming = kind != "unary"
        self.m = obs.children(service, method, kind)
        self.received = self.m.received if self.m is not None else None
        self.sent = self.m.sent if self.m is not None else None
        self.fault = obs.fault_of(metadata)
        self.started = 0.0

    def begin(self) -> None:
        self.started = time.perf_counter()
        if self.m is not None:
            self.m.started.inc()
            if self.streaming:
                self.m.open.inc()

    def end(self, code: grpc.StatusCode, span: Any) -> None:
        if self.m is not None:
            self.m.handling.observe(time.perf_counter() - self.started)
            self.m.code(code).inc()
            if self.streaming:
                self.m.open.dec()
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERRORS:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, code.name))

    def span(self) -> Any:
        if self.tracer is None:
            return nullcontext()
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        carrier = {k: v for k, v in self.metadata or () if isinstance(v, str)}
        return self.tracer.start_as_current_span(
            f"{self.service}/{self.method}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": self.service,
                "rpc.method": self.method,
            },
            record_exception=False,
            set_status_on_exception=False,
        )

    async def counted(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for r in requests:
            self.received.inc()  # type: ignore[union-attr]
            yield r


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Metrics and spans for every call (see the module's docstring).

    Args:
        metrics: :func:`har.monitoring.metrics.grpc_metrics` (``None``: no metrics).
        tracer: an OpenTelemetry tracer (``None``: no spans).
        fault_injection: honour the ``x-har-fault`` metadata (tests only).
    """

    def __init__(
        self,
        metrics: GrpcMetrics | None,
        tracer: Any = None,
        *,
        fault_injection: bool = False,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.fault_injection = fault_injection
        self._children: dict[tuple[str, str, str], _Children] = {}

    def children(self, service: str, method: str, kind: str) -> _Children | None:
        """The metric children of a method the server has a handler for (bounded)."""
        if self.metrics is None:
            return None
        key = (service, method, kind)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = _Children(self.metrics, service, method, kind)
        return found

    def fault_of(self, metadata: Any) -> str | None:
        """The fault a call asks for (``None`` unless fault injection is on)."""
        if not self.fault_injection:
            return None
        for key, value in metadata or ():
            if key == FAULT_METADATA and value in FAULTS:
                return str(value)
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            if self.metrics is not None:
                self.metrics.started.labels(UNKNOWN, UNKNOWN, UNKNOWN).inc()
                self.metrics.handled.labels(
                    UNKNOWN, UNKNOWN, UNKNOWN, grpc.StatusCode.UNIMPLEMENTED.name
                ).inc()
            return handler
        service, method = split_method(handler_call_details.method)
        kind = _TYPES[(bool(handler.request_streaming), bool(handler.response_streaming))]
        metadata = handler_call_details.invocation_metadata
        return self._wrap(handler, lambda: _Call(self, service, method, kind, metadata))

    def _wrap(self, handler: Any, new_call: Callable[[], _Call]) -> Any:
        rs, ss = bool(handler.request_streaming), bool(handler.response_streaming)
        if not ss:
            behaviour = handler.stream_unary if rs else handler.unary_unary

            async def unary_out(request: Any, context: grpc.aio.ServicerContext) -> Any:
                call = new_call()
                with _accounted(call, context):
                    if rs and call.received is not None:
                        request = call.counted(request)
                    return await behaviour(request, context)

            unary = (
                grpc.stream_unary_rpc_method_handler if rs else grpc.unary_unary_rpc_method_handler
            )
            return _handler(unary, unary_out, handler)

        behaviour = handler.stream_stream if rs else handler.unary_stream

        async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = new_call()
            with _accounted(call, context):
                if rs and call.received is not None:
                    request = call.counted(request)
                replies = behaviour(request, context)
                if hasattr(replies, "__aiter__"):
                    async for message in replies:
                        if call.sent is not None:
                            call.sent.inc()
                        yield message
                else:  # a coroutine that writes with context.write() (not counted)
                    await replies

        streaming = (
            grpc.stream_stream_rpc_method_handler if rs else grpc.unary_stream_rpc_method_handler
        )
        return _handler(streaming, stream_out, handler)
