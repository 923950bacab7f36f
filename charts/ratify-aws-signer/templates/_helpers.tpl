{{/*
Names, labels and the Verifier's parameters.
*/}}

{{- define "ratify-aws-signer.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ratify-aws-signer.labels" -}}
app.kubernetes.io/name: {{ include "ratify-aws-signer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The embedded AWS Signer trust stores of the plugin.
*/}}
{{- define "ratify-aws-signer.awsStore" -}}signingAuthority:aws-signer-ts{{- end -}}
{{- define "ratify-aws-signer.awsUSGovStore" -}}signingAuthority:aws-us-gov-signer-ts{{- end -}}

{{/*
The Notation trust policy document, as YAML: trustPolicyDoc as given, or
the one statement the simple form describes.
*/}}
{{- define "ratify-aws-signer.trustPolicyDoc" -}}
{{- $v := .Values -}}
{{- if $v.trustPolicyDoc -}}
{{- toYaml $v.trustPolicyDoc -}}
{{- else -}}
{{- $sv := dict "level" $v.verificationLevel -}}
{{- $policy := dict "name" "aws-signer" "registryScopes" $v.registryScopes "signatureVerification" $sv -}}
{{- /* Notation refuses trust stores, identities and overrides at level skip. */ -}}
{{- if ne $v.verificationLevel "skip" -}}
{{- if not $v.revocation.enabled -}}
{{- $_ := set $sv "override" (dict "revocation" "skip") -}}
{{- end -}}
{{- $stores := list (include "ratify-aws-signer.awsStore" .) -}}
{{- $gov := false -}}
{{- range $v.trustedSigningProfiles -}}
{{- if hasPrefix "arn:aws-us-gov:" . }}{{ $gov = true }}{{ end -}}
{{- end -}}
{{- if $gov -}}
{{- $stores = append $stores (include "ratify-aws-signer.awsUSGovStore" .) -}}
{{- end -}}
{{- range $name, $_ := (($v.trustStores | default dict).signingAuthority | default dict) -}}
{{- $s := printf "signingAuthority:%s" $name -}}
{{- if not (has $s $stores) }}{{ $stores = append $stores $s }}{{ end -}}
{{- end -}}
{{- $_ := set $policy "trustStores" $stores -}}
{{- $_ := set $policy "trustedIdentities" (uniq $v.trustedSigningProfiles) -}}
{{- end -}}
{{- toYaml (dict "version" "1.0" "trustPolicies" (list $policy)) -}}
{{- end -}}
{{- end -}}

{{/*
The Verifier's spec.parameters (the plugin's configuration), as YAML.
*/}}
{{- define "ratify-aws-signer.parameters" -}}
{{- $v := .Values -}}
{{- $p := dict "trustPolicyDoc" (include "ratify-aws-signer.trustPolicyDoc" . | fromYaml) -}}
{{- with $v.trustStores -}}
{{- $_ := set $p "trustStores" . -}}
{{- end -}}
{{- $rev := dict -}}
{{- range $key := list "timeout" "cacheTTL" "cacheDir" -}}
{{- with index $v.revocation $key }}{{ $_ := set $rev $key . }}{{ end -}}
{{- end -}}
{{- with $rev }}{{ $_ := set $p "revocation" . }}{{ end -}}
{{- $aws := dict -}}
{{- range $key := list "region" "endpoint" -}}
{{- with index $v.aws $key }}{{ $_ := set $aws $key . }}{{ end -}}
{{- end -}}
{{- with $aws }}{{ $_ := set $p "aws" . }}{{ end -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
Checks the schema cannot express; each failure says what to change.
*/}}
{{- define "ratify-aws-signer.validateTrustPolicy" -}}
{{- $v := .Values -}}
{{- if $v.trustPolicyDoc -}}
{{- if $v.trustedSigningProfiles -}}
{{- fail "trustPolicyDoc and trustedSigningProfiles are both set: give either a full trustPolicyDoc or the simple form (trustedSigningProfiles, verificationLevel, registryScopes, revocation.enabled), not both" -}}
{{- end -}}
{{- if ne $v.verificationLevel "strict" -}}
{{- fail "verificationLevel belongs to the simple form and is not used with trustPolicyDoc: set signatureVerification.level in trustPolicyDoc and leave verificationLevel at strict" -}}
{{- end -}}
{{- if not (deepEqual $v.registryScopes (list "*")) -}}
{{- fail "registryScopes belongs to the simple form and is not used with trustPolicyDoc: set registryScopes in trustPolicyDoc's statements and leave registryScopes at [\"*\"]" -}}
{{- end -}}
{{- if not $v.revocation.enabled -}}
{{- fail "revocation.enabled=false belongs to the simple form: with trustPolicyDoc set signatureVerification.override.revocation: skip in the statements instead" -}}
{{- end -}}
{{- else -}}
{{- if and (not $v.trustedSigningProfiles) (ne $v.verificationLevel "skip") -}}
{{- fail "no trusted signing profile: set trustedSigningProfiles to the signing-profile ARNs to trust (arn:aws:signer:<region>:<account>:/signing-profiles/<name>), or give a full trustPolicyDoc. `awssigner policy init --format values --profile-arn <ARN>` prints these values" -}}
{{- end -}}
{{- if and (has "*" $v.registryScopes) (gt (len $v.registryScopes) 1) -}}
{{- fail "registryScopes: \"*\" covers every repository and cannot be combined with other scopes" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Whether an unversioned signing-profile ARN is among trustedSigningProfiles
(as itself or through one of its versions), case-insensitively. Prints
"true" or nothing.
*/}}
{{- define "ratify-aws-signer.profileTrusted" -}}
{{- $want := lower .profile -}}
{{- range .trusted -}}
{{- $t := lower . -}}
{{- if or (eq $t $want) (hasPrefix (printf "%s/" $want) $t) }}true{{ end -}}
{{- end -}}
{{- end -}}
