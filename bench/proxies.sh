# Shell functions shared by bench/compare.sh and bench/profile.sh: ports, the test certificate,
# the echo backend, and each proxy started the same way (config, pinning, readiness).
# Needs: WORK BENCH PROXY WORKERS PROXY_CPUS LOAD_CPUS. Optional: PROXY_WRAPPER (a command
# prefix for wsgate only, e.g. valgrind), READY_TRIES (x 0.1 s), PROXY_B (a second wsgate build,
# target "wsgate-b", to measure a change side by side).

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
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"
}

start_backend() {
  WSGATE_TLS=0
  if "$PROXY" --help 2>&1 | grep -q -- --tls-listen; then WSGATE_TLS=1; fi
  BACKEND_PORT=$(free_port)
  BACKEND_TLS_PORT=$(free_port)
  taskset -c "$LOAD_CPUS" "$BENCH" backend --listen "127.0.0.1:$BACKEND_PORT" \
    --tls-listen "127.0.0.1:$BACKEND_TLS_PORT" --tls-cert "$WORK/cert.pem" \
    --tls-key "$WORK/key.pem" 2>"$WORK/backend.log" &
  BACKEND_PID=$!
  PIDS_TO_KILL+=("$BACKEND_PID")
}

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
    wsgate | wsgate-b)
      local binary=$PROXY
      [ "$target" = wsgate-b ] && binary=$PROXY_B
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
      taskset -c "$PROXY_CPUS" ${PROXY_WRAPPER:-} "$binary" --routes "$WORK/routes" --listen "127.0.0.1:$PORT" \
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
    # nginx 1.22 leaves TLS 1.3 off by default (1.23.4 turned it on): without this line it
    # would be measured doing TLS 1.2 while wsgate and HAProxy do TLS 1.3.
    ssl_protocols TLSv1.2 TLSv1.3;
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
  for _ in $(seq 1 "${READY_TRIES:-100}"); do
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

