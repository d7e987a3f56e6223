#!/usr/bin/env bash
# `make image-test`: runs the built image and smoke-tests it.
#
# Publishes ports 3000 (HTTP) and 50051 (gRPC) on the host, waits for /readyz,
# then container/smoke.py checks POST /predict, gRPC health and gRPC Predict;
# finally checks that the service does not run as root. On any failure it
# prints the container's log and exits non-zero; the container is removed.
#
#   HAR_IMAGE           image to test (default: the last one build-image.sh built)
#   HAR_TEST_HTTP_PORT  host port for 3000 (default: any free port)
#   HAR_TEST_GRPC_PORT  host port for 50051 (default: any free port)
#   HAR_TEST_BIND       host address to publish on (default 127.0.0.1;
#                       empty: all interfaces)
#   HAR_TEST_WINDOW     JSON windows to send (default data/production/window.json)
#   READY_TIMEOUT       seconds to wait for /readyz (default 240: a loaded
#                       2-core machine took 134 s)
#   PYTHON              Python with grpcio and the project (default .venv/bin/python)
#   KEEP_CONTAINER=1    leave the container running after a successful test
#                       (its name: HAR_TEST_CONTAINER, default har-image-test)
#   CONTAINER_ENGINE    docker or podman instead of detecting
set -euo pipefail

# shellcheck source=container/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

NAME="${HAR_TEST_CONTAINER:-har-image-test}"
READY_TIMEOUT="${READY_TIMEOUT:-240}"
WINDOW_FILE="${HAR_TEST_WINDOW:-$PROJECT_ROOT/data/production/window.json}"
started=0
# Resident memory (VmRSS) of every process in the container, as a table.
PROCESS_RSS='
import os
rows = []
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        status = open(f"/proc/{pid}/status").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        continue
    rss = next((int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:")), 0)
    if cmd and rss and pid != str(os.getpid()):
        rows.append((int(pid), rss / 1024, cmd))
print("%6s %8s  process" % ("pid", "RSS MB"))
for pid, mb, cmd in rows:
    print("%6d %8.0f  %s" % (pid, mb, cmd[:110]))
print("%6s %8.0f  total" % ("", sum(r[1] for r in rows)))
'

cleanup() {
    local rc=$?
    if ((started)); then
        if ((rc != 0)); then
            printf '\n---- log of container %s ----\n' "$NAME" >&2
            "$ENGINE" logs --tail 300 "$NAME" >&2 2>&1 || true
            printf -- '---- end of log ----\n' >&2
        fi
        if ((rc != 0)) || [[ "${KEEP_CONTAINER:-0}" != 1 ]]; then
            "$ENGINE" kill "$NAME" >/dev/null 2>&1 || true
            "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
        fi
    fi
    ((rc == 0)) || printf 'image test FAILED (exit %d)\n' "$rc" >&2
    exit "$rc"
}

publish() { # container port, host port (may be empty) -> a --publish value
    local bind="${HAR_TEST_BIND-127.0.0.1}"
    if [[ -n "$bind" ]]; then
        printf '%s:%s:%s' "$bind" "$2" "$1"
    elif [[ -n "$2" ]]; then
        printf '%s:%s' "$2" "$1"
    else
        printf '%s' "$1"
    fi
}

host_port() { # container port -> the host port it is published on
    "$ENGINE" port "$NAME" "$1/tcp" | head -n 1 | sed 's/.*://'
}

main() {
    local start=$SECONDS image python http_port grpc_port uid ready_s
    select_engine
    image="${HAR_IMAGE:-$(cat "$LAST_IMAGE_FILE" 2>/dev/null || true)}"
    [[ -n "$image" ]] || die "no image: run 'make image' or set HAR_IMAGE"
    image_exists "$image" || die "image $image not found: run 'make image'"
    python="${PYTHON:-$PROJECT_ROOT/.venv/bin/python}"
    [[ -x "$python" ]] || python=python3

    "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
    trap cleanup EXIT
    log "starting $image as $NAME"
    started=1
    "$ENGINE" run -d --name "$NAME" \
        -p "$(publish 3000 "${HAR_TEST_HTTP_PORT:-}")" \
        -p "$(publish 50051 "${HAR_TEST_GRPC_PORT:-}")" \
        "$image" >/dev/null
    http_port="$(host_port 3000)"
    grpc_port="$(host_port 50051)"
    [[ -n "$http_port" && -n "$grpc_port" ]] || die "ports 3000/50051 are not published"
    log "HTTP on 127.0.0.1:$http_port, gRPC on 127.0.0.1:$grpc_port"

    local deadline=$((SECONDS + READY_TIMEOUT))
    # --max-time: BentoML 1.4.30 holds a /readyz that arrives before the model
    # service is up until the traffic timeout instead of answering 503.
    until curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$http_port/readyz" 2>/dev/null; do
        [[ "$("$ENGINE" inspect --format '{{.State.Running}}' "$NAME")" == true ]] \
            || die "the container exited before it was ready"
        ((SECONDS < deadline)) || die "/readyz not 200 after $READY_TIMEOUT s"
        sleep 2
    done
    ready_s=$((SECONDS - start))
    log "ready after $ready_s s"

    "$python" "$CONTAINER_DIR/smoke.py" --window "$WINDOW_FILE" \
        --http "http://127.0.0.1:$http_port" --grpc "127.0.0.1:$grpc_port"

    # The uid of the container's main process, not just of an exec'd shell.
    uid="$("$ENGINE" exec "$NAME" sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' /proc/1/status)"
    [[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]] || die "the service runs as uid '$uid' (root)"
    log "service runs as uid $uid ($("$ENGINE" exec "$NAME" id -un))"

    # What a user sees of the image: its size, the seconds from `run` to /readyz, and the
    # resident memory of each process in the container after the smoke test's requests.
    printf '\nimage %s: %s\nstart -> /readyz: %s s\n' "$image" \
        "$(numfmt --to=iec --suffix=B "$("$ENGINE" image inspect --format '{{.Size}}' "$image")")" \
        "$ready_s"
    "$ENGINE" exec "$NAME" python -c "$PROCESS_RSS"
    log "image test passed in $((SECONDS - start)) s"
}

main "$@"
