"""bentofile.yaml: the image gets the runtime dependencies of pyproject.toml, same pins."""

from __future__ import annotations

import tomllib

import yaml

from tests.helpers.paths import ROOT


def test_the_bento_installs_every_runtime_dependency_with_its_pin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bento = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert sorted(bento["python"]["packages"]) == sorted(project["dependencies"])
