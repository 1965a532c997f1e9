#!/usr/bin/env bash
# Side-by-side WebSocket benchmark: the same echo backend and load client against direct (no
# proxy), wsgate, nginx (the classic "NGINX as a WebSocket Proxy" config, timeouts raised) and
# HAProxy (mode http, timeout tunnel). The proxy runs pinned to one cpu, client and backend to
# the other; proxy CPU is read from /proc/PID/stat (utime+stime) around each measured window.
# Prints one markdown table of medians over the runs, ratios, and the issue's targets.
#
#   bench/compare.sh [--runs N] [--workers N] [--scale] [--out DIR] [--targets "direct wsgate nginx haproxy"]
#                    [--transports "ws wss"]
#
# --workers 2 --scale: the scale variant (2 workers per proxy, no pinning, idle 1000/4000/9000).
# Durations and loads come from the environment (defaults below), e.g. HS_SECONDS=3.
set -euo pipefail

# The machine is shared: with scheduler autogroups, other sessions' compile jobs would take two
# thirds of each cpu and every proxy would look latency-bound (wakeups waiting a whole slice).
# So the run gets its own session and a higher autogroup weight (BENCH_NICE=0 turns this off).
BENCH_NICE=${BENCH_NICE:--10}
if [ -z "${WSGATE_BENCH_SESSION:-}" ] && [ "$BENCH_NICE" != 0 ] && [ -w /proc/self/autogroup ]; then
  export WSGATE_BENCH_SESSION=1 BENCH_NICE
  exec setsid -w bash -c 'echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true; exec "$0" "$@"' "$0" "$@"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${WSGATE_BIN_DIR:-$ROOT/build-bench/bin}
BENCH=${BENCH:-$BIN_DIR/wsgate-bench}
PROXY=${WSGATE_PROXY:-$BIN_DIR/wsgate-proxy}
RUNS=3
WORKERS=1
SCALE=0
OUT=""
TARGETS="direct wsgate nginx haproxy"
TRANSPORTS="ws wss"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --scale) SCALE=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --transports) TRANSPORTS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

WARMUP=${WARMUP:-0.5}
HS_SECONDS=${HS_SECONDS:-3}
HS_WORKERS=${HS_WORKERS:-64}
ECHO_SECONDS=${ECHO_SECONDS:-3}
ECHO_RATE=${ECHO_RATE:-20000}
ECHO_TUNNELS=${ECHO_TUNNELS:-100}
ECHO_SIZE=${ECHO_SIZE:-128}
BULK_SECONDS=${BULK_SECONDS:-3}
BULK_TUNNELS=${BULK_TUNNELS:-4}
BULK_SIZE=${BULK_SIZE:-1048576}
SOURCES=${SOURCES:-8}
if [ "$SCALE" = 1 ]; then
  IDLE_SIZES=${IDLE_SIZES:-"1000 4000 9000"}
  PROXY_CPUS=${PROXY_CPUS:-0,1}
  LOAD_CPUS=${LOAD_CPUS:-0,1}
else
  IDLE_SIZES=${IDLE_SIZES:-9000}
  PROXY_CPUS=${PROXY_CPUS:-1}
  LOAD_CPUS=${LOAD_CPUS:-0}
fi

for tool in "$BENCH" "$PROXY"; do
  [ -x "$tool" ] || { echo "missing $tool (build wsgate-bench and wsgate-proxy first)" >&2; exit 1; }
done
command -v nginx >/dev/null && command -v haproxy >/dev/null || { echo "needs nginx and haproxy" >&2; exit 1; }

WORK=${OUT:-$(mktemp -d /tmp/wsgate-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
STARTED=$(date +%s)

PIDS_TO_KILL=()
cleanup() {
  for pid in "${PIDS_TO_KILL[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Certificate: ECDSA P-256, what a current deployment would use (an RSA key would make every
# proxy's wss handshake mostly RSA signing).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"

WSGATE_TLS=0
if "$PROXY" --help 2>&1 | grep -q -- --tls-listen; then WSGATE_TLS=1; fi

BACKEND_PORT=$(free_port)
BACKEND_TLS_PORT=$(free_port)
taskset -c "$LOAD_CPUS" "$BENCH" backend --listen "127.0.0.1:$BACKEND_PORT" \
  --tls-listen "127.0.0.1:$BACKEND_TLS_PORT" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" \
  2>"$WORK/backend.log" &
BACKEND_PID=$!
PIDS_TO_KILL+=("$BACKEND_PID")

PROXY_PID=""
WATCH=()      # pids whose CPU and RSS count as the proxy's
PORT=""
TLS_PORT=""

start_proxy() {  # target
  local target=$1
  PORT=$(free_port)
  TLS_PORT=$(free_port)
  case "$target" in
    direct)
      PROXY_PID=""; WATCH=(); PORT=$BACKEND_PORT; TLS_PORT=$BACKEND_TLS_PORT; return 0 ;;
    wsgate)
      mkdir -p "$WORK/routes"
      cat >"$WORK/routes/bench.yaml" <<EOF
apiVersion: wsgate.dev/v1alpha1
kind: WebSocketRoute
metadata:
  name: bench
spec:
  pathPrefix: /
  backends:
    - address: 127.0.0.1:$BACKEND_PORT
EOF
      local tls_flags=()
      if [ "$WSGATE_TLS" = 1 ]; then
        tls_flags=(--tls-listen "127.0.0.1:$TLS_PORT" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
      fi
      taskset -c "$PROXY_CPUS" "$PROXY" --routes "$WORK/routes" --listen "127.0.0.1:$PORT" \
        "${tls_flags[@]}" --admin 127.0.0.1:0 --workers "$WORKERS" --drain-seconds 0 \
        --log-level warn 2>>"$WORK/wsgate.log" &
      PROXY_PID=$! ;;
    nginx)
      mkdir -p "$WORK/nginx-tmp"
      cat >"$WORK/nginx.conf" <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
daemon off;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      close;
  }
  upstream websocket {
    server 127.0.0.1:$BACKEND_PORT;
  }
  server {
    listen 127.0.0.1:$PORT;
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    location / {
      proxy_pass http://websocket;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
EOF
      taskset -c "$PROXY_CPUS" nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
      PROXY_PID=$! ;;
    haproxy)
      cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 9700
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:$PORT
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK/combined.pem
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND_PORT
EOF
      taskset -c "$PROXY_CPUS" haproxy -db -f "$WORK/haproxy.cfg" 2>>"$WORK/haproxy.log" &
      PROXY_PID=$! ;;
  esac
  PIDS_TO_KILL+=("$PROXY_PID")
  # Ready = one real tunnel works end to end (on both listeners).
  local ok=0
  for _ in $(seq 1 100); do
    if "$BENCH" idle --url "ws://127.0.0.1:$PORT/" --tunnels 1 --probes 0 --hold 0 >/dev/null 2>&1; then
      ok=1; break
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "$target did not come up" >&2; exit 1; }
  WATCH=("$PROXY_PID")
  if [ "$target" = nginx ]; then
    for _ in $(seq 1 50); do
      mapfile -t children < <(pgrep -P "$PROXY_PID" || true)
      [ "${#children[@]}" -ge "$WORKERS" ] && break
      sleep 0.05
    done
    WATCH+=("${children[@]}")
  fi
}

stop_proxy() {
  [ -n "$PROXY_PID" ] || return 0
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# Runs one client mode and appends its JSON line, tagged, to the results.
measure() {  # target transport run mode args...
  local target=$1 transport=$2 run=$3 mode=$4
  shift 4
  local port=$PORT scheme=ws
  if [ "$transport" = wss ]; then port=$TLS_PORT; scheme=wss; fi
  local watch_flags=()
  for pid in "${WATCH[@]}"; do watch_flags+=(--watch "$pid"); done
  local line
  line=$(taskset -c "$LOAD_CPUS" "$BENCH" "$mode" --url "$scheme://127.0.0.1:$port/" \
    --sources "$SOURCES" --warmup "$WARMUP" "${watch_flags[@]}" --peer "$BACKEND_PID" "$@" \
    2>>"$WORK/client.log" || true)
  [ -n "$line" ] || line='{"mode":"'"$mode"'","failed":1}'
  echo "{\"target\":\"$target\",\"transport\":\"$transport\",\"run\":$run,\"workers\":$WORKERS,\"load\":$(cut -d' ' -f1 /proc/loadavg),\"r\":$line}" >>"$RESULTS"
  echo "  $target/$transport run $run $mode: $line" >&2
}

for run in $(seq 1 "$RUNS"); do
  for target in $TARGETS; do
    for transport in $TRANSPORTS; do
      if [ "$target" = wsgate ] && [ "$transport" = wss ] && [ "$WSGATE_TLS" = 0 ]; then
        echo "{\"target\":\"wsgate\",\"transport\":\"wss\",\"run\":$run,\"workers\":$WORKERS,\"pending\":1}" >>"$RESULTS"
        continue
      fi
      start_proxy "$target"
      measure "$target" "$transport" "$run" handshake --duration "$HS_SECONDS" --workers "$HS_WORKERS"
      measure "$target" "$transport" "$run" echo --duration "$ECHO_SECONDS" --rate "$ECHO_RATE" \
        --tunnels "$ECHO_TUNNELS" --size "$ECHO_SIZE"
      measure "$target" "$transport" "$run" bulk --duration "$BULK_SECONDS" --tunnels "$BULK_TUNNELS" \
        --size "$BULK_SIZE"
      stop_proxy
      for tunnels in $IDLE_SIZES; do
        [ "$target" = direct ] && [ "$SCALE" = 0 ] && continue
        start_proxy "$target"  # fresh process: its RSS growth is the tunnels' cost
        measure "$target" "$transport" "$run" idle --tunnels "$tunnels" --hold 1 --probes 200 \
          --timeout 10
        stop_proxy
      done
    done
  done
done

ELAPSED=$(($(date +%s) - STARTED))
python3 "$ROOT/bench/report.py" "$RESULTS" --elapsed "$ELAPSED" --workers "$WORKERS" \
  --proxy-cpus "$PROXY_CPUS" --load-cpus "$LOAD_CPUS" --echo-rate "$ECHO_RATE" \
  --echo-size "$ECHO_SIZE" --echo-tunnels "$ECHO_TUNNELS" --bulk-size "$BULK_SIZE"
echo "raw results and logs: $WORK" >&2
