# shellcheck shell=bash
# Shared by build-image.sh and image-test.sh: source it, don't run it.
#
# Picks the container engine (docker where a Docker daemon answers, podman
# otherwise) and sets podman up for machines without a daemon.
# Settings (environment variables):
#   CONTAINER_ENGINE  force "docker" or "podman" instead of detecting
#   HAR_IMAGE         image to build / test (default: the Bento's name:version;
#                     image-test.sh reads the last one built from .image/last-image)

CONTAINER_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd -- "$CONTAINER_DIR/.." && pwd)"
# Git-ignored scratch space: debootstrap root, build contexts, last image name.
SCRATCH_DIR="$PROJECT_ROOT/.image"
# shellcheck disable=SC2034 # used by the scripts that source this file
LAST_IMAGE_FILE="$SCRATCH_DIR/last-image"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages given as arguments that are missing.
apt_install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# Sets ENGINE to docker or podman and prepares podman if that is the one.
select_engine() {
    if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
        ENGINE="$CONTAINER_ENGINE"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
    case "$ENGINE" in
        docker) ;;
        podman)
            apt_install_missing podman buildah runc debootstrap
            # crun fails on this kernel's cgroup mode and the default open-files
            # limit cannot be raised: see containers.conf.
            export CONTAINERS_CONF="$CONTAINER_DIR/containers.conf"
            export BUILDAH_ISOLATION=chroot
            ;;
        *) die "CONTAINER_ENGINE must be docker or podman, not '$ENGINE'" ;;
    esac
    log "container engine: $ENGINE"
}

image_exists() {
    "$ENGINE" image inspect "$1" >/dev/null 2>&1
}

# The project's bentoml: the virtual environment's if there is one.
bentoml_bin() {
    if [[ -n "${BENTOML_BIN:-}" ]]; then
        printf '%s\n' "$BENTOML_BIN"
    elif [[ -x "$PROJECT_ROOT/.venv/bin/bentoml" ]]; then
        printf '%s\n' "$PROJECT_ROOT/.venv/bin/bentoml"
    else
        command -v bentoml || die "bentoml not found: run 'make test' or set BENTOML_BIN"
    fi
}
