"""Client-input and resource-bound cases over HTTP (issue 10, items 2-4).

Each case sends a few hostile or malformed requests to a running server and returns a
:class:`~load_tests.reliability.common.Result`: a 5xx is always a failure, and so is
an answer that accepted what should have been refused (named in ``problems``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from .common import Result, csv_rows, http_call, multipart, post_json
from .servers import Target

MP = "multipart/form-data; boundary=harbnd"
WINDOW = [[0.1, 0.1, 9.81, 0.1, 0.1, 0.1]] * 200


def _upload(t: Target, r: Result, body: bytes, what: str, ctype: str = MP) -> int:
    status, _, _ = http_call(t.port, "POST", "/predict_recording", body, {"content-type": ctype})
    return r.http(status, what)


def csv_gap_1e12(t: Target) -> Result:
    """2 rows 1e12 s apart: must be refused (or split) without allocating the gap."""
    r = Result("csv: 2 rows 1e12 s apart")
    t0 = time.monotonic()
    s = _upload(t, r, multipart([("file", "gap.csv", csv_rows([0.0, 1e12]))]), "")
    r.expect(time.monotonic() - t0 < 10, f"took {time.monotonic() - t0:.0f} s")
    r.expect(s != 0, "no answer")
    return r


def csv_span_4000s(t: Target) -> Result:
    """2 rows 4,000 s apart: a gap longer than the fill limit must split, not interpolate."""
    r = Result("csv: 2 rows spanning 4,000 s")
    body = multipart([("file", "span.csv", csv_rows([0.0, 4000.0]))])
    status, data, _ = http_call(t.port, "POST", "/predict_recording", body, {"content-type": MP})
    r.http(status)
    if status == 200:
        n = len(json.loads(data).get("windows", []))
        r.expect(n == 0, f"200 with {n} windows of interpolated data")
    return r


def slow_body(t: Target) -> Result:
    """Content-Length 1000, 16 bytes sent, then silence: how long the server holds it."""
    r = Result("Content-Length 1000, 16 bytes sent")
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", t.port), timeout=t.hold_s) as s:
        s.sendall(head + b'{"windows": [[[1')
        try:
            answer = s.recv(4096)
        except TimeoutError:
            answer = None
    held = time.monotonic() - t0
    r.requests = 1
    if answer is None:
        r.problems.append(f"held open >= {held:.0f} s (no answer, not closed)")
    else:
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        r.http(status, f"after {held:.0f} s: ")
        r.requests = 1
        r.expect(held <= 30, f"held open {held:.0f} s")
    r.recovery_s = held
    return r


def chunked_over_limit(t: Target) -> Result:
    """A body over the size limit sent chunked (no Content-Length): 413, not 500."""
    r = Result("chunked body over the limit")
    piece = b" " * 65536
    chunks = [b'{"windows": ', *([piece] * (t.max_body // len(piece) + 2)), b"[]}"]
    status, _, _ = http_call(
        t.port, "POST", "/predict", iter(chunks), {"content-type": "application/json"}
    )
    r.expect(r.http(status) == 413, f"{status} instead of 413")
    return r


def multipart_to_predict(t: Target) -> Result:
    """Multipart bodies (valid, without a boundary, garbage) to the JSON endpoint /predict."""
    r = Result("multipart to /predict")
    good = multipart([("windows", None, json.dumps([WINDOW]).encode())])
    as_file = multipart([("windows", "w.json", json.dumps([WINDOW]).encode())])
    for what, ctype, body in (
        ("valid ", MP, good),  # BentoML reads form fields as arguments: 200 is fine
        ("windows as a file ", MP, as_file),
        ("no boundary ", "multipart/form-data", good),
        ("garbage ", MP, b"--harbnd\r\n\x00\xff garbage"),
    ):
        s = r.http(http_call(t.port, "POST", "/predict", body, {"content-type": ctype})[0], what)
        r.expect(s == 200 or 400 <= s < 500, f"{what.strip()}: {s}")
    return r


def undeclared_content_types(t: Target) -> Result:
    """Bodies in content types the API does not declare, to both POST endpoints."""
    r = Result("undeclared content types")
    for path in ("/predict", "/predict_recording"):
        for ctype in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
            s = http_call(t.port, "POST", path, b"windows=1", {"content-type": ctype})[0]
            r.expect(400 <= r.http(s, f"{path} {ctype} ") < 500, f"{path} {ctype}: {s}")
    return r


def multipart_recording_garbage(t: Target) -> Result:
    """/predict_recording with a multipart body lacking its boundary, or garbage."""
    r = Result("bad multipart to /predict_recording")
    good = multipart([("file", "a.csv", csv_rows([0.0, 0.02]))])
    for what, ctype, body in (
        ("no boundary ", "multipart/form-data", good),
        ("garbage ", MP, b"--harbnd\r\n\x00\xff garbage"),
        ("wrong boundary ", "multipart/form-data; boundary=other", good),
    ):
        s = _upload(t, r, body, what, ctype)
        r.expect(400 <= s < 500, f"{what.strip()}: {s}")
    return r


def file_as_text_field(t: Target) -> Result:
    """``file`` sent as a text field (no filename) holding CSV text: 400."""
    r = Result("file as a text field")
    s = _upload(t, r, multipart([("file", None, csv_rows([0.0, 0.02]))]), "")
    r.expect(400 <= s < 500, f"{s} instead of 4xx")
    return r


def drift_since_overflow(t: Target) -> Result:
    """``GET /monitoring/drift?since=99999999d``: a date overflow is the client's error."""
    r = Result("drift since=99999999d")
    for q in ("since=99999999d", "since=-99999999d", "until=9999-12-31T23:59:59%2B99:00"):
        s = r.http(http_call(t.port, "GET", f"/monitoring/drift?{q}")[0], f"{q} ")
        r.expect(s == 400 or s == 404, f"{q}: {s}")
    return r


def overflow_after_units(t: Target) -> Result:
    """3e38 declared as g overflows float32 after conversion: must be refused."""
    r = Result("http: 3e38 declared as g")
    window = [[3e38, 3e38, 3e38, 0.0, 0.0, 0.0]] * 200
    status, body = post_json(t.port, "/predict", {"windows": [window], "units": {"acc": "g"}})
    r.http(status)
    if status == 200:
        conf = [p.get("confidence") for p in body["predictions"]]
        r.expect(False, f"200 with confidence {conf}")
    return r


class _Listener:
    """A TCP listener on 127.0.0.1 that counts connections (nothing may connect)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def url_as_file(t: Target) -> Result:
    """A URL string in place of a file (JSON and multipart): 400, and no connection made."""
    r = Result("URL string as a file field")
    listener = _Listener()
    try:
        url = f"http://127.0.0.1:{listener.port}/recording.csv"
        s = post_json(t.port, "/predict_recording", {"file": [url]})[0]
        r.expect(400 <= r.http(s, "json ") < 500, f"json: {s}")
        s = _upload(t, r, multipart([("file", None, url.encode())]), "multipart ")
        r.expect(400 <= s < 500, f"multipart: {s}")
        time.sleep(0.5)
    finally:
        listener.close()
    r.expect(listener.connections == 0, f"the server connected {listener.connections}x")
    return r


def file_path_as_file(t: Target) -> Result:
    """A ``file://`` path (and a bare path) in place of a file: 400, and the file not read."""
    r = Result("file:// path as a file field")
    secret = t.tmp / "secret.csv"
    secret.write_bytes(csv_rows([i * 0.02 for i in range(400)]))
    st = secret.stat()
    os.utime(secret, (st.st_mtime - 1000, st.st_mtime))  # relatime then records a read
    before = secret.stat().st_atime
    for what, ref in (("file:// ", secret.as_uri()), ("path ", str(secret))):
        s = post_json(t.port, "/predict_recording", {"file": [ref]})[0]
        r.expect(400 <= r.http(s, f"json {what}") < 500, f"json {what.strip()}: {s}")
        s = _upload(t, r, multipart([("file", None, ref.encode())]), f"multipart {what}")
        r.expect(400 <= s < 500, f"multipart {what.strip()}: {s}")
    r.expect(secret.stat().st_atime == before, "the server read the file")
    return r


#: Every HTTP case, in the order the harness runs them.
CASES = (
    csv_gap_1e12,
    csv_span_4000s,
    chunked_over_limit,
    multipart_to_predict,
    multipart_recording_garbage,
    undeclared_content_types,
    file_as_text_field,
    drift_since_overflow,
    overflow_after_units,
    url_as_file,
    file_path_as_file,
    slow_body,
)
