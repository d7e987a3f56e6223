"""A minimal OTLP/HTTP trace receiver for tests: what a collector would get, decoded.

No OpenTelemetry Collector (or Jaeger) binary installs on these machines, so the e2e
tests point ``HAR_TRACING_ENDPOINT`` at this receiver instead: an HTTP server on
127.0.0.1 that accepts ``POST /v1/traces`` bodies in the OTLP protobuf encoding
(``application/x-protobuf``, optionally gzip), decodes each with opentelemetry-proto's
``ExportTraceServiceRequest`` — the message a collector decodes — and keeps the spans
(or, with ``keep=False``, for a benchmark's long runs, only counts them).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    """One received span (ids as hex, as W3C ``traceparent`` writes them)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind (2 = SERVER)
    service: str  # the resource's service.name (BentoML: the service's name)
    attributes: dict[str, object] = field(default_factory=dict)
    status_code: int = 0  # 0 unset, 1 ok, 2 error


def _value(v: object) -> object:
    which = v.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(v, which) if which else None


def count(body: bytes) -> int:
    """The number of spans in one ``ExportTraceServiceRequest`` (decoded, not kept)."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


def decode(body: bytes) -> list[Span]:
    """The spans of one ``ExportTraceServiceRequest``."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        res = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    Span(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        kind=s.kind,
                        service=str(res.get("service.name", "")),
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        status_code=s.status.code,
                    )
                )
    return out


class Receiver:
    """The spans received so far (thread-safe) and the URL to export to; ``received``
    counts them (also when they are not kept)."""

    def __init__(self, port: int, keep: bool = True) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self.keep = keep
        self.requests = 0
        self.received = 0
        self._spans: list[Span] = []
        self._lock = threading.Lock()

    def add(self, spans: list[Span]) -> None:
        with self._lock:
            self.requests += 1
            self.received += len(spans)
            self._spans += spans

    def add_count(self, n: int) -> None:
        with self._lock:
            self.requests += 1
            self.received += n

    def spans(self, trace_id: str | None = None) -> list[Span]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]


@contextmanager
def otlp_receiver(keep: bool = True) -> Iterator[Receiver]:
    """Serve ``POST /v1/traces`` on a free 127.0.0.1 port until the block ends (``keep``:
    keep the decoded spans, else only count them)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = Receiver(server.server_address[1], keep)
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or "protobuf" not in self.headers.get("content-type", ""):
            self.send_error(415 if self.path == "/v1/traces" else 404)
            return
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        if receiver.keep:
            receiver.add(decode(body))
        else:
            receiver.add_count(count(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:  # quiet
        pass
