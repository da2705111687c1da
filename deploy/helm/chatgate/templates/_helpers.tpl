{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "chatgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, or the release name when it already holds it. */}}
{{- define "chatgate.fullname" -}}
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

{{- define "chatgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chatgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chatgate.labels" -}}
helm.sh/chart: {{ include "chatgate.chart" . }}
{{ include "chatgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "chatgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chatgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "chatgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* True (non-empty) when the chart must create its own Secret: some secret value is given inline. */}}
{{- define "chatgate.needsSecret" -}}
{{- $v := .Values }}
{{- if or (and $v.database.url (not $v.database.existingSecret)) (and $v.redis.url (not $v.redis.existingSecret)) (and $v.adminKey.value (not $v.adminKey.existingSecret)) $v.providers.secrets }}true{{ end }}
{{- end }}

{{/*
An env entry read from a Secret: the user's existing one, or the chart's when the value is inline.
Renders nothing when neither is set. Call with (dict "name" ENV "cfg" .Values.x "key" KEY "root" $).
*/}}
{{- define "chatgate.secretEnv" -}}
{{- if .cfg.existingSecret }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .cfg.existingSecret }}
      key: {{ .cfg.existingSecretKey }}
{{- else if (or .cfg.url .cfg.value) }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "chatgate.fullname" .root }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{- define "chatgate.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.drainSeconds 15 }}
{{- end }}
