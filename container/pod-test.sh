#!/usr/bin/env bash
# `make pod-test`: plays deploy/k8s (the example overlay) as two real pods with
# `podman kube play`, no cluster needed, and checks them: ready through the
# manifest's probes, HTTP + gRPC predictions, non-root uid, read-only root,
# drift and shadow counting both pods' windows on the shared profile volume.
# Tears everything down, also on failure. container/pod_test.py does the work
# and prints what it had to play differently and why.
#
#   HAR_IMAGE        image to play (default: the last one `make image` built)
#   HAR_K8S_DIR      kustomization to render (default deploy/k8s/overlays/example)
#   READY_TIMEOUT    seconds for both pods to pass their readiness probe (default 240)
#   HAR_POD_TEST_SHADOW  auto|on|off: set HAR_SHADOW_MODEL_TAG (the served tag) and check
#                    /monitoring/shadow counts both pods (auto: if the image's Bento has
#                    the har-shadow service; an image built without it cannot start one)
#   PYTHON           Python with grpcio, PyYAML and the project (default .venv/bin/python)
#
# Needs podman (Debian's 4.3 works), runc and catatonit (the pause process of
# kube play's infra container): installed with apt-get when missing.
set -euo pipefail

# shellcheck source=container/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

WORKDIR="$SCRATCH_DIR/pod-test"
PODS=(har-podtest-a-pod-0 har-podtest-b-pod-0)  # the names pod_test.py plays
VOLUME=har-podtest-profiles

# The driver tears down itself (on failure, Ctrl-C and SIGTERM too); this is the net
# for a driver killed outright.
cleanup() {
    local rc=$? pod left=0
    for pod in "${PODS[@]}"; do
        podman pod exists "$pod" 2>/dev/null && left=1
    done
    if ((left)); then
        log "tearing down the pods the driver left"
        [[ -f "$WORKDIR/play.yaml" ]] && podman kube down "$WORKDIR/play.yaml" >/dev/null 2>&1
        podman pod rm -f "${PODS[@]}" >/dev/null 2>&1 || true
    fi
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    exit "$rc"
}

main() {
    apt_install_missing podman runc catatonit
    command -v kubectl >/dev/null || die "kubectl is needed to render the kustomization"
    export CONTAINERS_CONF="$CONTAINER_DIR/containers.conf"  # runc + ulimits (see the file)
    local image python
    image="${HAR_IMAGE:-$(cat "$LAST_IMAGE_FILE" 2>/dev/null || true)}"
    [[ -n "$image" ]] || die "no image: run 'make image' or set HAR_IMAGE"
    podman image exists "$image" || die "image $image not found: run 'make image'"
    python="${PYTHON:-$PROJECT_ROOT/.venv/bin/python}"
    [[ -x "$python" ]] || die "no $python: run 'make setup' or set PYTHON"

    trap cleanup EXIT
    cd "$PROJECT_ROOT"
    "$python" "$CONTAINER_DIR/pod_test.py" --image "$image" --workdir "$WORKDIR" \
        --kustomization "${HAR_K8S_DIR:-$PROJECT_ROOT/deploy/k8s/overlays/example}" \
        --ready-timeout "${READY_TIMEOUT:-240}" --shadow "${HAR_POD_TEST_SHADOW:-auto}"
}

main "$@"
