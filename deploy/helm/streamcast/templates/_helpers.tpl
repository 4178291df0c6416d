{{/* Names and labels. */}}
{{- define "streamcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamcast.fullname" -}}
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

{{- define "streamcast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "streamcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: gateway, producers, upload-worker. */}}
{{- define "streamcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamcast.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding Redis credentials: the user's, or the chart's. */}}
{{- define "streamcast.redisSecret" -}}
{{- default (include "streamcast.fullname" .) .Values.redis.existingSecret }}
{{- end }}

{{- define "streamcast.authSecret" -}}
{{- default (include "streamcast.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* Whether the chart makes a Secret at all. */}}
{{- define "streamcast.ownSecret" -}}
{{- if or (and (not .Values.redis.existingSecret) (or .Values.redis.url .Values.redis.sentinelPassword)) (and (not .Values.auth.existingSecret) .Values.auth.jwtSecret) }}true{{ end }}
{{- end }}

{{/*
The engine's variables, the same for gateways, producers and upload workers: the Redis of the
chosen mode (checked here: a mode without its addresses fails the render), prefix, retention.
*/}}
{{- define "streamcast.engineEnv" -}}
{{- $r := .Values.redis }}
{{- $urlKey := "redis-url" }}
{{- $sentinelKey := "redis-sentinel-password" }}
{{- if $r.existingSecret }}
{{- $urlKey = $r.existingSecretKeys.url }}
{{- $sentinelKey = $r.existingSecretKeys.sentinelPassword }}
{{- end }}
{{- if and (eq $r.mode "url") (not $r.url) (not $r.existingSecret) }}
{{- fail "redis.mode is url: set redis.url (or redis.existingSecret with the URL)" }}
{{- end }}
{{- /* With sentinel or cluster the URL gives only credentials and TLS: optional. */}}
{{- if or $r.url $r.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "streamcast.redisSecret" . }}
      key: {{ $urlKey }}
      {{- if ne $r.mode "url" }}
      optional: true
      {{- end }}
{{- end }}
{{- if eq $r.mode "sentinel" }}
{{- if not $r.sentinels }}
{{- fail "redis.mode is sentinel: list redis.sentinels (host:port)" }}
{{- end }}
- name: REDIS_SENTINELS
  value: {{ join "," $r.sentinels | quote }}
- name: REDIS_SENTINEL_NAME
  value: {{ $r.sentinelName | quote }}
{{- if or $r.sentinelPassword $r.existingSecret }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamcast.redisSecret" . }}
      key: {{ $sentinelKey }}
      optional: true
{{- end }}
{{- end }}
{{- if eq $r.mode "cluster" }}
{{- if not $r.clusterNodes }}
{{- fail "redis.mode is cluster: list redis.clusterNodes (host:port)" }}
{{- end }}
- name: REDIS_CLUSTER_NODES
  value: {{ join "," $r.clusterNodes | quote }}
{{- end }}
- name: REDIS_PREFIX
  value: {{ $r.prefix | quote }}
- name: HISTORY_MAX_LEN
  value: {{ $r.historyMaxLen | int64 | toString | quote }}
- name: HISTORY_MAX_AGE_S
  value: {{ $r.historyMaxAgeSeconds | int64 | toString | quote }}
- name: LOG_LEVEL
  value: {{ .Values.gateway.env.LOG_LEVEL | default "info" | quote }}
{{- end }}

{{/* gateway.env as EnvVars: empty strings are left out (the gateway's default applies). */}}
{{- define "streamcast.envMap" -}}
{{- range $name, $value := . }}
{{- if and (ne $name "LOG_LEVEL") (ne (toString $value) "") }}
- name: {{ $name }}
  value: {{ if kindIs "float64" $value }}{{ $value | int64 | toString | quote }}{{ else }}{{ $value | toString | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The uploads volume: the shared claim with uploads on, else an emptyDir. */}}
{{- define "streamcast.uploadsVolume" -}}
- name: uploads
{{- if .Values.uploads.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-uploads" (include "streamcast.fullname" .)) .Values.uploads.persistence.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "streamcast.uploadsMounts" -}}
- name: uploads
  mountPath: /data/uploads
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Grace before SIGKILL: preStop + drain + margin. */}}
{{- define "streamcast.gracePeriod" -}}
{{- add .Values.gateway.preStopSeconds .Values.gateway.drainSeconds .Values.gateway.terminationGraceMarginSeconds }}
{{- end }}
