"""whylogs is imported without scikit-learn (its import cost ~1.5 s of every serving start)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import ROOT


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_whylogs_comes_without_sklearn_and_sklearn_still_imports_afterwards() -> None:
    out = _run(
        "import sys, har.monitoring.profiles, whylogs.core.stubs as s\n"
        "print('sklearn' in sys.modules, type(s.sklc).__name__)\n"
        "import sklearn.cluster\n"
        "print(sklearn.cluster.KMeans.__name__)\n"
    )
    lines = out.splitlines()
    assert lines[0] == "False ScikitLearnStub"
    assert lines[1] == "KMeans"


def test_sklearn_loaded_first_is_left_to_whylogs() -> None:
    out = _run(
        "import sklearn.cluster, har.monitoring.profiles, whylogs.core.stubs as s\n"
        "print(s.sklc is sklearn.cluster)\n"
    )
    assert out == "True"
