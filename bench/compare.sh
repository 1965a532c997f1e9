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
# WSGATE_PROXY=path picks the wsgate build; WSGATE_PROXY_B=path with target wsgate-b adds a second
# build to the same run (to measure a change).
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
PROXY_B=${WSGATE_PROXY_B:-}  # optional second wsgate build: target "wsgate-b"
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

# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"
make_cert
start_backend

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

read -r -a TARGET_LIST <<<"$TARGETS"
for run in $(seq 1 "$RUNS"); do
  # Each run starts with a different target: a target measured right after another one's
  # handshake burst meets tens of thousands of TIME_WAIT sockets, so no target may always be
  # first or last.
  ordered=()
  for i in "${!TARGET_LIST[@]}"; do
    ordered+=("${TARGET_LIST[$(((i + run - 1) % ${#TARGET_LIST[@]}))]}")
  done
  for target in "${ordered[@]}"; do
    for transport in $TRANSPORTS; do
      if [[ "$target" == wsgate* ]] && [ "$transport" = wss ] && [ "$WSGATE_TLS" = 0 ]; then
        echo "{\"target\":\"$target\",\"transport\":\"wss\",\"run\":$run,\"workers\":$WORKERS,\"pending\":1}" >>"$RESULTS"
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
