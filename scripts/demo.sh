#!/usr/bin/env bash
# The wsgate demo: builds the proxy and the echo backend, starts both on 127.0.0.1 and keeps
# them in the foreground until Ctrl-C.
#
#   scripts/demo.sh            build, start, print how to connect, wait for Ctrl-C
#   scripts/demo.sh --check    the same, then verify one echo (and the page, and /metrics)
#                              through the proxy and exit 0 — for CI
#   scripts/demo.sh --no-build use the binaries already in $BUILD_DIR/bin
#
# Environment: BUILD_DIR (default build), ECHO_PORT (9001), PROXY_PORT (8080), ADMIN_PORT (9901),
# ROUTES_DIR (default deploy/examples/routes), JOBS (ninja -j, default: number of cores),
# START_TIMEOUT (seconds to wait for each listening line, default 30).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

check=0
build=1
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

BUILD_DIR="${BUILD_DIR:-build}"
ECHO_PORT="${ECHO_PORT:-9001}"
PROXY_PORT="${PROXY_PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9901}"
START_TIMEOUT="${START_TIMEOUT:-30}"
JOBS="${JOBS:-$(nproc)}"
PYTHON="${PYTHON:-/usr/bin/python3}"
[[ -x "$PYTHON" ]] || PYTHON=python3
bin="$BUILD_DIR/bin"

log() { printf 'demo: %s\n' "$*" >&2; }

if ((build)); then
  "$repo/scripts/install-deps.sh" demo
  # ccache keys on paths: these make a fresh build folder (or a fresh clone) hit the cache.
  export CCACHE_BASEDIR="$repo" CCACHE_NOHASHDIR=1
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    log "configuring $BUILD_DIR"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  targets=(wsgate-proxy wsgate-echo-backend)
  if ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | grep -q '^wsgate-controller:'; then
    targets+=(wsgate-controller)
  fi
  for target in wsgate-proxy wsgate-echo-backend; do
    if ! ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | grep -q "^$target:"; then
      log "the build has no target $target yet"
      exit 1
    fi
  done
  log "building ${targets[*]} (ninja -j$JOBS)"
  ninja -C "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
fi
for binary in wsgate-proxy wsgate-echo-backend; do
  [[ -x "$bin/$binary" ]] || { log "$bin/$binary is missing (build first, or drop --no-build)"; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/wsgate-demo.XXXXXX")"
pids=()
# shellcheck disable=SC2317  # invoked through the trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Bounded wait: a process that ignores SIGTERM for 5 s gets SIGKILL.
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The example routes send traffic to 127.0.0.1:9001; another echo port gets a rewritten copy.
if [[ -z "${ROUTES_DIR:-}" ]]; then
  ROUTES_DIR="deploy/examples/routes"
  if [[ "$ECHO_PORT" != 9001 ]]; then
    mkdir -p "$work/routes"
    for file in "$ROUTES_DIR"/*.yaml "$ROUTES_DIR"/*.yml; do
      [[ -e "$file" ]] || continue
      sed "s/127\.0\.0\.1:9001/127.0.0.1:$ECHO_PORT/g" "$file" >"$work/routes/$(basename "$file")"
    done
    ROUTES_DIR="$work/routes"
  fi
fi

# Starts a process with its output in $work/<name>.log, which wait_listening reads.
start() {
  local name="$1"
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
  eval "${name}_pid=$!"
}

# Waits (bounded) until the log of $1 has "listening ($2) on ...", or the process has died.
wait_listening() {
  local name="$1" kind="$2" pid_var="${1}_pid"
  local deadline=$((SECONDS + START_TIMEOUT))
  until grep -q "listening ($kind) on " "$work/$name.log"; do
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
      log "$name exited before listening ($kind); its log:"
      cat "$work/$name.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name did not report listening ($kind) within ${START_TIMEOUT}s; its log:"
      cat "$work/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  grep -m1 "listening ($kind) on " "$work/$name.log" | sed 's/^/  /' >&2
}

start echo "$bin/wsgate-echo-backend" --listen "127.0.0.1:$ECHO_PORT" --demo-dir deploy/demo
wait_listening echo echo
# The controller watches the routes and streams them to the proxy over gRPC, as in a cluster.
GRPC_PORT="${GRPC_PORT:-18000}"
CONTROLLER_ADMIN_PORT="${CONTROLLER_ADMIN_PORT:-9902}"
if [[ -x "$bin/wsgate-controller" && "${DEMO_STANDALONE:-0}" != 1 ]]; then
  start controller "$bin/wsgate-controller" --routes "$ROUTES_DIR" \
    --grpc-listen "127.0.0.1:$GRPC_PORT" --admin "127.0.0.1:$CONTROLLER_ADMIN_PORT"
  wait_listening controller grpc
  route_args=(--control-plane "127.0.0.1:$GRPC_PORT" --node-id demo-proxy)
  topology="controller 127.0.0.1:$GRPC_PORT (admin :$CONTROLLER_ADMIN_PORT) -> proxy"
else
  route_args=(--routes "$ROUTES_DIR")
  topology="standalone proxy"
fi
start proxy "$bin/wsgate-proxy" "${route_args[@]}" --listen "127.0.0.1:$PROXY_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT"
wait_listening proxy http
wait_listening proxy admin

cat >&2 <<EOF

wsgate demo is running (routes: $ROUTES_DIR; $topology)
  browser:    http://127.0.0.1:$PROXY_PORT/          (the page says "echo ok" once its message came back)
  WebSocket:  $PYTHON -m websockets ws://127.0.0.1:$PROXY_PORT/echo
  metrics:    curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep ^wsgate_
  config:     curl -s http://127.0.0.1:$ADMIN_PORT/config
  proxies:    curl -s http://127.0.0.1:$CONTROLLER_ADMIN_PORT/proxies   (with the controller)
  logs:       $work/{controller,proxy,echo}.log
EOF

if ((check)); then
  log "waiting for the proxy to be ready (routes received)"
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  log "checking one echo, the page and /metrics through the proxy"
  if ! WSGATE_SOURCE_DIR="$repo" "$PYTHON" - "$PROXY_PORT" "$ADMIN_PORT" <<'PY'; then
import os, sys
sys.path.insert(0, os.path.join(os.environ["WSGATE_SOURCE_DIR"], "tests", "integration"))
import harness

proxy_port, admin_port = int(sys.argv[1]), int(sys.argv[2])
with harness.RawWebSocket(proxy_port, "/echo", host=f"127.0.0.1:{proxy_port}", timeout=10) as ws:
    ws.send_text("hello through wsgate")
    opcode, data = ws.recv_message()
    assert (opcode, data) == (harness.OP_TEXT, b"hello through wsgate"), (opcode, data)
    ws.close(1000, "demo check")
print("  echo through the proxy: ok", file=sys.stderr)
page = harness.http_get(proxy_port, "/", host=f"127.0.0.1:{proxy_port}")
assert page.status == 200 and b'id="status"' in page.body, (page.status, page.body[:200])
print("  demo page through the proxy: ok", file=sys.stderr)
text = harness.metrics_text(admin_port)
assert "wsgate_handshakes_total" in text, text[:500]
print("  /metrics: ok", file=sys.stderr)
PY
    log "check FAILED; proxy log:"
    cat "$work/proxy.log" >&2
    log "echo backend log:"
    cat "$work/echo.log" >&2
    exit 1
  fi
  log "check passed"
  exit 0
fi

log "press Ctrl-C to stop"
# Returns when either child exits (or on Ctrl-C, through the trap).
wait -n "${pids[@]}" || true
log "a demo process exited; stopping"
exit 1
