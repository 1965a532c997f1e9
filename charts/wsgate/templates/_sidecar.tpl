{{/*
wsgate as a sidecar in your own pod. Two templates, one for `containers:`, one for `volumes:`:

  containers:
    - name: app
      ...
    {{- include "wsgate.sidecar" (dict "Values" .Values.wsgate "routesConfigMap" "my-routes") | nindent 4 }}
  volumes:
    {{- include "wsgate.sidecarVolumes" (dict "Values" .Values.wsgate "routesConfigMap" "my-routes") | nindent 4 }}

Values: this chart's values (image, logJson, containerSecurityContext, proxy probe timings, sidecar.*).
With the wsgate chart as a dependency, `.Values.wsgate` holds them, defaults included.
routesConfigMap: a ConfigMap of route files, watched by the proxy (--routes). Without it the
sidecar takes its routes from the controller: `controlPlane` in the dict, else sidecar.controlPlane.
*/}}
{{- define "wsgate.sidecar" -}}
{{- $v := .Values }}
{{- $s := $v.sidecar -}}
- name: {{ $s.name | default "wsgate" }}
  image: {{ include "wsgate.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: [wsgate-proxy]
  args:
    {{- if .routesConfigMap }}
    - --routes
    - /etc/wsgate/routes
    {{- else }}
    - --control-plane
    - {{ required "wsgate.sidecar: give routesConfigMap, controlPlane or sidecar.controlPlane" (.controlPlane | default $s.controlPlane) | quote }}
    - --node-id
    - $(POD_NAMESPACE)/$(POD_NAME)
    {{- end }}
    - --listen
    - 0.0.0.0:{{ $s.listenPort }}
    - --admin
    - 0.0.0.0:{{ $s.adminPort }}
    - --drain-seconds
    - {{ $s.drainSeconds | quote }}
    {{- with include "wsgate.logArgs" . }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $s.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    {{- include "wsgate.podEnv" . | nindent 4 }}
    {{- with $s.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: ws
      containerPort: {{ $s.listenPort }}
      protocol: TCP
    - name: wsgate-admin
      containerPort: {{ $s.adminPort }}
      protocol: TCP
  {{- include "wsgate.probes" (dict "port" $s.adminPort "liveness" $v.proxy.livenessProbe "readiness" $v.proxy.readinessProbe) | nindent 2 }}
  {{- include "wsgate.preStop" $s.preStopSeconds | nindent 2 }}
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.containerSecurityContext | nindent 4 }}
  volumeMounts:
    {{- if .routesConfigMap }}
    - name: wsgate-routes
      mountPath: /etc/wsgate/routes
      readOnly: true
    {{- end }}
    - name: wsgate-tmp
      mountPath: /tmp
{{- end }}

{{- define "wsgate.sidecarVolumes" -}}
{{- if .routesConfigMap -}}
- name: wsgate-routes
  configMap:
    name: {{ .routesConfigMap }}
{{- end }}
- name: wsgate-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end }}
