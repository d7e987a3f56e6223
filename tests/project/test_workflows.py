"""The GitHub workflows and the container scripts they run, checked offline.

Schema: check-jsonschema's vendored GitHub workflow schema. Security: zizmor
(template injection, unpinned actions, credential persistence, cache poisoning,
excessive permissions). Plus the project's own rules: read-only top-level
permissions, a time limit on every job, no ``${{ }}`` expansion inside ``run:``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.paths import ROOT

WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
CONTAINER_DIR = ROOT / "container"
VENV_BIN = Path(sys.executable).parent
FULL_SHA = re.compile(r"^[^@]+@[0-9a-f]{40}$")


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = VENV_BIN / name
    assert tool.exists(), f"{tool} missing: install the dev extras (make setup)"
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def load(path: Path) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1): keep it under "on".
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_expected_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


def test_workflows_match_githubs_schema():
    result = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing():
    result = run_tool("zizmor", "--offline", "--no-progress", str(WORKFLOW_DIR))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_top_level_permissions_are_read_only(path: Path):
    permissions = load(path).get("permissions")
    assert permissions is not None, "no top-level permissions: the default token may write"
    if isinstance(permissions, str):
        assert permissions == "read-all"
    else:
        writes = {k: v for k, v in permissions.items() if v not in ("read", "none")}
        assert not writes, f"top-level write permissions: {writes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_time_limit(path: Path):
    for name, job in load(path)["jobs"].items():
        limit = job.get("timeout-minutes")
        assert isinstance(limit, int) and 0 < limit <= 90, f"job {name}: timeout-minutes={limit}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_checkouts_keep_no_credentials(path: Path):
    for step in steps(load(path)):
        uses = step.get("uses")
        if uses is None:
            continue
        assert FULL_SHA.match(uses), f"{uses}: pin actions to a full commit SHA"
        if uses.startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, uses


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_run_blocks_expand_no_templates(path: Path):
    # Values reach shell scripts through env:, never pasted into the script.
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"template in run: {step.get('name')}"


def test_ci_runs_lint_tests_image_smoke_and_load_test():
    ci = load(WORKFLOW_DIR / "ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert ci["concurrency"]["cancel-in-progress"] is True
    scripts = "\n".join(step.get("run", "") for step in steps(ci))
    for command in ("make lint", "make test", "make image", "make image-test"):
        assert command in scripts
    assert "locust -f load_tests/locustfile.py --headless" in scripts
    assert "--exit-code-on-error 1" in scripts


def test_only_the_release_image_job_may_write_packages():
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            if job.get("permissions", {}).get("packages") == "write":
                assert (path.name, name) == ("release.yml", "image")


@pytest.mark.parametrize("script", sorted(CONTAINER_DIR.glob("*.sh")), ids=lambda p: p.name)
def test_container_scripts_parse(script: Path):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_debian_mirrors_come_from_the_hosts_apt_sources(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nEnabled: yes\n"
    )
    (tmp_path / "sources.list.d" / "zz-later.list").write_text(
        "deb [signed-by=/k.gpg] http://later.example/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "a-off.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    )
    script = (
        f"source {CONTAINER_DIR / 'build-base-image.sh'}; find_debian_mirrors; "
        'echo "$MIRROR $SECURITY_MIRROR"'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={"APT_ETC": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    # First enabled Debian release in apt's order (sources.list.d/ by name).
    assert result.stdout.split() == [
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]
