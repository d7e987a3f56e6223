"""load_tests.bench.workload: the benchmark's binary bodies carry the same window as its JSON
and repeated-float bodies (a wrong dtype, shape or framing would measure another request)."""

from __future__ import annotations

import json

import numpy as np

from har.v1 import har_pb2
from load_tests.bench.workload import example_window, write_binary_bodies, write_bodies


def unframe(body: bytes) -> har_pb2.PredictRequest:
    assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
    return har_pb2.PredictRequest.FromString(body[5:])


def test_binary_bodies_hold_the_json_window(tmp_path):
    window = example_window()
    json_body, grpc_body = write_bodies(tmp_path, window)
    npy_body, packed_body = write_binary_bodies(tmp_path, window)

    from_json = np.asarray(json.loads(json_body.read_text())["windows"], np.float32)
    from_npy = np.load(npy_body)
    assert from_npy.dtype == np.dtype("<f4") and from_npy.shape == (1, 200, 6)
    np.testing.assert_allclose(from_npy, from_json, atol=1e-4)  # JSON is rounded to 4 places

    values = unframe(grpc_body.read_bytes()).windows[0].values
    packed = unframe(packed_body.read_bytes()).windows[0]
    assert not packed.values and len(packed.packed) == 200 * 6 * 4
    np.testing.assert_array_equal(np.frombuffer(packed.packed, "<f4"), np.asarray(values, "<f4"))


def test_v2_bodies_hold_the_window_and_parse_as_the_server_does(tmp_path):
    """The V2 REST body parses with the server's own parser (binary outputs asked) and the
    framed ModelInferRequest carries the same bytes, for the model it names."""
    from har.core.open_inference import PROBABILITIES, InferenceModel
    from har.core.scorer import Scorer
    from har.http.v2 import parse_infer_body
    from har.oip import open_inference_grpc_pb2 as pb
    from load_tests.bench.workload import grpc_frame, write_v2_bodies
    from tests.helpers.cards import make_card

    window = example_window()
    rest_body, head_len, grpc_body = write_v2_bodies(tmp_path, window, "m")
    model = InferenceModel(Scorer(make_card(["a", "b"]), "m:1", infer=None))  # type: ignore[arg-type]
    parsed = parse_infer_body(model, rest_body.read_bytes(), str(head_len))
    np.testing.assert_array_equal(parsed.inference.windows, window[None])
    assert PROBABILITIES in parsed.binary and len(parsed.binary) == 2
    raw = grpc_body.read_bytes()
    assert grpc_frame(raw[5:]) == raw
    req = pb.ModelInferRequest.FromString(raw[5:])
    assert req.model_name == "m" and list(req.inputs[0].shape) == [1, 200, 6]
    np.testing.assert_array_equal(np.frombuffer(req.raw_input_contents[0], "<f4"), window.ravel())


def test_the_mixed_load_sends_the_held_out_windows_in_turn(tmp_path):
    """wrk with the mixed script POSTs every body of the file (not one body over and over),
    each a one-window JSON request the server's parser accepts, and prints its summary."""
    import shutil
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from har.http.request_body import parse_json
    from load_tests.bench.loadgen import run_wrk, write_wrk_mixed_script
    from load_tests.bench.workload import held_out_windows, write_mixed_bodies

    # a requirement, not a skip: .ci/run and make bench install wrk
    assert shutil.which("wrk"), "wrk is not installed: apt-get install wrk (.ci/run does)"
    windows = held_out_windows()[:3]
    bodies = write_mixed_bodies(tmp_path, windows)
    lines = bodies.read_text().splitlines()
    assert len(lines) == 3
    for line, window in zip(lines, windows, strict=True):
        parsed, _ = parse_json(line.encode())
        np.testing.assert_allclose(parsed, window[None], atol=1e-4)
    seen: list[bytes] = []

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lua = write_wrk_mixed_script(tmp_path / "mixed.lua", bodies)
        result = run_wrk(f"http://127.0.0.1:{server.server_address[1]}/predict", lua, 2, 1)
    finally:
        server.shutdown()
        server.server_close()
    assert result.ok > 3 and result.errors == 0
    assert {b.decode() for b in seen} == set(lines)
