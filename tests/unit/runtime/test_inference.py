"""har.runtime.inference: the plain function serves until each XLA batch size is compiled."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from har.runtime.inference import CompiledModel, batch_buckets


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((200, 6)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )


def windows(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, 200, 6)).astype(np.float32)


def test_batch_buckets_pad_by_at_most_a_third_above_16():
    assert batch_buckets(128) == [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128]
    assert batch_buckets(100) == [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 100]
    assert batch_buckets(8) == [1, 2, 4, 8]
    assert batch_buckets(1) == [1]


def test_blocking_warmup_compiles_every_size_and_matches_keras(model):
    compiled = CompiledModel(model, max_batch_size=8)
    assert compiled.warmup() is None
    assert compiled.compiled_sizes == [1, 2, 4, 8]
    x = windows(11)  # 8 + 3 padded to 4
    np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)


def test_a_batch_never_waits_for_a_compile_in_the_background(model):
    compiled = CompiledModel(model, max_batch_size=4)
    release = threading.Event()
    size_4 = compiled._xla[4]

    def slow_compile(x):  # size 4 "compiles" until the test releases it
        release.wait(30)
        return size_4(x)

    compiled._xla[4] = slow_compile
    thread = compiled.warmup(background=True)
    assert thread is not None
    try:
        for _ in range(200):  # sizes 1 and 2 become ready while 4 is still compiling
            if compiled.compiled_sizes == [1, 2]:
                break
            threading.Event().wait(0.05)
        assert compiled.compiled_sizes == [1, 2]
        x = windows(3)  # padded size 4: not compiled yet, so the plain function answers
        np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)
        assert thread.is_alive()
    finally:
        release.set()
        thread.join(60)
    assert compiled.compiled_sizes == [1, 2, 4]
    np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)


def test_without_xla_every_size_runs_on_the_plain_function(model):
    compiled = CompiledModel(model, xla=False, max_batch_size=4)
    assert compiled.warmup() is None and compiled.compiled_sizes == []
    x = windows(6)
    np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)
    assert compiled(windows(0)).shape == (0, 3)


def test_a_big_input_runs_its_chunks_on_threads_at_once_and_keeps_its_order(model):
    compiled = CompiledModel(model, max_batch_size=4, threads=2)
    compiled.warmup()
    size_4 = compiled._xla[4]
    both_in = threading.Barrier(2, timeout=10)  # broken unless two chunks run at once
    seen: list[str] = []

    def chunk_of_4(x):
        seen.append(threading.current_thread().name)
        if len(seen) <= 2:  # the first two chunks meet here; the third runs after one ends
            both_in.wait()
        return size_4(x)

    compiled._xla[4] = chunk_of_4
    x = windows(11)  # chunks 4, 4 and 3 (padded to 4)
    np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)
    assert len(seen) == 3 and len(set(seen[:2])) == 2
    assert all(name.startswith("har-chunks") for name in seen)

    seen.clear()
    compiled._xla[4] = lambda c: (seen.append(threading.current_thread().name), size_4(c))[1]
    small = windows(4)  # at most max_batch_size: the caller's own thread
    np.testing.assert_allclose(compiled(small), np.asarray(model(small)), atol=1e-5)
    assert seen == [threading.current_thread().name]


def test_one_thread_runs_the_chunks_on_the_callers_thread(model):
    compiled = CompiledModel(model, max_batch_size=4)
    compiled.warmup()
    size_4 = compiled._xla[4]
    seen: list[str] = []
    compiled._xla[4] = lambda c: (seen.append(threading.current_thread().name), size_4(c))[1]
    x = windows(11)
    np.testing.assert_allclose(compiled(x), np.asarray(model(x)), atol=1e-5)
    assert seen == [threading.current_thread().name] * 3


def test_tensorflow_is_imported_without_kerass_optional_extras():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from har.runtime.inference import import_tensorflow_without\n"
        "import_tensorflow_without(('sklearn', 'matplotlib'))\n"
        "assert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
        "print(sorted(m for m in ('sklearn', 'matplotlib') if m in sys.modules))\n"
        "import sklearn\n"  # installed here (MLflow's dependency): importable again
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"]
