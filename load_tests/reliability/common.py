"""What every reliability case reports, the table, and small HTTP / gRPC helpers."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

#: gRPC codes that mean "the server broke", never acceptable for any client input.
BAD_GRPC = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
#: gRPC codes that correctly reject a client's input.
REJECTED_GRPC = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
PREDICT = "/har.v1.ActivityRecognition/Predict"
STREAM = "/har.v1.ActivityRecognition/StreamPredict"
GET_MODEL = "/har.v1.ActivityRecognition/GetModel"
CSV_HEADER = "timestamp,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n"


@dataclass
class Result:
    """One case: requests sent, server faults seen, and what else was wrong ('' = nothing).

    ``rows_lost``: served windows missing from the profile files on disk (kill cases);
    ``recovery_s``: seconds from the fault until a request succeeded again.
    """

    case: str
    requests: int = 0
    http_5xx: int = 0
    grpc_bad: int = 0
    rows_lost: int | None = None
    recovery_s: float | None = None
    problems: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.http_5xx or self.grpc_bad or self.problems)

    def http(self, status: int, what: str = "") -> int:
        """Count one HTTP answer (``status`` 0: no answer); return the status."""
        self.requests += 1
        self.http_5xx += int(status >= 500)
        self.seen.append(f"{what}{status}" if what else str(status))
        return status

    def grpc(self, code: grpc.StatusCode, what: str = "") -> grpc.StatusCode:
        """Count one gRPC answer; return its code."""
        self.requests += 1
        self.grpc_bad += int(code in BAD_GRPC)
        self.seen.append(f"{what}{code.name}" if what else code.name)
        return code

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def summary(self) -> str:
        """One line: the case, its counts and what was wrong."""
        return (
            f"{self.case}: {self.requests} requests, {self.http_5xx} 5xx, "
            f"{self.grpc_bad} UNKNOWN/INTERNAL; {'; '.join(self.problems) or 'ok'} "
            f"(seen: {_compact(self.seen)})"
        )


def _compact(seen: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for s in seen:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items())


def table(results: Iterable[Result]) -> str:
    """The Markdown table: case, requests, 5xx, UNKNOWN/INTERNAL, rows lost, recovery s."""
    head = "| case | requests | 5xx | UNKNOWN/INTERNAL | rows lost | recovery s | verdict |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lost = "" if r.rows_lost is None else str(r.rows_lost)
        rec = "" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        faults = [f"{r.http_5xx} x 5xx"] * bool(r.http_5xx)
        faults += [f"{r.grpc_bad} x UNKNOWN/INTERNAL"] * bool(r.grpc_bad)
        text = "; ".join(faults + [p for p in r.problems if p not in faults])
        verdict = (
            "FAIL: " + (text if len(text) <= 160 else text[:157] + "...") if r.failed else "ok"
        )
        lines.append(
            f"| {r.case} | {r.requests} | {r.http_5xx} | {r.grpc_bad} | {lost} | {rec} | "
            f"{verdict.replace('|', '/')} |"
        )
    return "\n".join(lines)


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes, float]:
    """One request to 127.0.0.1:``port``: (status, body, seconds); status 0 = no answer.

    An iterable ``body`` without Content-Length is sent chunked.
    """
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=dict(headers or {}), encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return 0, b"", time.monotonic() - t0
    finally:
        conn.close()


def post_json(port: int, path: str, payload: Any, timeout: float = 60.0) -> tuple[int, Any]:
    """POST ``payload`` as JSON; (status, decoded body or the raw text)."""
    status, data, _ = http_call(
        port,
        "POST",
        path,
        json.dumps(payload).encode(),
        {"content-type": "application/json"},
        timeout,
    )
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode(errors="replace")


def multipart(fields: Iterable[tuple[str, str | None, bytes]], boundary: str = "harbnd") -> bytes:
    """A multipart/form-data body from (name, filename or None for a text field, content)."""
    out = b""
    for name, filename, content in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if filename:
            out += b"Content-Type: text/csv\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def csv_rows(times: Iterable[float], value: float = 0.1) -> bytes:
    """A canonical CSV: one row per timestamp (s), every channel ``value`` (acc_z 9.81)."""
    rows = [f"{t!r},{value},{value},9.81,{value},{value},{value}\n" for t in times]
    return (CSV_HEADER + "".join(rows)).encode()


def grpc_code(call: Any) -> tuple[grpc.StatusCode, Any]:
    """Run ``call()``; its status code and its answer (None on an error)."""
    try:
        return grpc.StatusCode.OK, call()
    except grpc.RpcError as exc:
        return exc.code(), None  # type: ignore[attr-defined]
