"""bentofile.yaml: the image installs container/requirements.lock, which holds every runtime
dependency of pyproject.toml with its pin (and what they need, at requirements.lock's pins)."""

from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.paths import ROOT


def test_the_bento_installs_the_runtime_lock_with_every_runtime_pin() -> None:
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    python = bento["python"]
    assert python["requirements_txt"] == "container/requirements.lock"
    assert "packages" not in python and python["lock_packages"] is False  # nothing resolved afresh
    lock = {}
    for line in (ROOT / python["requirements_txt"]).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in map(Requirement, project["dependencies"]):
        (pin,) = dep.specifier
        assert lock.get(canonicalize_name(dep.name)) == pin.version, dep
