#!/usr/bin/env bash
# Where a proxy's CPU goes, per unit of work, with the same setup as compare.sh.
#
#   bench/profile.sh syscalls [--targets "wsgate nginx haproxy"]  syscalls per handshake and per
#                              echoed message (strace -c on the proxy while the client runs)
#   bench/profile.sh callgrind [--wss]  wsgate under valgrind callgrind: a handshake load, then
#                                an echo load; prints the top functions (user space only)
#   bench/profile.sh dhat        wsgate under valgrind DHAT: heap blocks allocated per handshake
#   bench/profile.sh dhat-idle   wsgate under DHAT holding 2000 idle tunnels: heap bytes per
#                                tunnel at the peak, by allocation site
#
# perf is not usable here (`perf stat -e instructions true` reports <not supported>), hence
# valgrind. Output goes to --out DIR (default a fresh /tmp dir).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${WSGATE_BIN_DIR:-$ROOT/build-bench/bin}
BENCH=${BENCH:-$BIN_DIR/wsgate-bench}
PROXY=${WSGATE_PROXY:-$BIN_DIR/wsgate-proxy}
WORKERS=1
PROXY_CPUS=${PROXY_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
MODE=${1:-}
shift || true
TARGETS="wsgate nginx haproxy"
SCHEME=ws
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --wss) SCHEME=wss; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
WORK=${OUT:-$(mktemp -d /tmp/wsgate-profile.XXXXXX)}
mkdir -p "$WORK"

# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"
make_cert
start_backend

client() {  # mode args... ; prints the client's JSON line
  taskset -c "$LOAD_CPUS" "$BENCH" "$@" --warmup 0 2>>"$WORK/client.log"
}

url() {  # of the proxy just started, in the chosen scheme
  if [ "$SCHEME" = wss ]; then echo "wss://127.0.0.1:$TLS_PORT/"; else echo "ws://127.0.0.1:$PORT/"; fi
}

json() {  # field
  python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"
}

# (A low message rate: under strace a faster stream would batch several messages per read.)
# Prints "count name" per syscall from an strace -c summary, divided by units of work.
per_unit() {  # file units
  python3 - "$1" "$2" <<'EOF'
import re, sys
path, units = sys.argv[1], float(sys.argv[2])
rows = []
for line in open(path):
    parts = line.split()
    if len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and parts[-1] not in ("total",):
        calls = int(parts[3])
        rows.append((calls / units, parts[-1]))
rows.sort(reverse=True)
print(f"  total {sum(r[0] for r in rows):.1f}: " +
      ", ".join(f"{name} {n:.2f}" for n, name in rows if n >= 0.05))
EOF
}

syscalls() {
  for target in $TARGETS; do
    start_proxy "$target"
    local pids=("${WATCH[@]}")
    if [ "$target" = nginx ]; then pids=("${WATCH[@]:1}"); fi  # the workers do the work
    local strace_args=()
    for pid in "${pids[@]}"; do
      for task in /proc/"$pid"/task/*; do strace_args+=(-p "${task##*/}"); done
    done

    strace -f -c -q -o "$WORK/$target-hs.strace" "${strace_args[@]}" &
    local tracer=$!
    sleep 0.5
    local line
    line=$(client handshake --url "ws://127.0.0.1:$PORT/" --duration 3 --workers 16)
    kill -INT "$tracer"; wait "$tracer" || true
    local handshakes
    handshakes=$(echo "$line" | json handshakes)
    echo "$target: syscalls per ws handshake ($handshakes handshakes)"
    per_unit "$WORK/$target-hs.strace" "$handshakes"

    strace -f -c -q -o "$WORK/$target-echo.strace" "${strace_args[@]}" &
    tracer=$!
    sleep 0.5
    line=$(client echo --url "ws://127.0.0.1:$PORT/" --duration 5 --tunnels 20 --rate 1000)
    kill -INT "$tracer"; wait "$tracer" || true
    local replies
    replies=$(echo "$line" | json replies)
    echo "$target: syscalls per echoed message ($replies messages, 20 tunnels opened too)"
    per_unit "$WORK/$target-echo.strace" "$replies"
    stop_proxy
  done
}

under_valgrind() {  # tool-args...
  PROXY_WRAPPER="valgrind $*" READY_TRIES=300 start_proxy wsgate
}

ir_per() {  # callgrind-out units
  python3 - "$1" "$2" <<'EOF'
import sys
total = 0
for line in open(sys.argv[1]):
    if line.startswith("totals:") or line.startswith("summary:"):
        total = max(total, int(line.split()[1]))
print(f"{total / float(sys.argv[2]):,.0f}")
EOF
}

callgrind() {
  under_valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.hs.out"
  callgrind_control -z "$PROXY_PID" >/dev/null  # start-up and the readiness probe stay out
  local line
  line=$(client handshake --url "$(url)" --duration 20 --workers 8)
  local handshakes
  handshakes=$(echo "$line" | json handshakes)
  stop_proxy
  echo "wsgate: $(ir_per "$WORK/callgrind.hs.out" "$handshakes") user-space instructions per handshake ($handshakes handshakes)"
  callgrind_annotate --inclusive=yes "$WORK/callgrind.hs.out" >"$WORK/callgrind.hs.inclusive.txt"
  callgrind_annotate "$WORK/callgrind.hs.out" >"$WORK/callgrind.hs.self.txt"
  echo "top of $WORK/callgrind.hs.self.txt:"
  sed -n 1,45p "$WORK/callgrind.hs.self.txt"

  under_valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.echo.out"
  callgrind_control -z "$PROXY_PID" >/dev/null
  line=$(client echo --url "$(url)" --duration 20 --tunnels 20 --rate 2000)
  local replies
  replies=$(echo "$line" | json replies)
  stop_proxy
  echo "wsgate: $(ir_per "$WORK/callgrind.echo.out" "$replies") user-space instructions per echoed message ($replies messages)"
  callgrind_annotate "$WORK/callgrind.echo.out" >"$WORK/callgrind.echo.self.txt"
  echo "top of $WORK/callgrind.echo.self.txt:"
  sed -n 1,45p "$WORK/callgrind.echo.self.txt"
}

dhat() {
  under_valgrind --tool=dhat --dhat-out-file="$WORK/dhat.hs.json"
  local before after line
  line=$(client idle --url "ws://127.0.0.1:$PORT/" --tunnels 1 --probes 0 --hold 0)
  stop_proxy
  before=$(grep -o 'Total: *[0-9,]* bytes in *[0-9,]* blocks' "$WORK/wsgate.log" | tail -1)
  : >"$WORK/wsgate.log"
  under_valgrind --tool=dhat --dhat-out-file="$WORK/dhat.hs.json"
  line=$(client handshake --url "ws://127.0.0.1:$PORT/" --duration 10 --workers 8)
  local handshakes
  handshakes=$(echo "$line" | json handshakes)
  stop_proxy
  after=$(grep -o 'Total: *[0-9,]* bytes in *[0-9,]* blocks' "$WORK/wsgate.log" | tail -1)
  python3 - "$before" "$after" "$handshakes" <<'EOF'
import re, sys
def parse(text):
    nums = [int(x.replace(",", "")) for x in re.findall(r"[0-9][0-9,]*", text)]
    return nums[0], nums[1]
b_bytes, b_blocks = parse(sys.argv[1])
a_bytes, a_blocks = parse(sys.argv[2])
n = int(sys.argv[3])
print(f"wsgate: {(a_blocks - b_blocks) / n:.1f} heap blocks and {(a_bytes - b_bytes) / n:.0f} "
      f"bytes allocated per handshake cycle ({n} cycles; start-up + 1 tunnel subtracted)")
EOF
}

dhat_idle() {
  local tunnels=2000
  under_valgrind --tool=dhat --dhat-out-file="$WORK/dhat.idle.json"
  client idle --url "ws://127.0.0.1:$PORT/" --tunnels "$tunnels" --probes 0 --hold 2 \
    --timeout 30 >/dev/null
  stop_proxy
  python3 - "$WORK/dhat.idle.json" "$tunnels" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
frames = d["ftbl"]
noise = re.compile(r"operator new|malloc|memalign|allocate|__gnu_cxx|std::allocator|alloc_traits|"
                   r"std::__new_allocator|std::_Vector_base|aligned_new")
sites = {}
for pp in d["pps"]:
    live = pp.get("gb", 0)
    if live < n:  # less than a byte per tunnel: not per-tunnel state
        continue
    names = [frames[i] for i in pp["fs"] if not noise.search(frames[i])]
    key = " <- ".join(re.sub(r"\(.*", "", f.split(": ", 1)[-1])[-70:] for f in names[:2])
    blocks, size = sites.get(key, (0, 0))
    sites[key] = (blocks + pp.get("gbk", 0), size + live)
total = sum(v[1] for v in sites.values())
print(f"wsgate: {total / n:,.0f} heap bytes live per idle tunnel at the peak ({n} tunnels)")
for key, (blocks, size) in sorted(sites.items(), key=lambda kv: -kv[1][1])[:12]:
    print(f"  {size / n:7,.0f} B in {blocks / n:4.1f} blocks  {key}")
EOF
}

case "$MODE" in
  syscalls) syscalls ;;
  callgrind) callgrind ;;
  dhat) dhat ;;
  dhat-idle) dhat_idle ;;
  *) echo "usage: $0 syscalls|callgrind|dhat|dhat-idle [--targets LIST] [--out DIR]" >&2; exit 2 ;;
esac
echo "files in $WORK" >&2
