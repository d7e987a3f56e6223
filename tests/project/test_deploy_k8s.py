"""deploy/k8s: the kustomize base and example overlay render offline (`kubectl kustomize`)
and validate against the Kubernetes schemas (kubernetes-validate, strict); the settings
the issue asks for are there (non-root, read-only root, probes, resources, HPA >= 2,
PDB, ConfigMap, Secret, ReadWriteMany profiles mounted at HAR_PROFILE_DIR)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers.paths import ROOT

K8S = ROOT / "deploy" / "k8s"
#: Kubernetes versions the manifests must validate against (oldest supported .. newest).
VERSIONS = ("1.30.0", "1.37.0")


def _render(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the kustomization"
    r = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize("target", ["base", "overlays/example"])
@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_against_the_kubernetes_schema(target: str, version: str) -> None:
    docs = _render(K8S / target)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in kubernetes-validate (checked below)
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 8


def test_deployment_is_production_shaped() -> None:
    docs = _render(K8S / "overlays" / "example")
    dep = _one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.com/har:1.0.0"
    assert (
        pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    writable = {
        f"/home/bentoml/{d}"
        for d in ("prometheus_multiproc_dir", "tmp", "bentos", "models", "envs")
    }
    assert writable | {"/tmp"} <= mounts.keys()  # what BentoML writes besides the profiles
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {mounts[m] for m in writable | {"/tmp"}} <= empty
    # resources from measured RSS: model worker ~1.1 GB + API worker <= 0.4 GB + arbiter
    mem = c["resources"]["requests"]["memory"]
    assert mem.endswith("Gi") and float(mem[:-2]) >= 1.75
    assert c["resources"]["requests"]["cpu"]
    # probes: a start of ~25 s (up to ~60 s on a loaded node) fits the startup probe
    sp = c["startupProbe"]
    assert sp["httpGet"]["path"] == "/livez" and sp["periodSeconds"] * sp["failureThreshold"] >= 120
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["readinessProbe"]["timeoutSeconds"] > 5  # /readyz may wait 5 s for the model worker
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 3000, "grpc": 50051}
    # settings and tokens
    cm = _one(docs, "ConfigMap", "har-settings")
    secret = _one(docs, "Secret", "har-api-tokens")
    refs = {next(iter(e.values()))["name"] for e in c["envFrom"]}
    assert refs == {cm["metadata"]["name"], secret["metadata"]["name"]}
    assert "HAR_API_TOKENS" in secret["stringData"]
    assert all(k.startswith(("HAR_", "BENTOML_", "TF_")) for k in cm["data"])
    # profiles: a ReadWriteMany claim mounted at HAR_PROFILE_DIR (or a parent of it)
    pvc = _one(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    (vol,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (path,) = [p for p, n in mounts.items() if n == vol["name"]]
    assert cm["data"]["HAR_PROFILE_DIR"].startswith(path)


def test_services_hpa_pdb_and_servicemonitor() -> None:
    docs = _render(K8S / "overlays" / "example")
    dep = _one(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = _one(docs, "Service", "har")
    assert {p["port"] for p in svc["spec"]["ports"]} == {3000, 50051}
    headless = _one(docs, "Service", "har-grpc")
    assert headless["spec"]["clusterIP"] == "None"
    for s in (svc, headless):
        assert s["spec"]["selector"].items() <= pod_labels.items()
    hpa = _one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    sm = _one(docs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "http"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    # the base alone carries no ServiceMonitor (an optional component)
    assert not [d for d in _render(K8S / "base") if d["kind"] == "ServiceMonitor"]
