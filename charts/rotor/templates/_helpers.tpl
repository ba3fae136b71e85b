{{/* The release's full name, at most 63 characters. */}}
{{- define "rotor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rotor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rotor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rotor.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rotor.labels" -}}
{{ include "rotor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
rotor keeps its migration checkpoints (ConfigMaps) and reads the Secrets of hooks and
notifications in rotor-system: the namespaced permissions are granted there.
*/}}
{{- define "rotor.checkNamespace" -}}
{{- if ne .Release.Namespace "rotor-system" -}}
{{- fail "install rotor in namespace rotor-system (-n rotor-system --create-namespace): its controllers keep migration checkpoints and read hook and notification Secrets there" -}}
{{- end -}}
{{- end -}}
