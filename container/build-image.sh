#!/usr/bin/env bash
# `make image`: builds the Bento in the project root and containerizes it.
#
# Uses docker where a Docker daemon answers, podman (installed from Debian's
# packages if missing) otherwise. The Bento's docker.base_image is built
# locally first by build-base-image.sh, since no registry may be reachable.
#
#   BENTOML_HOME      BentoML's store (bentoml's own default if unset)
#   HAR_BENTOFILE     build file (default bentofile.yaml in the project root)
#   HAR_BASE_IMAGE    base image name (default localhost/har-python311-base;
#                     must equal bentofile.yaml's docker.base_image)
#   HAR_IMAGE         image name:tag (default: the Bento's tag, name:version)
#   CONTAINER_ENGINE  docker or podman instead of detecting
#
# Prints the image name and size; records the name in .image/last-image for
# image-test.sh.
set -euo pipefail

# shellcheck source=container/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

export HAR_BASE_IMAGE="${HAR_BASE_IMAGE:-localhost/har-python311-base}"

main() {
    local start=$SECONDS bentoml tag image bento_base size
    bentoml="$(bentoml_bin)"
    select_engine

    if [[ -n "${BENTOML_HOME:-}" ]]; then
        BENTOML_HOME="$(realpath -m -- "$BENTOML_HOME")"
        export BENTOML_HOME
    fi
    log "bentoml build (BENTOML_HOME=${BENTOML_HOME:-default})"
    cd "$PROJECT_ROOT"
    # `-o tag` prints `__tag__:name:version` as its last line.
    tag="$("$bentoml" build -f "${HAR_BENTOFILE:-bentofile.yaml}" -o tag \
        | sed -n 's/^__tag__://p' | tail -n 1)"
    [[ -n "$tag" ]] || die "bentoml build printed no tag"
    log "built Bento $tag in $((SECONDS - start)) s"

    # Bento spec 2 keeps it under "image", spec 1 under "docker".
    bento_base="$("$bentoml" get "$tag" -o json | python3 -c '
import json, sys
info = json.load(sys.stdin)
print((info.get("image") or info.get("docker") or {}).get("base_image") or "")')"
    if [[ "$bento_base" == "$HAR_BASE_IMAGE" ]]; then
        CONTAINER_ENGINE="$ENGINE" bash "$CONTAINER_DIR/build-base-image.sh"
    elif [[ -n "$bento_base" ]]; then
        image_exists "$bento_base" \
            || die "the Bento's docker.base_image is '$bento_base'; set HAR_BASE_IMAGE=$bento_base to build it here"
    else
        log "the Bento has no docker.base_image: BentoML's default base image must be pullable"
    fi

    image="${HAR_IMAGE:-$tag}"
    local containerize_start=$SECONDS
    log "bentoml containerize $tag -> $image ($ENGINE)"
    # From the temporary folder: BentoML 1.4.36+ resolves the Bento's dockerfile_template
    # inside a fresh temporary build context but requires it under the current directory
    # (bentoml/BentoML#5566, open); from ${TMPDIR:-/tmp} both agree. (BENTOML_HOME was
    # made absolute above.)
    (cd "${TMPDIR:-/tmp}" && "$bentoml" containerize "$tag" --backend "$ENGINE" --image-tag "$image")
    log "containerized in $((SECONDS - containerize_start)) s"

    # podman names unqualified local images localhost/NAME.
    if [[ "$ENGINE" == podman && "$image" != */* ]]; then
        image="localhost/$image"
    fi
    mkdir -p "$SCRATCH_DIR"
    printf '%s\n' "$image" >"$LAST_IMAGE_FILE"
    size="$("$ENGINE" image inspect --format '{{.Size}}' "$image")"
    log "image $image, $(numfmt --to=iec --suffix=B "$size") ($size bytes), built in $((SECONDS - start)) s"
    printf '%s\n' "$image"
}

main "$@"
