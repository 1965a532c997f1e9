#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted $ is meant for node, bash -c and podman templates
# Builds the wsgate image with podman (no Docker engine, no registry: the Debian base is made
# locally with debootstrap and cached as localhost/debian:bookworm), then checks it:
#   - the image runs as 10001, exposes its ports, every binary's libraries resolve;
#   - its wsgate-proxy, on the host network, serves /readyz and relays one WebSocket echo to a
#     wsgate-echo-backend (the host build's when WSGATE_ECHO_BACKEND names it, else the image's);
#   - SIGTERM stops it cleanly within the drain time.
# Needs root, podman, runc, debootstrap (first run only), curl and python3-websockets.
# Env: WSGATE_IMAGE (default localhost/wsgate:test), WSGATE_ECHO_BACKEND (host binary),
#      WSGATE_BUILD_TIMEOUT (seconds, default 3600).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
image="${WSGATE_IMAGE:-localhost/wsgate:test}"
base="localhost/debian:bookworm"
py=/usr/bin/python3 # Debian's, which has python3-websockets
passed=0
failed=0

work="$(mktemp -d)"
containers=()
pids=()
cleanup() {
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1" >&2; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: one test line per check
  local name="$1"
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

for tool in podman runc curl; do
  command -v "$tool" >/dev/null || { echo "test_image: $tool missing (apt-get install podman buildah runc curl)" >&2; exit 1; }
done
"$py" -c 'import websockets' 2>/dev/null || { echo "test_image: python3-websockets missing" >&2; exit 1; }

# podman here needs runc and ulimits the container can actually set.
export CONTAINERS_CONF="$work/containers.conf"
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF

# ---- base image (cached) --------------------------------------------------------------------
if podman image exists "$base"; then
  echo "test_image: base $base present"
else
  command -v debootstrap >/dev/null || { echo "test_image: debootstrap missing" >&2; exit 1; }
  mirror="$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "test_image: debootstrap bookworm from $mirror"
  root="$work/rootfs"
  timeout 900 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import - "$base" >/dev/null
  rm -rf "$root"
fi

# ---- the image ------------------------------------------------------------------------------
echo "test_image: building $image"
if timeout "${WSGATE_BUILD_TIMEOUT:-3600}" podman build --isolation=chroot --pull=never \
  --build-arg BASE_IMAGE="$base" -t "$image" -f "$repo/Dockerfile" "$repo" >"$work/build.log" 2>&1; then
  ok "image builds"
else
  tail -40 "$work/build.log" >&2
  bad "image builds"
  echo "0 passed, 1 failed"
  exit 1
fi

inspect() { podman image inspect --format "$1" "$image"; }
check "runs as user 10001" test "$(inspect '{{.Config.User}}')" = "10001:10001"
check "entrypoint is wsgate-proxy" test "$(inspect '{{json .Config.Entrypoint}}')" = '["wsgate-proxy"]'
ports="$(inspect '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')"
for port in 8080 8443 9901 18000 9902; do
  check "exposes $port" grep -q "$port/tcp" <<<"$ports"
done
run_in() { podman run --rm --network=none --entrypoint /bin/sh "$image" -c "$1"; }
check "wsgate-proxy and wsgate-echo-backend installed" \
  run_in 'test -x /usr/local/bin/wsgate-proxy && test -x /usr/local/bin/wsgate-echo-backend'
libs="$(run_in 'for b in /usr/local/bin/wsgate-*; do ldd "$b"; done' 2>&1)"
check "every shared library resolves" test -n "$libs" -a -z "$(grep 'not found' <<<"$libs")"
check "no compiler in the runtime image" run_in '! command -v c++ && ! test -d /usr/include/boost'
check "wsgate-proxy --help runs" run_in 'wsgate-proxy --help >/dev/null'

# ---- a proxy from the image relays a WebSocket echo -----------------------------------------
# wait_for_port COMMAND REGEX: runs COMMAND (one that prints a log) until its output matches
# REGEX, at most 200 times 0.1 s; prints group 1 of the first match.
wait_for_port() {
  local what="$1" regex="$2" i out
  for ((i = 0; i < 200; i++)); do
    out="$($what 2>&1 | sed -n -E "s/.*${regex}.*/\1/p" | head -1)"
    if [[ -n "$out" ]]; then
      echo "$out"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

if [[ -n "${WSGATE_ECHO_BACKEND:-}" ]]; then
  "$WSGATE_ECHO_BACKEND" --listen 127.0.0.1:0 >"$work/echo.log" 2>&1 &
  pids+=($!)
  echo_logs() { cat "$work/echo.log"; }
else
  containers+=("$(podman run -d --network=host --entrypoint wsgate-echo-backend "$image" --listen 127.0.0.1:0)")
  echo_logs() { podman logs "${containers[0]}"; }
fi
echo_port="$(wait_for_port echo_logs 'listening \(echo\) on 127\.0\.0\.1:([0-9]+)')" ||
  { echo_logs >&2; bad "echo backend starts"; echo "$passed passed, $((failed)) failed"; exit 1; }
ok "echo backend listens on $echo_port"

mkdir -p "$work/routes"
chmod 0755 "$work" "$work/routes"
cat >"$work/routes/echo.yaml" <<EOF
apiVersion: wsgate.dev/v1alpha1
kind: WebSocketRoute
metadata:
  name: echo
spec:
  pathPrefix: /
  backends:
    - address: 127.0.0.1:$echo_port
EOF
chmod 0644 "$work/routes/echo.yaml"
proxy="$(podman run -d --network=host -v "$work/routes:/etc/wsgate/routes:ro" "$image" \
  --routes /etc/wsgate/routes --listen 127.0.0.1:0 --admin 127.0.0.1:0 --drain-seconds 5)"
containers+=("$proxy")
proxy_logs() { podman logs "$proxy"; }
admin_port="$(wait_for_port proxy_logs 'listening \(admin\) on 127\.0\.0\.1:([0-9]+)')" || admin_port=""
http_port="$(wait_for_port proxy_logs 'listening \(http\) on 127\.0\.0\.1:([0-9]+)')" || http_port=""
if [[ -z "$admin_port" || -z "$http_port" ]]; then
  proxy_logs >&2
  bad "proxy from the image starts"
  echo "$passed passed, $failed failed"
  exit 1
fi
ok "proxy from the image listens (http $http_port, admin $admin_port)"

ready=""
for ((i = 0; i < 100; i++)); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz"; then ready=yes; break; fi
  sleep 0.1
done
check "/readyz answers 200" test -n "$ready"
check "/metrics has wsgate_config_updates_total" \
  bash -c "curl -fsS http://127.0.0.1:$admin_port/metrics | grep -q '^wsgate_config_updates_total'"

echo_once() {
  timeout 20 "$py" - "$http_port" <<'EOF'
import asyncio, sys
import websockets

async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as ws:
        await ws.send("hello through the image")
        reply = await asyncio.wait_for(ws.recv(), 10)
        assert reply == "hello through the image", reply

asyncio.run(main(int(sys.argv[1])))
EOF
}
check "WebSocket echo through the image's proxy" echo_once

# SIGTERM: drains and exits 0 well within --drain-seconds + margin.
podman kill --signal TERM "$proxy" >/dev/null
code="$(timeout 30 podman wait "$proxy" 2>/dev/null || echo timeout)"
check "SIGTERM ends the proxy with exit code 0 (got $code)" test "$code" = 0

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
