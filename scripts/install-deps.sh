#!/usr/bin/env bash
# Installs every Debian package wsgate's build, tests and demo need.
# Idempotent: packages already present are skipped, so a second run is instant.
# Usage: scripts/install-deps.sh [build|demo|test|all]   (default: all)
set -euo pipefail

profile="${1:-all}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config ccache git
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
  libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  libgtest-dev libgmock-dev
)
# What the test suite and the demo drive: real clients, real nginx, promtool, a browser.
test_pkgs=(
  python3 python3-websockets curl openssl nginx-light haproxy prometheus
  chromium clang clang-format libclang-rt-14-dev unzip
  # the container image test: podman builds the Dockerfile from a debootstrapped base
  podman buildah runc debootstrap
)
demo_pkgs=(python3 python3-websockets curl)

case "$profile" in
  build) wanted=("${build_pkgs[@]}") ;;
  demo) wanted=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
  test | all) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|demo|test|all]" >&2; exit 2 ;;
esac

# Node.js and npm come with the machine (NodeSource build); Debian's npm package would conflict.
if [[ "$profile" != build && "$profile" != demo ]] && ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: node/npm not found; the Helm and manifest tests need them" >&2
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts nginx/haproxy/prometheus services on install; tests run their own copies.
for svc in nginx haproxy prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${sudo_cmd[@]}" systemctl stop "$svc" || true
  fi
done
