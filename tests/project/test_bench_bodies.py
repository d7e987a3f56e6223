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
