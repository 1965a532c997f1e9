#!/usr/bin/env bash
# Regenerates deploy/prometheus/alerts.yaml and deploy/prometheus/queries.txt from the chart's
# alert template and the Grafana dashboard. --check: only report whether the committed files
# are current (exit 1 if not). Needs scripts/fetch-tools.sh to have run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$repo/tools/bin/helm" template wsgate "$repo/charts/wsgate" --namespace wsgate \
  --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml >"$tmp/rule.yaml"
node "$repo/tests/delivery/gen-monitoring.mjs" "$tmp/rule.yaml" \
  "$repo/deploy/grafana/wsgate-dashboard.json" "$tmp"

status=0
for f in alerts.yaml queries.txt; do
  target="$repo/deploy/prometheus/$f"
  if [[ "${1:-}" == "--check" ]]; then
    if ! diff -u "$target" "$tmp/$f"; then
      echo "gen-monitoring: deploy/prometheus/$f is stale: run tests/delivery/gen-monitoring.sh" >&2
      status=1
    fi
  else
    cp "$tmp/$f" "$target"
  fi
done
exit "$status"
