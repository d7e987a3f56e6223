"""container/pod_test.py's translation of deploy/k8s for `podman kube play` (`make pod-test`),
offline: what podman needs changes, what the manifest says about the pod stays."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from types import ModuleType

import pytest

from tests.helpers.paths import ROOT


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    """kubectl renders the overlay (it is on these machines; .ci/run's machine has it too)."""
    assert shutil.which("kubectl"), "kubectl not found: it renders deploy/k8s (kubectl kustomize)"


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pod_test", ROOT / "container" / "pod_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pod_test", module)
    spec.loader.exec_module(module)
    return module


def test_played_spec_keeps_the_pod_and_changes_only_what_podman_needs() -> None:
    pt = _driver()
    docs = pt.render(ROOT / "deploy" / "k8s" / "overlays" / "example")
    pods = [
        pt.Pod("a", "t-a", {"http": 1001, "grpc": 1002}),
        pt.Pod("b", "t-b", {"http": 1003, "grpc": 1004}),
    ]
    played, changed, skipped = pt.playable(docs, "localhost/har:x", pods, {"K": "v"}, "tok")

    assert {d["kind"] for d in played} <= {"Deployment", "ConfigMap", "PersistentVolumeClaim"}
    assert any(s.startswith("Service ") for s in skipped) and any("Secret" in s for s in skipped)
    (original,) = [d for d in docs if d["kind"] == "Deployment"]
    deps = [d for d in played if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deps] == ["t-a", "t-b"]
    o_spec = original["spec"]["template"]["spec"]
    (o_c,) = o_spec["containers"]
    for dep, pod in zip(deps, pods, strict=True):
        spec = dep["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        assert spec["securityContext"] == o_spec["securityContext"]
        assert c["securityContext"] == o_c["securityContext"]
        assert c["resources"] == o_c["resources"] and c["volumeMounts"] == o_c["volumeMounts"]
        assert c["startupProbe"] == o_c["startupProbe"]
        assert c["readinessProbe"] == o_c["readinessProbe"]
        live = c["livenessProbe"]
        assert (
            "httpGet" not in live and live["periodSeconds"] == o_c["livenessProbe"]["periodSeconds"]
        )
        (line,) = live["exec"]["command"]  # podman joins the list and runs it with sh -c
        assert "http://127.0.0.1:3000/livez" in line
        assert c["image"] == "localhost/har:x" and c["imagePullPolicy"] == "Never"
        assert {p["name"]: p["hostPort"] for p in c["ports"]} == pod.ports
        assert all("secretRef" not in ref for ref in c["envFrom"])
        assert {"name": "HAR_API_TOKENS", "value": "tok"} in c["env"]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [pt.VOLUME]
    (cm,) = [d for d in played if d["kind"] == "ConfigMap"]
    assert cm["data"]["K"] == "v" and cm["data"]["HAR_PROFILE_DIR"]
    assert any("livenessProbe" in c for c in changed)
    assert pt.check_offline(docs, pods)  # the Services target the played ports
