{{/*
The alert rules, shared by the PrometheusRule and deploy/prometheus/alerts.yaml (generated from
this template with the default values by tests/delivery/gen-monitoring.sh; the chart test checks the
two agree). Each expr stays on one line: deploy/prometheus/queries.txt lists them one per line.
Controller metrics these rules read (beyond SPEC.md's list):
  wsgate_controller_proxy_config_info{node,version,state="acked"|"nacked"} 1 per connected proxy
  and state: the last version that proxy ACKed (or NACKed).
*/}}
{{- define "wsgate.alertGroups" -}}
{{- $r := .Values.metrics.prometheusRule -}}
groups:
  - name: wsgate
    rules:
      - alert: WsgateHandshakeFailureRatioHigh
        expr: (sum by (namespace, route) (rate(wsgate_handshakes_total{route!="",code!="101"}[5m])) / sum by (namespace, route) (rate(wsgate_handshakes_total{route!=""}[5m])) > {{ $r.handshakeFailureRatio }}) and on (namespace, route) (sum by (namespace, route) (rate(wsgate_handshakes_total{route!=""}[5m])) > {{ $r.handshakeFailureMinRate }})
        for: {{ $r.handshakeFailureFor }}
        labels:
          severity: warning
        annotations:
          summary: WebSocket handshakes failing on a wsgate route
          description: {{ `'{{ $value | humanizePercentage }} of the WebSocket handshakes on route {{ $labels.route }} did not end in 101 over the last 5 minutes: look at wsgate_handshakes_total by code (4xx: clients or route settings; 502/504: the backends).'` }}
      - alert: WsgateConfigRejected
        expr: increase(wsgate_config_updates_total{result="rejected"}[10m]) > 0
        labels:
          severity: warning
        annotations:
          summary: wsgate rejected a route update
          description: {{ `'{{ $labels.job }} {{ $labels.pod }} rejected a route update in the last 10 minutes and keeps serving its last good configuration; its log names the file, route and field.'` }}
      - alert: WsgateProxyConfigStale
        expr: wsgate_controller_proxy_config_info{state="acked"} unless on (namespace, job, version) wsgate_controller_snapshot_version_info
        for: {{ $r.configStaleFor }}
        labels:
          severity: warning
        annotations:
          summary: A wsgate proxy is not on the controller's route snapshot
          description: {{ `'Proxy {{ $labels.node }} is on version {{ $labels.version }}, not the controller''s current snapshot: route changes do not reach it (a NACK, or no answer to the latest push).'` }}
      - alert: WsgateProxyConfigNacked
        expr: wsgate_controller_proxy_config_info{state="nacked"} and on (namespace, job, version) wsgate_controller_snapshot_version_info
        for: {{ $r.configStaleFor }}
        labels:
          severity: warning
        annotations:
          summary: A wsgate proxy rejects the controller's route snapshot
          description: {{ `'Proxy {{ $labels.node }} NACKed the current snapshot {{ $labels.version }} and keeps its previous routes; its log and wsgate_config_updates_total{result="rejected"} say why.'` }}
      {{- with $r.extraRules }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end }}
