"""har.inference: XLA's persistent compilation cache is switched on by configure_tensorflow."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from pathlib import Path
from har.inference import configure_tensorflow
configure_tensorflow(1, 1, Path(sys.argv[1]))
import numpy as np
import tensorflow as tf
f = tf.function(lambda x: tf.nn.relu(x @ tf.ones((6, 3))), jit_compile=True)
print(float(np.asarray(f(np.ones((2, 6), np.float32))).sum()))
"""


@pytest.mark.slow
def test_xla_cache_dir_receives_the_compiled_function(tmp_path):
    cache = tmp_path / "nested" / "xla-cache"  # created by configure_tensorflow
    # a fresh interpreter: XLA reads its flags once, when TensorFlow starts
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cache)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "36.0"
    assert any(p.name.startswith("xla_compile_cache") for p in cache.iterdir())
