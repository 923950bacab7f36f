{{/*
Mode provider: names, labels, paths and the configuration of awssigner
serve. Nothing here is used in mode ratify.
*/}}

{{/*
The release's full name: the Deployment, Service, ServiceAccount and the
provider's ConfigMaps and Secrets are named after it.
*/}}
{{- define "ratify-aws-signer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
A name derived from the full name with a suffix, at most 63 characters.
The argument is (list <root> <suffix>).
*/}}
{{- define "ratify-aws-signer.derivedName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $base := include "ratify-aws-signer.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end -}}

{{/*
The provider pods' selector, and their labels (the chart's plus the
component).
*/}}
{{- define "ratify-aws-signer.providerSelector" -}}
app.kubernetes.io/name: {{ include "ratify-aws-signer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: provider
{{- end -}}

{{- define "ratify-aws-signer.providerLabels" -}}
{{ include "ratify-aws-signer.labels" . }}
app.kubernetes.io/component: provider
{{- end -}}

{{/*
Gatekeeper's Provider objects (cluster-scoped, one pair per cluster).
*/}}
{{- define "ratify-aws-signer.verifyProviderName" -}}awssigner-verify{{- end -}}
{{- define "ratify-aws-signer.mutateProviderName" -}}awssigner-mutate{{- end -}}

{{/*
Ports and paths of awssigner serve (its defaults: config.DefaultServerAddress,
config.DefaultHealthAddress) and of the files the pod mounts.
*/}}
{{- define "ratify-aws-signer.gatekeeperPort" -}}6001{{- end -}}
{{- define "ratify-aws-signer.healthPort" -}}9099{{- end -}}
{{- define "ratify-aws-signer.kyvernoPort" -}}6002{{- end -}}
{{- define "ratify-aws-signer.configDir" -}}/etc/awssigner/config{{- end -}}
{{- define "ratify-aws-signer.tlsDir" -}}/etc/awssigner/tls{{- end -}}
{{- define "ratify-aws-signer.gatekeeperCADir" -}}/etc/awssigner/gatekeeper-ca{{- end -}}
{{- define "ratify-aws-signer.registryDir" -}}/etc/awssigner/registry{{- end -}}

{{/*
"true" when the release serves Gatekeeper: always in mode ratify (Ratify's
provider), in mode provider unless provider.gatekeeper.enabled is false.
*/}}
{{- define "ratify-aws-signer.gatekeeperEnabled" -}}
{{- if or (ne .Values.mode "provider") .Values.provider.gatekeeper.enabled }}true{{ end -}}
{{- end -}}

{{/*
"true" when mode provider serves Kyverno.
*/}}
{{- define "ratify-aws-signer.kyvernoEnabled" -}}
{{- if and (eq .Values.mode "provider") .Values.provider.kyverno.enabled }}true{{ end -}}
{{- end -}}

{{/*
The URL Kyverno's apiCall posts to: the Service in the release namespace.
*/}}
{{- define "ratify-aws-signer.kyvernoURL" -}}
{{- printf "https://%s.%s.svc:%s/checkimages" (include "ratify-aws-signer.fullname" .) .Release.Namespace (include "ratify-aws-signer.kyvernoPort" .) -}}
{{- end -}}

{{/*
The users served on /checkimages: provider.kyverno.allowedCallers, else
Kyverno's admission and reports controllers in its namespace.
*/}}
{{- define "ratify-aws-signer.kyvernoCallers" -}}
{{- $k := .Values.provider.kyverno -}}
{{- $callers := $k.allowedCallers -}}
{{- if not $callers -}}
{{- $callers = list (printf "system:serviceaccount:%s:kyverno-admission-controller" $k.namespace) (printf "system:serviceaccount:%s:kyverno-reports-controller" $k.namespace) -}}
{{- end -}}
{{- toJson $callers -}}
{{- end -}}

{{- define "ratify-aws-signer.serviceAccountName" -}}
{{- .Values.provider.serviceAccount.name | default (include "ratify-aws-signer.fullname" .) -}}
{{- end -}}

{{/*
The base URL of the Providers: provider.url, else the Service's name in
the release namespace.
*/}}
{{- define "ratify-aws-signer.providerURL" -}}
{{- .Values.provider.url | default (printf "https://%s.%s:%s" (include "ratify-aws-signer.fullname" .) .Release.Namespace (include "ratify-aws-signer.gatekeeperPort" .)) | trimSuffix "/" -}}
{{- end -}}

{{/*
How the serving certificate is made: certManager, generated or secret
(auto resolved against the cluster's APIs).
*/}}
{{- define "ratify-aws-signer.tlsMode" -}}
{{- $m := .Values.provider.tls.mode -}}
{{- if eq $m "auto" -}}
{{- if and (.Capabilities.APIVersions.Has "cert-manager.io/v1/Issuer") (.Capabilities.APIVersions.Has "cert-manager.io/v1/Certificate") }}certManager{{ else }}generated{{ end -}}
{{- else -}}
{{- $m -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the serving certificate (tls.crt, tls.key). Each mode
has its own name, so switching modes never makes Helm delete a Secret
cert-manager has just written.
*/}}
{{- define "ratify-aws-signer.tlsSecretName" -}}
{{- $m := include "ratify-aws-signer.tlsMode" . -}}
{{- if eq $m "secret" -}}
{{- .Values.provider.tls.secretName | default (include "ratify-aws-signer.derivedName" (list . "tls")) -}}
{{- else if eq $m "certManager" -}}
{{- include "ratify-aws-signer.derivedName" (list . "tls-cert-manager") -}}
{{- else -}}
{{- include "ratify-aws-signer.derivedName" (list . "tls") -}}
{{- end -}}
{{- end -}}

{{- define "ratify-aws-signer.caSecretName" -}}
{{- include "ratify-aws-signer.derivedName" (list . "ca") -}}
{{- end -}}

{{/*
The DNS names and IP addresses of the serving certificate, as YAML
{dnsNames: [...], ipAddresses: [...]}: the Service's names and the host of
provider.url.
*/}}
{{- define "ratify-aws-signer.servingNames" -}}
{{- $svc := include "ratify-aws-signer.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $dns := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $ips := list -}}
{{- with .Values.provider.url -}}
{{- $host := regexReplaceAll ":[0-9]+$" (urlParse .).host "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if or (regexMatch "^[0-9]+(\\.[0-9]+){3}$" $host) (contains ":" $host) -}}
{{- $ips = append $ips $host -}}
{{- else if not (has $host $dns) -}}
{{- $dns = append $dns $host -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "dnsNames" $dns "ipAddresses" $ips) -}}
{{- end -}}

{{/*
Gatekeeper's client CA, as YAML {source, pem}: source "value"
(provider.gatekeeper.caBundle, kept in a ConfigMap), "secret" (Gatekeeper's
Secret in the release namespace, mounted as it is) or "copy" (read from
Gatekeeper's namespace, kept in a ConfigMap). Fails when none is available.
*/}}
{{- define "ratify-aws-signer.gatekeeperCA" -}}
{{- $g := .Values.provider.gatekeeper -}}
{{- if $g.caBundle -}}
{{- toYaml (dict "source" "value" "pem" $g.caBundle) -}}
{{- else -}}
{{- $s := lookup "v1" "Secret" $g.namespace $g.caSecretName -}}
{{- $ca := "" -}}
{{- if $s }}{{ with $s.data }}{{ $ca = index . "ca.crt" | default "" }}{{ end }}{{ end -}}
{{- if not $ca -}}
{{- fail (printf "provider mode needs the CA of Gatekeeper's client certificate (the provider serves only clients it issued: mTLS), and there is no ca.crt in Secret %s/%s. Install Gatekeeper first (its chart creates that Secret), or set provider.gatekeeper.namespace to Gatekeeper's namespace; rendering offline (helm template, GitOps), where the cluster cannot be read, pass it: kubectl get secret -n %s %s -o jsonpath='{.data.ca\\.crt}' | base64 -d > gatekeeper-ca.crt, then --set-file provider.gatekeeper.caBundle=gatekeeper-ca.crt" $g.namespace $g.caSecretName $g.namespace $g.caSecretName) -}}
{{- end -}}
{{- toYaml (dict "source" (eq $g.namespace .Release.Namespace | ternary "secret" "copy") "pem" (b64dec $ca)) -}}
{{- end -}}
{{- end -}}

{{/*
awssigner serve's configuration document, as YAML: the plugin's document
(the same trust policy, trust stores, revocation and aws settings as mode
ratify's Verifier, but revocation.cacheDir: serve keeps revocation answers
in memory) and the server section.
*/}}
{{- define "ratify-aws-signer.serveConfig" -}}
{{- $p := include "ratify-aws-signer.parameters" . | fromYaml -}}
{{- with $p.revocation -}}
{{- $_ := unset . "cacheDir" -}}
{{- if not . }}{{ $_ := unset $p "revocation" }}{{ end -}}
{{- end -}}
{{- $pv := .Values.provider -}}
{{- $s := deepCopy ($pv.server | default dict) -}}
{{- $_ := set $s "address" (printf ":%s" (include "ratify-aws-signer.gatekeeperPort" .)) -}}
{{- $_ := set $s "healthAddress" (printf ":%s" (include "ratify-aws-signer.healthPort" .)) -}}
{{- $tlsDir := include "ratify-aws-signer.tlsDir" . -}}
{{- $tls := dict "certFile" (printf "%s/tls.crt" $tlsDir) "keyFile" (printf "%s/tls.key" $tlsDir) -}}
{{- if include "ratify-aws-signer.gatekeeperEnabled" . -}}
{{- $_ := set $tls "clientCAFile" (printf "%s/ca.crt" (include "ratify-aws-signer.gatekeeperCADir" .)) -}}
{{- else -}}
{{- $_ := set $s "gatekeeper" (dict "enabled" false) -}}
{{- end -}}
{{- $_ := set $s "tls" $tls -}}
{{- if include "ratify-aws-signer.kyvernoEnabled" . -}}
{{- $k := $pv.kyverno -}}
{{- $ks := dict "enabled" true "address" (printf ":%s" (include "ratify-aws-signer.kyvernoPort" .)) "allowedCallers" (include "ratify-aws-signer.kyvernoCallers" . | fromJsonArray) -}}
{{- with $k.audiences }}{{ $_ := set $ks "audiences" . }}{{ end -}}
{{- with $k.timeout }}{{ $_ := set $ks "timeout" . }}{{ end -}}
{{- with $k.tokenCacheTTL }}{{ $_ := set $ks "tokenCacheTTL" . }}{{ end -}}
{{- $_ := set $s "kyverno" $ks -}}
{{- with $k.trustPolicyDocs }}{{ $_ := set $p "trustPolicyDocs" . }}{{ end -}}
{{- end -}}
{{- $reg := dict -}}
{{- if $pv.registry.plainHTTP }}{{ $_ := set $reg "plainHTTP" true }}{{ end -}}
{{- with $pv.registry.dockerConfigSecrets -}}
{{- $files := list -}}
{{- range $i, $_ := . }}{{ $files = append $files (printf "%s/%d/.dockerconfigjson" (include "ratify-aws-signer.registryDir" $) $i) }}{{ end -}}
{{- $_ := set $reg "dockerConfigFiles" $files -}}
{{- end -}}
{{- with $reg }}{{ $_ := set $s "registry" . }}{{ end -}}
{{- $_ := set $p "server" $s -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
Checks of mode provider the schema cannot express.
*/}}
{{- define "ratify-aws-signer.validateProvider" -}}
{{- $v := .Values -}}
{{- if $v.plugin.source.artifact -}}
{{- fail "plugin.source.artifact is Ratify's plugin download (mode ratify); mode provider runs awssigner serve from provider.image. Remove plugin.source" -}}
{{- end -}}
{{- if and (eq $v.provider.tls.mode "secret") (not $v.provider.tls.caBundle) -}}
{{- fail (printf "provider.tls.mode is secret but provider.tls.caBundle is empty: Gatekeeper's Providers need the PEM of the CA that issued the certificate in Secret %s (--set-file provider.tls.caBundle=ca.crt)" (include "ratify-aws-signer.tlsSecretName" .)) -}}
{{- end -}}
{{- if and (ne $v.provider.tls.mode "secret") $v.provider.tls.caBundle -}}
{{- fail (printf "provider.tls.caBundle is only used with provider.tls.mode=secret (mode %s makes its own CA); set the mode to secret with provider.tls.secretName, or remove caBundle" $v.provider.tls.mode) -}}
{{- end -}}
{{- if ge (int $v.provider.tls.renewBeforeDays) (int $v.provider.tls.validityDays) -}}
{{- fail (printf "provider.tls.renewBeforeDays (%d) must be less than provider.tls.validityDays (%d), or every helm upgrade would issue a new certificate" (int $v.provider.tls.renewBeforeDays) (int $v.provider.tls.validityDays)) -}}
{{- end -}}
{{- if not (or $v.provider.gatekeeper.enabled $v.provider.kyverno.enabled) -}}
{{- fail "provider.gatekeeper.enabled and provider.kyverno.enabled are both false: the provider would serve no one. Enable Gatekeeper (the default) or Kyverno (provider.kyverno.enabled=true)" -}}
{{- end -}}
{{- if and $v.provider.kyverno.trustPolicyDocs (not $v.provider.kyverno.enabled) -}}
{{- fail "provider.kyverno.trustPolicyDocs are selected by Kyverno's requests only (a namespace label); with provider.kyverno.enabled=false nothing would use them. Enable Kyverno or remove them" -}}
{{- end -}}
{{- $c := $v.policies.constraints -}}
{{- if and $v.provider.gatekeeper.enabled $c.enabled $c.clusterWide (not (include "ratify-aws-signer.namespaceMatches" (dict "namespace" .Release.Namespace "patterns" $c.excludedNamespaces))) -}}
{{- fail (printf "policies.constraints.excludedNamespaces does not cover the release namespace %s, where the provider runs: its own pods would need the provider to be admitted, so it could never come back once down. Add %s to policies.constraints.excludedNamespaces (or install the release in an excluded namespace such as gatekeeper-system)" .Release.Namespace .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
"true" when namespace matches one of patterns (Gatekeeper's wildcards: a
leading or trailing *).
*/}}
{{- define "ratify-aws-signer.namespaceMatches" -}}
{{- $ns := .namespace -}}
{{- range (.patterns | default list) -}}
{{- if or (eq . $ns) (eq . "*") (and (hasSuffix "*" .) (hasPrefix (trimSuffix "*" .) $ns)) (and (hasPrefix "*" .) (hasSuffix (trimPrefix "*" .) $ns)) }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/*
Kyverno's policy objects: the chart's copies of policies/kyverno/*.yaml
(files/kyverno, made by `make chart-policies`), read as data. Each
ClusterPolicy is filled in: every apiCall service gets this release's
/checkimages URL and the CA of the serving certificate, and the excluded
namespaces name Kyverno's namespace and the release's (the policy's
placeholders "kyverno" and "awssigner"). Other objects (a
GlobalContextEntry, say) are rendered as they are. All get the chart's
labels and common annotations. The argument is
(dict "root" $ "caBundle" <PEM>).
*/}}
{{- define "ratify-aws-signer.kyvernoPolicy" -}}
{{- $root := .root -}}
{{- $k := $root.Values.provider.kyverno -}}
{{- if $k.policy.enabled }}
{{- $url := include "ratify-aws-signer.kyvernoURL" $root -}}
{{- $policies := 0 -}}
{{- range $file, $_ := $root.Files.Glob "files/kyverno/*.yaml" }}
{{- $o := $root.Files.Get $file | fromYaml -}}
{{- if or (not $o) (hasKey $o "Error") (not $o.kind) -}}
{{- fail (printf "the chart's copy of a Kyverno policy (%s) is not a Kubernetes object: run `make chart-policies`" $file) -}}
{{- end -}}
{{- if eq $o.kind "ClusterPolicy" -}}
{{- $policies = add1 $policies -}}
{{- $calls := 0 -}}
{{- range $o.spec.rules -}}
{{- range $entry := (.context | default list) -}}
{{- $svc := dig "apiCall" "service" dict $entry -}}
{{- if hasKey $svc "url" -}}
{{- $_ := set $svc "url" $url -}}
{{- $_ := set $svc "caBundle" $.caBundle -}}
{{- $calls = add1 $calls -}}
{{- with $k.skipImageReferences -}}
{{- $skip := . -}}
{{- $found := false -}}
{{- range (dig "apiCall" "data" list $entry) -}}
{{- if eq .key "skipImageReferences" }}{{ $_ := set . "value" $skip }}{{ $found = true }}{{ end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "provider.kyverno.skipImageReferences is set but %s sends no skipImageReferences to serve" $file) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range (dig "exclude" "any" list .) -}}
{{- $r := dig "resources" dict . -}}
{{- if hasKey $r "namespaces" -}}
{{- $ns := list -}}
{{- range $r.namespaces -}}
{{- if eq . "awssigner" }}{{ $ns = append $ns $root.Release.Namespace }}{{ else if eq . "kyverno" }}{{ $ns = append $ns $k.namespace }}{{ else }}{{ $ns = append $ns . }}{{ end -}}
{{- end -}}
{{- $_ := set $r "namespaces" (uniq $ns) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $calls 0 -}}
{{- fail (printf "%s calls no service: the chart cannot point it at awssigner serve" $file) -}}
{{- end -}}
{{- end -}}
{{- $meta := $o.metadata | default dict -}}
{{- $_ := set $meta "labels" (merge (include "ratify-aws-signer.providerLabels" $root | fromYaml) ($meta.labels | default dict)) -}}
{{- with $root.Values.commonAnnotations -}}
{{- $_ := set $meta "annotations" (merge (deepCopy ($meta.annotations | default dict)) (deepCopy .)) -}}
{{- end -}}
{{- $_ := set $o "metadata" $meta }}
---
{{ toYaml $o }}
{{- end }}
{{- if eq $policies 0 -}}
{{- fail "the chart has no copy of the Kyverno ClusterPolicy (files/kyverno/*.yaml): run `make chart-policies`" -}}
{{- end -}}
{{- end }}
{{- end -}}
