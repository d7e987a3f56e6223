"""The target runs exactly the packages the tests ran: ``container/requirements.lock`` (a
model served on ONNX Runtime: no TensorFlow) or ``container/requirements-tensorflow.lock``.

On the image: every distribution installed in the service's interpreter, with its version,
equals the lock its ``HAR_IMAGE_LOCK`` names (nothing missing, nothing extra, nothing at
another version), and an image of a model served on ONNX Runtime has no TensorFlow. On the
dev target: both files are what ``container/runtime_lock.py`` derives from
``requirements.lock`` and ``pyproject.toml`` right now, and this environment has those versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from packaging.utils import canonicalize_name

from tests.helpers.paths import ROOT
from tests.helpers.targets import engine

#: Installed in the image by its base, not by the Bento: the installer itself.
INSTALLER = {"pip"}
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))"
)


def _lock(path: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_installed_packages_equal_the_runtime_lock(target_kind, image, served):
    if target_kind == "dev":
        run = subprocess.run(
            [sys.executable, str(ROOT / "container" / "runtime_lock.py"), "--check"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return
    env = dict(
        e.split("=", 1)
        for e in json.loads(engine("image", "inspect", "--format", "{{json .Config.Env}}", image))
    )
    out = engine("run", "--rm", "--entrypoint", "python", image, "-c", LIST_DISTRIBUTIONS)
    installed = {canonicalize_name(n): v for n, v in json.loads(out) if n}
    for name in INSTALLER:
        installed.pop(name, None)
    lock = _lock(env["HAR_IMAGE_LOCK"])
    runtime = json.loads(urllib.request.urlopen(f"{served.url}/model", timeout=30).read())
    if runtime["runtime"]["name"] == "onnx":  # the image of a model served on ONNX Runtime
        assert env["HAR_IMAGE_LOCK"] == "container/requirements.lock"
        assert not {"tensorflow-cpu", "keras", "tensorflow"} & set(installed)
    missing = sorted(set(lock) - set(installed))
    extra = sorted(set(installed) - set(lock))
    differ = sorted(
        (n, installed[n], lock[n]) for n in set(lock) & set(installed) if installed[n] != lock[n]
    )
    print(f"image {image}: {len(installed)} distributions, lock: {len(lock)}")
    assert (missing, extra, differ) == ([], [], []), {
        "missing": missing,
        "extra": extra,
        "differ": differ,
    }
