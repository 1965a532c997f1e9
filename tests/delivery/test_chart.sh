#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted $ is meant for node, bash -c and podman templates
# Offline checks of everything wsgate ships to Kubernetes and Prometheus, no cluster needed:
#   - helm lint --strict and helm template --include-crds for every shape of the chart
#     (ingress Deployment/DaemonSet, standalone ConfigMap routes, controller only, the sidecar
#     example chart; monitoring on and off), each rendering validated object by object
#     (kubernetes-models, prometheus-operator models, cross-references; tests/delivery/validate.mjs)
#     and asserted on the flags, probes and lifecycle that SPEC.md asks for;
#   - route files against the CRD schema: deploy/examples/routes, good fixtures accepted, bad
#     fixtures refused for their stated reason;
#   - copies that must not drift (CRD, dashboard, alerts.yaml, queries.txt);
#   - promtool: the alert file, the alert unit tests, every query of queries.txt parses.
# Prints one ok/FAIL line per check and "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/delivery"
chart="$repo/charts/wsgate"
crd="$chart/crds/websocketroutes.wsgate.dev.yaml"
helm="$repo/tools/bin/helm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1" >&2; failed=$((failed + 1)); }
# check NAME COMMAND...: runs COMMAND (a program at most 120 s; a shell function bounds itself),
# output kept in $work/last.log and shown on failure.
check() {
  local name="$1" bound=(timeout 120)
  shift
  declare -F "$1" >/dev/null && bound=()
  if "${bound[@]}" "$@" >"$work/last.log" 2>&1; then
    ok "$name"
  else
    bad "$name"
    sed 's/^/     /' "$work/last.log" | tail -25 >&2
  fi
}
# expect_value NAME FILE KIND/NAME PATH EXPECTED: one field of one rendered object.
expect_value() {
  local got
  got="$(node "$here/query.mjs" "$2" "$3" "$4" 2>&1)"
  if [[ "$got" == "$5" ]]; then ok "$1"; else bad "$1: $3 $4 is '$got', want '$5'"; fi
}
# expect_args_contain NAME FILE KIND/NAME CONTAINER_INDEX ARG...: the args list holds ARGs in
# this order, each one right after the other.
expect_args_contain() {
  local name="$1" file="$2" obj="$3" index="$4"
  shift 4
  local args want
  args="$(node "$here/query.mjs" "$file" "$obj" "spec.template.spec.containers[$index].args" 2>&1)"
  want="$(printf '"%s",' "$@")"
  if [[ "$args," == *"${want}"* ]]; then ok "$name"; else bad "$name: args $args lack $*"; fi
}

# ---- tools --------------------------------------------------------------------------------
if ! timeout 300 "$repo/scripts/fetch-tools.sh" >"$work/fetch.log" 2>&1; then
  cat "$work/fetch.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
command -v promtool >/dev/null || { echo "test_chart: promtool missing (apt-get install prometheus)" >&2; exit 1; }

# ---- copies that must stay identical ------------------------------------------------------
check "deploy/kubernetes CRD equals the chart's" cmp "$crd" "$repo/deploy/kubernetes/websocketroutes.wsgate.dev.yaml"
check "chart dashboard equals deploy/grafana's" cmp "$repo/deploy/grafana/wsgate-dashboard.json" "$chart/files/wsgate-dashboard.json"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")"
tag_in_helper="$(sed -n '/define "wsgate.defaultImageTag"/{n;p}' "$chart/templates/_helpers.tpl")"
check "wsgate.defaultImageTag equals appVersion ($app_version)" test "$app_version" = "$tag_in_helper"
check "alerts.yaml and queries.txt are generated from the chart and dashboard" "$here/gen-monitoring.sh" --check

# ---- dashboard ----------------------------------------------------------------------------
check_dashboard() {
  node -e '
    const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const panels = d.panels ?? [];
    if (!d.uid || !d.title || panels.length < 7) throw new Error("uid, title or panels missing");
    const ids = new Set(panels.map((p) => p.id));
    if (ids.size !== panels.length) throw new Error("duplicate panel ids");
    for (const p of panels) {
      if (!(p.targets ?? []).length || p.targets.some((t) => !t.expr)) throw new Error(`panel ${p.title}: no query`);
    }
    const all = panels.flatMap((p) => p.targets.map((t) => t.expr)).join("\n");
    for (const m of ["wsgate_handshakes_total", "wsgate_active_tunnels", "wsgate_tunnel_bytes_total",
                     "wsgate_handshake_duration_seconds_bucket", "wsgate_tunnel_duration_seconds_bucket",
                     "wsgate_config_updates_total", "histogram_quantile(0.99", "histogram_quantile(0.5"]) {
      if (!all.includes(m)) throw new Error(`no panel uses ${m}`);
    }
  ' "$1"
}
check "dashboard JSON parses and every panel has a query" check_dashboard "$repo/deploy/grafana/wsgate-dashboard.json"

# ---- prometheus ---------------------------------------------------------------------------
check "promtool check rules deploy/prometheus/alerts.yaml" promtool check rules "$repo/deploy/prometheus/alerts.yaml"
check "promtool test rules (alerts fire and stay quiet as they should)" promtool test rules "$here/alerts_test.yaml"
queries_as_rules() {
  local n=0
  echo "groups:"
  echo "  - name: queries"
  echo "    rules:"
  while IFS= read -r q; do
    [[ -z "$q" ]] && continue
    n=$((n + 1))
    printf '      - record: wsgate:query_%d\n        expr: %s\n' "$n" "$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$q")"
  done <"$repo/deploy/prometheus/queries.txt"
}
queries_as_rules >"$work/queries-rules.yaml"
nq="$(grep -c . "$repo/deploy/prometheus/queries.txt")"
check "every one of the $nq queries in queries.txt parses (promtool)" promtool check rules "$work/queries-rules.yaml"

# ---- route files against the CRD ----------------------------------------------------------
shopt -s nullglob
examples=("$repo"/deploy/examples/routes/*.yaml)
good=("$here"/fixtures/routes/good/*.yaml "$repo/deploy/kubernetes/example-websocketroute.yaml" "${examples[@]}")
check "deploy/examples/routes (${#examples[@]} files) and good fixtures pass the CRD schema" \
  node "$here/validate.mjs" routes --crd "$crd" --good "${good[@]}"
badfix=("$here"/fixtures/routes/bad/*.yaml "$here"/fixtures/routes/bad-status/*.yaml)
check "${#badfix[@]} bad route fixtures are refused, each for its stated reason" \
  node "$here/validate.mjs" routes --crd "$crd" --bad "${badfix[@]}"

# ---- the validator itself catches broken objects ------------------------------------------
for f in "$here"/fixtures/objects-bad/*.yaml; do
  expect="$(sed -n 's/^# expect: //p' "$f")"
  out="$(timeout 60 node "$here/validate.mjs" objects "$f" 2>&1)"
  rc=$?
  if [[ $rc -eq 1 && "$out" == *"$expect"* ]]; then
    ok "validator refuses $(basename "$f")"
  else
    bad "validator refuses $(basename "$f") (rc $rc, want '$expect'): $out"
  fi
done

# ---- chart: lint and render every shape ---------------------------------------------------
declare -A shapes=(
  [default]=""
  [ingress-deployment]="$chart/ci/ingress-deployment-values.yaml"
  [ingress-daemonset]="$chart/ci/ingress-daemonset-values.yaml"
  [standalone]="$chart/ci/standalone-values.yaml"
  [controller-only]="$chart/ci/controller-only-values.yaml"
)
rendered=()
for shape in default ingress-deployment ingress-daemonset standalone controller-only; do
  values=()
  [[ -n "${shapes[$shape]}" ]] && values=(-f "${shapes[$shape]}")
  check "helm lint --strict ($shape)" "$helm" lint --strict "$chart" "${values[@]}"
  out="$work/$shape.yaml"
  check "helm template --include-crds ($shape)" \
    bash -c '"$0" template rel "$1" --namespace gw --include-crds "${@:3}" >"$2"' \
    "$helm" "$chart" "$out" "${values[@]}"
  rendered+=("$out")
done

# The sidecar example chart, against this working tree's wsgate chart.
cp -r "$chart/examples/echo-app" "$work/echo-app"
rm -rf "$work/echo-app/charts" "$work/echo-app/Chart.lock"
sed -i "s|repository: file://../..|repository: file://$chart|" "$work/echo-app/Chart.yaml"
check "helm dependency update (echo-app example)" "$helm" dependency update "$work/echo-app"
check "helm lint --strict (echo-app sidecar example)" "$helm" lint --strict "$work/echo-app"
check "helm template --include-crds (echo-app sidecar example)" \
  bash -c '"$0" template demo "$1" --namespace demo --include-crds >"$2"' "$helm" "$work/echo-app" "$work/sidecar.yaml"
rendered+=("$work/sidecar.yaml")

for out in "${rendered[@]}"; do
  check "objects valid: $(basename "$out" .yaml)" node "$here/validate.mjs" objects "$out"
done

# ---- chart: what each shape must contain --------------------------------------------------
d="$work/default.yaml"
proxy=Deployment/rel-wsgate-proxy
expect_args_contain "proxy takes routes from the controller Service" "$d" $proxy 0 \
  --control-plane rel-wsgate-controller.gw.svc:18000 --node-id '$(POD_NAME)'
expect_args_contain "proxy admin on 0.0.0.0:9901 (probes reach it)" "$d" $proxy 0 --admin 0.0.0.0:9901
expect_args_contain "proxy drain seconds from values" "$d" $proxy 0 --drain-seconds 30
expect_value "POD_NAME from the downward API" "$d" $proxy 'spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath' metadata.name
expect_value "liveness probe on /healthz" "$d" $proxy 'spec.template.spec.containers[0].livenessProbe.httpGet.path' /healthz
expect_value "readiness probe on /readyz" "$d" $proxy 'spec.template.spec.containers[0].readinessProbe.httpGet.path' /readyz
expect_value "preStop sleeps before SIGTERM" "$d" $proxy 'spec.template.spec.containers[0].lifecycle.preStop.exec.command' '["/bin/sleep","5"]'
expect_value "grace period = drain 30 + preStop 5 + margin 5" "$d" $proxy 'spec.template.spec.terminationGracePeriodSeconds' 40
sc='spec.template.spec.containers[0].securityContext'
expect_value "proxy runs as 10001" "$d" $proxy "$sc.runAsUser" 10001
expect_value "proxy runAsNonRoot" "$d" $proxy "$sc.runAsNonRoot" true
expect_value "proxy read-only root filesystem" "$d" $proxy "$sc.readOnlyRootFilesystem" true
expect_value "proxy drops ALL capabilities" "$d" $proxy "$sc.capabilities.drop" '["ALL"]'
expect_value "proxy no privilege escalation" "$d" $proxy "$sc.allowPrivilegeEscalation" false
expect_value "proxy seccomp RuntimeDefault" "$d" $proxy "$sc.seccompProfile.type" RuntimeDefault
expect_value "proxy Service type LoadBalancer" "$d" Service/rel-wsgate-proxy spec.type LoadBalancer
expect_value "proxy Service http 80 -> http" "$d" Service/rel-wsgate-proxy 'spec.ports' '[{"name":"http","port":80,"targetPort":"http","protocol":"TCP"}]'
expect_value "PodDisruptionBudget for the proxies" "$d" PodDisruptionBudget/rel-wsgate-proxy spec.maxUnavailable 1
ctl=Deployment/rel-wsgate-controller
expect_value "controller args" "$d" $ctl 'spec.template.spec.containers[0].args' \
  '["--kubernetes","--grpc-listen","0.0.0.0:18000","--admin","0.0.0.0:9902","--log-format","json"]'
expect_value "controller Service ports grpc 18000, admin 9902" "$d" Service/rel-wsgate-controller 'spec.ports[0].port' 18000
expect_value "controller reads WebSocketRoutes" "$d" ClusterRole/rel-wsgate-controller 'rules[0]' \
  '{"apiGroups":["wsgate.dev"],"resources":["websocketroutes"],"verbs":["get","list","watch"]}'
expect_value "controller writes their status" "$d" ClusterRole/rel-wsgate-controller 'rules[1]' \
  '{"apiGroups":["wsgate.dev"],"resources":["websocketroutes/status"],"verbs":["get","update","patch"]}'
expect_value "binding names the controller's ServiceAccount" "$d" ClusterRoleBinding/rel-wsgate-controller 'subjects[0].name' rel-wsgate-controller
expect_value "CRD rendered with --include-crds" "$d" CustomResourceDefinition/websocketroutes.wsgate.dev spec.names.shortNames '["wsr"]'
for kind in ServiceMonitor PrometheusRule; do
  expect_value "monitoring off: no $kind" "$d" $kind . 0
done

i="$work/ingress-deployment.yaml"
expect_args_contain "TLS listener and first certificate" "$i" $proxy 0 \
  --tls-listen 0.0.0.0:8443 --tls-cert /etc/wsgate/tls/tls.crt --tls-key /etc/wsgate/tls/tls.key
expect_args_contain "second certificate for SNI" "$i" $proxy 0 \
  --tls-cert /etc/wsgate/tls-extra/wsgate-tls-other/tls.crt --tls-key /etc/wsgate/tls-extra/wsgate-tls-other/tls.key
expect_value "TLS Secret mounted as a volume (rotation reaches the pod)" "$i" $proxy 'spec.template.spec.volumes[1]' \
  '{"name":"tls","secret":{"secretName":"wsgate-tls"}}'
expect_value "Service https 443 -> https" "$i" Service/rel-wsgate-proxy 'spec.ports[1]' \
  '{"name":"https","port":443,"targetPort":"https","protocol":"TCP"}'
expect_value "ServiceMonitor scrapes the admin ports" "$i" ServiceMonitor/rel-wsgate 'spec.endpoints[0].port' admin
expect_value "grafana dashboard ConfigMap labelled for the sidecar" "$i" ConfigMap/rel-wsgate-dashboard 'metadata.labels.grafana_dashboard' 1
node "$here/query.mjs" "$i" ConfigMap/rel-wsgate-dashboard "data[wsgate-dashboard.json]" >"$work/dash.json"
check "dashboard in the ConfigMap equals deploy/grafana's" cmp "$work/dash.json" "$repo/deploy/grafana/wsgate-dashboard.json"
node "$here/query.mjs" "$i" PrometheusRule/rel-wsgate spec >"$work/rule-spec.json"
check "PrometheusRule equals deploy/prometheus/alerts.yaml" node "$here/yaml-equal.mjs" "$work/rule-spec.json" "$repo/deploy/prometheus/alerts.yaml"

ds="$work/ingress-daemonset.yaml"
expect_value "DaemonSet proxy" "$ds" DaemonSet/rel-wsgate-proxy 'spec.template.spec.containers[0].name' proxy
expect_value "no PodDisruptionBudget for a DaemonSet" "$ds" PodDisruptionBudget . 0
expect_value "NodePort Service with Local traffic policy" "$ds" Service/rel-wsgate-proxy spec.externalTrafficPolicy Local

s="$work/standalone.yaml"
expect_args_contain "standalone proxy watches the routes ConfigMap" "$s" $proxy 0 --routes /etc/wsgate/routes
expect_value "standalone: only the proxy Deployment" "$s" Deployment . 1
expect_value "standalone: no RBAC" "$s" ClusterRole . 0
node "$here/query.mjs" "$s" ConfigMap/rel-wsgate-proxy-routes "data[routes.yaml]" >"$work/standalone-routes.yaml"
check "standalone routes ConfigMap holds valid routes" node "$here/validate.mjs" routes --crd "$crd" --good "$work/standalone-routes.yaml"

c="$work/controller-only.yaml"
expect_value "controller-only: only the controller Deployment" "$c" Deployment . 1
expect_value "controller-only: ServiceMonitor selects the controller" "$c" ServiceMonitor/rel-wsgate 'spec.selector.matchLabels' \
  '{"app.kubernetes.io/instance":"rel","wsgate.dev/metrics":"true"}'

e="$work/sidecar.yaml"
app=Deployment/demo
expect_value "echo-app: app container first" "$e" $app 'spec.template.spec.containers[0].command' '["wsgate-echo-backend"]'
expect_value "echo-app: wsgate sidecar second" "$e" $app 'spec.template.spec.containers[1].name' wsgate
expect_args_contain "sidecar watches the mounted routes" "$e" $app 1 --routes /etc/wsgate/routes
expect_args_contain "sidecar admin for probes" "$e" $app 1 --admin 0.0.0.0:9901
expect_value "sidecar readiness probe" "$e" $app 'spec.template.spec.containers[1].readinessProbe.httpGet' '{"path":"/readyz","port":9901}'
expect_value "sidecar routes volume from the ConfigMap" "$e" $app 'spec.template.spec.volumes[0]' \
  '{"name":"wsgate-routes","configMap":{"name":"demo-routes"}}'
expect_value "echo-app: Service targets the sidecar" "$e" Service/demo 'spec.ports[0].targetPort' ws
expect_value "echo-app: no controller rendered" "$e" ClusterRole . 0
node "$here/query.mjs" "$e" ConfigMap/demo-routes "data[echo.yaml]" >"$work/echo-routes.yaml"
check "echo-app routes ConfigMap holds a valid route" node "$here/validate.mjs" routes --crd "$crd" --good "$work/echo-routes.yaml"

# ---- chart: settings that must be refused -------------------------------------------------
refuse() { # refuse NAME MESSAGE SETTINGS...
  local name="$1" msg="$2"
  shift 2
  local out
  out="$(timeout 60 "$helm" template rel "$chart" --namespace gw "$@" 2>&1)"
  if [[ $? -ne 0 && "$out" == *"$msg"* ]]; then ok "refused: $name"; else bad "refused: $name: $out"; fi
}
refuse "proxy.kind=Daemonset" "proxy.kind must be Deployment or DaemonSet" --set proxy.kind=Daemonset
refuse "controlplane routes without a controller" "needs controller.enabled=true or proxy.controlPlane" --set controller.enabled=false
refuse "configmap routes without routes" "needs proxy.routes or proxy.routesConfigMap" --set proxy.routesFrom=configmap
refuse "extra certificates without the first" "needs proxy.tls.secretName" --set 'proxy.tls.extraSecretNames={a}'

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
