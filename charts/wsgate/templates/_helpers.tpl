{{/* Names, labels, the image and the pieces every wsgate container shares. */}}

{{- define "wsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wsgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Object names of the parts: "<fullname>-<part>", cut so the suffix survives the 63 limit. */}}
{{- define "wsgate.controller.fullname" -}}
{{- printf "%s-controller" (include "wsgate.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}
{{- define "wsgate.proxy.fullname" -}}
{{- printf "%s-proxy" (include "wsgate.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "wsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "proxy"). */}}
{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "wsgate.labels" -}}
helm.sh/chart: {{ include "wsgate.chart" .root }}
{{ include "wsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: wsgate
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The chart's appVersion, for callers whose context has no .Chart (the sidecar include from
another chart). tests/delivery/test_chart.sh checks it equals Chart.yaml's appVersion. */}}
{{- define "wsgate.defaultImageTag" -}}
0.1.0
{{- end }}

{{/* The image reference; the context needs .Values and may have .Chart. */}}
{{- define "wsgate.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- $tag := $img.tag }}
{{- if not $tag }}
{{- $tag = include "wsgate.defaultImageTag" . }}
{{- end }}
{{- printf "%s:%s" $img.repository $tag }}
{{- end }}
{{- end }}

{{- define "wsgate.logArgs" -}}
{{- if .Values.logJson -}}
- --log-format
- json
{{- end }}
{{- end }}

{{/* Probes on the admin port: /healthz says the process serves, /readyz that a config is
loaded, the listeners are up and the process is not draining. Call with
(dict "port" "admin" "liveness" $probeValues "readiness" $probeValues); port is a name or number. */}}
{{- define "wsgate.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  {{- toYaml .liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  {{- toYaml .readiness | nindent 2 }}
{{- end }}

{{/* The downward-API environment a proxy needs for --node-id $(POD_NAME). */}}
{{- define "wsgate.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* preStop: keep serving while the endpoint removal spreads, then SIGTERM starts the drain. */}}
{{- define "wsgate.preStop" -}}
lifecycle:
  preStop:
    exec:
      command: ["/bin/sleep", "{{ . }}"]
{{- end }}

{{- define "wsgate.controlPlaneAddress" -}}
{{- if .Values.proxy.controlPlane }}
{{- .Values.proxy.controlPlane }}
{{- else if .Values.controller.enabled }}
{{- printf "%s.%s.svc:%d" (include "wsgate.controller.fullname" .) .Release.Namespace (int .Values.controller.grpcPort) }}
{{- else }}
{{- fail "proxy.routesFrom=controlplane needs controller.enabled=true or proxy.controlPlane (host:port)" }}
{{- end }}
{{- end }}

{{- define "wsgate.proxy.routesConfigMap" -}}
{{- .Values.proxy.routesConfigMap | default (printf "%s-routes" (include "wsgate.proxy.fullname" .)) }}
{{- end }}
