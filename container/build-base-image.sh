#!/usr/bin/env bash
# Builds the Bento's base image (Debian bookworm + Python 3.11 + uv + the host's
# CA bundle) unless an up-to-date one exists. Called by build-image.sh.
#
#   HAR_BASE_IMAGE   name of the image (default localhost/har-python311-base;
#                    must equal bentofile.yaml's docker.base_image)
#   DEBIAN_MIRROR    Debian mirror for debootstrap (default: from the host's apt
#                    sources in $APT_ETC, default /etc/apt; else
#                    http://deb.debian.org/debian)
#   HOST_CA_BUNDLE   CA bundle to trust inside the image
#                    (default /etc/ssl/certs/ca-certificates.crt)
#   FORCE_BASE=1     rebuild even if the image is up to date
#
# With podman the Debian root file system comes from debootstrap (no registry
# needed); with docker it is debian:bookworm-slim from Docker Hub.
set -euo pipefail

# shellcheck source=container/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

BASE_IMAGE="${HAR_BASE_IMAGE:-localhost/har-python311-base}"
DEBIAN_SUITE=bookworm # its python3 is 3.11, the Bento's python_version
DEBIAN_ROOTFS_IMAGE=localhost/debian-base
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

# Prints "URI SUITE" for every enabled `deb` entry of the host's apt sources,
# one-line (*.list) and deb822 (*.sources) formats alike.
apt_source_entries() {
    local files=() f apt_etc="${APT_ETC:-/etc/apt}"
    # apt's order: sources.list, then sources.list.d/ by name.
    for f in "$apt_etc/sources.list" "$apt_etc"/sources.list.d/*; do
        [[ -f "$f" && "$f" =~ (/sources\.list|\.list|\.sources)$ ]] && files+=("$f")
    done
    ((${#files[@]})) || return 0
    awk '
        function flush(   n, m, i, j, U, S) {
            if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
                n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
                for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
                    if (U[i] != "" && S[j] != "") print U[i], S[j]
            }
            types = uris = suites = enabled = ""
        }
        FNR == 1 { flush() }
        { sub(/\r$/, "") }
        /^[ \t]*#/ { next }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            key = tolower($1); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types:") types = val
            else if (key == "uris:") uris = val
            else if (key == "suites:") suites = val
            else if (key == "enabled:") enabled = tolower(val)
            next
        }
        $1 == "deb" {
            line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
            sub(/^\[[^]]*\][ \t]*/, "", line)   # [arch=... signed-by=...]
            split(line, F, /[ \t]+/)
            if (F[1] != "" && F[2] != "") print F[1], F[2]
        }
        END { flush() }
    ' "${files[@]}"
}

# Sets MIRROR and SECURITY_MIRROR from the host's apt sources: the first entry
# for a plain Debian release (bookworm, trixie, stable, ...) and the first for
# a *-security suite.
find_debian_mirrors() {
    local uri suite
    MIRROR="${DEBIAN_MIRROR:-}"
    SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-}"
    while read -r uri suite; do
        uri="${uri%/}"
        case "$suite" in
            buster | bullseye | bookworm | trixie | forky | sid | \
                oldstable | stable | testing | unstable)
                [[ -n "$MIRROR" ]] || MIRROR="$uri" ;;
            *-security)
                [[ -n "$SECURITY_MIRROR" ]] || SECURITY_MIRROR="$uri" ;;
        esac
    done < <(apt_source_entries)
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
    SECURITY_MIRROR="${SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}"
}

# localhost/debian-base: a minimal bookworm root file system from debootstrap.
build_debian_rootfs_image() {
    if image_exists "$DEBIAN_ROOTFS_IMAGE" && [[ "${FORCE_BASE:-0}" != 1 ]]; then
        log "$DEBIAN_ROOTFS_IMAGE exists"
        return
    fi
    find_debian_mirrors
    log "debootstrap $DEBIAN_SUITE from $MIRROR (security: $SECURITY_MIRROR)"
    local rootfs="$SCRATCH_DIR/rootfs"
    as_root rm -rf "$rootfs"
    mkdir -p "$SCRATCH_DIR"
    as_root debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$MIRROR" \
        >"$SCRATCH_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$SCRATCH_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<EOF
deb $MIRROR $DEBIAN_SUITE main
deb $MIRROR $DEBIAN_SUITE-updates main
deb $SECURITY_MIRROR $DEBIAN_SUITE-security main
EOF
    as_root find "$rootfs/var/cache/apt/archives" "$rootfs/var/lib/apt/lists" \
        -type f ! -name lock -delete
    as_root tar -C "$rootfs" -c . | "$ENGINE" import - "$DEBIAN_ROOTFS_IMAGE" >/dev/null
    as_root rm -rf "$rootfs"
}

main() {
    select_engine
    local context="$SCRATCH_DIR/base-image" debian_base
    mkdir -p "$context"
    cp "$CONTAINER_DIR/base-image/Containerfile" "$context/Containerfile"
    if [[ -f "$HOST_CA_BUNDLE" ]]; then
        cp "$HOST_CA_BUNDLE" "$context/host-ca-certificates.crt"
    else
        log "no CA bundle at $HOST_CA_BUNDLE: the image trusts Debian's CAs only"
        : >"$context/host-ca-certificates.crt"
    fi

    # Rebuild when the recipe or the trusted CAs change, not otherwise.
    local digest current
    digest="$(cat "$context/Containerfile" "$context/host-ca-certificates.crt" \
        | sha256sum | cut -c1-16)"
    current="$("$ENGINE" image inspect --format \
        '{{ index .Config.Labels "org.har.base-image.digest" }}' "$BASE_IMAGE" 2>/dev/null || true)"
    if [[ "$current" == "$digest" && "${FORCE_BASE:-0}" != 1 ]]; then
        log "$BASE_IMAGE is up to date"
        return
    fi

    if [[ "$ENGINE" == podman ]]; then
        build_debian_rootfs_image
        debian_base="$DEBIAN_ROOTFS_IMAGE"
    else
        debian_base="docker.io/library/debian:$DEBIAN_SUITE-slim"
    fi
    log "building $BASE_IMAGE on $debian_base"
    "$ENGINE" build --build-arg "DEBIAN_BASE=$debian_base" \
        --label "org.har.base-image.digest=$digest" \
        -t "$BASE_IMAGE" -f "$context/Containerfile" "$context"
    "$ENGINE" run --rm --entrypoint python3 "$BASE_IMAGE" -c \
        'import sys; assert sys.version_info[:2] == (3, 11), sys.version; print("python", sys.version.split()[0])'
}

# Run unless sourced (tests source it to check the apt sources parser).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
