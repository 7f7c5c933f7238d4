{{/* The chart's name. */}}
{{- define "kube-node.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object. */}}
{{- define "kube-node.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kube-node.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kube-node.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kube-node.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-node.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-node.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kube-node.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-node.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-node.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
certManager, generate or secret: tls.source with auto resolved against the cluster: cert-manager when its API
is there; else a serving Secret someone else made (not this chart) is used as it is; else the chart generates.
*/}}
{{- define "kube-node.tlsSource" -}}
{{- if eq .Values.tls.source "auto" }}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" }}certManager
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "kube-node.tlsSecretName" .) }}
{{- if and $existing (ne (dig "metadata" "labels" "app.kubernetes.io/managed-by" "" $existing) "Helm") }}secret{{ else }}generate{{ end }}
{{- end }}
{{- else }}
{{- .Values.tls.source }}
{{- end }}
{{- end }}

{{- define "kube-node.tlsSecretName" -}}
{{- default (printf "%s-provider-tls" (include "kube-node.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "kube-node.clientSecretName" -}}
{{- default (printf "%s-client-tls" (include "kube-node.fullname" .)) .Values.tls.clientSecretName }}
{{- end }}

{{- define "kube-node.grpcServiceName" -}}
{{- printf "%s-grpc" (include "kube-node.fullname" .) }}
{{- end }}

{{/* Namespaces where NodeClass credentials may be read. */}}
{{- define "kube-node.credentialsNamespaces" -}}
{{- $namespaces := .Values.credentialsNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/*
The cluster identity to configure: config.cluster-name, clusterName, else the one this release already runs
with (read from its ConfigMap: an upgrade from a chart whose default was "kube-node" keeps it, so the
machines it made stay its own), else empty, and kube-node uses the kube-system namespace's uid.
*/}}
{{- define "kube-node.clusterName" -}}
{{- $existing := lookup "v1" "ConfigMap" .Release.Namespace (include "kube-node.fullname" .) }}
{{- $running := get (dig "data" "config.yaml" "" $existing | fromYaml) "cluster-name" }}
{{- coalesce (get .Values.config "cluster-name") .Values.clusterName $running | default "" }}
{{- end }}

{{/* The settings file of `kube-node run --config`; values.config adds to it and wins. */}}
{{- define "kube-node.config" -}}
{{- $config := dict
  "log-level" .Values.logLevel
  "log-format" .Values.logFormat
  "status-address" (printf ":%d" (int .Values.metrics.port))
  "shutdown-grace-period" .Values.shutdownGracePeriod
  "leader-elect" .Values.leaderElection.enabled
  "leader-election-namespace" .Release.Namespace
  "leader-election-lease-name" .Values.leaderElection.leaseName
  "leader-election-lease-duration" .Values.leaderElection.leaseDuration
  "leader-election-renew-deadline" .Values.leaderElection.renewDeadline
  "leader-election-retry-period" .Values.leaderElection.retryPeriod
  "install-crds" .Values.installCRDs
}}
{{- if .Values.grpc.enabled }}
{{- $_ := set $config "grpc-address" (printf "0.0.0.0:%d" (int .Values.grpc.port)) }}
{{- if .Values.tls.insecure }}
{{- $_ := set $config "grpc-insecure" true }}
{{- else }}
{{- $_ := set $config "grpc-cert" "/etc/kube-node/tls/tls.crt" }}
{{- $_ := set $config "grpc-key" "/etc/kube-node/tls/tls.key" }}
{{- $_ := set $config "grpc-client-ca" "/etc/kube-node/tls/ca.crt" }}
{{- end }}
{{- else }}
{{- $_ := set $config "grpc-address" "" }}
{{- end }}
{{- if .Values.simulator.enabled }}
{{- $_ := set $config "simulator-dir" "/var/lib/kube-node/simulator" }}
{{- end }}
{{- $cluster := include "kube-node.clusterName" . }}
{{- if $cluster }}
{{- $_ := set $config "cluster-name" $cluster }}
{{- end }}
{{- toYaml (mergeOverwrite $config .Values.config) }}
{{- end }}

{{/* RBAC subjects from values: User and Group default to the rbac.authorization.k8s.io apiGroup. */}}
{{- define "kube-node.subjects" -}}
{{- range . }}
- kind: {{ .kind }}
  name: {{ .name | quote }}
  {{- if eq .kind "ServiceAccount" }}
  namespace: {{ required "rbac.administrators: a ServiceAccount needs a namespace" .namespace }}
  {{- else }}
  apiGroup: {{ .apiGroup | default "rbac.authorization.k8s.io" }}
  {{- end }}
{{- end }}
{{- end }}
