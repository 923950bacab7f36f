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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The selector of the Constraints this release applies (the constraints Job
prunes the ones it no longer renders by it).
*/}}
{{- define "ratify-aws-signer.constraintSelector" -}}
app.kubernetes.io/instance={{ .Release.Name | trunc 63 | trimSuffix "-" }},ratify-aws-signer/part=constraint
{{- end -}}

{{/*
metadata.annotations of every object: commonAnnotations plus the object's
own (a dict), or nothing.
*/}}
{{- define "ratify-aws-signer.annotations" -}}
{{- $a := merge (deepCopy (.own | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) -}}
{{- with $a }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Where the Verifier lives and the scope the Constraints send to Ratify:
"" for a cluster-wide Verifier, the release namespace for a NamespacedVerifier.
*/}}
{{- define "ratify-aws-signer.scope" -}}
{{- if and (eq .Values.mode "ratify") (eq .Values.verifier.kind "NamespacedVerifier") }}{{ .Release.Namespace }}{{ end -}}
{{- end -}}

{{/*
What this release verifies with, for messages: Ratify's awssigner Verifier
(mode ratify) or awssigner serve (mode provider).
*/}}
{{- define "ratify-aws-signer.verifierWho" -}}
{{- if eq .Values.mode "provider" }}the provider (awssigner serve){{ else }}Ratify{{ end -}}
{{- end -}}

{{/*
"true" when the release renders the trust policy (a Verifier in mode
ratify, the provider's configuration in mode provider), so the Constraints
can be checked against it.
*/}}
{{- define "ratify-aws-signer.rendersTrustPolicy" -}}
{{- if or (eq .Values.mode "provider") .Values.verifier.enabled }}true{{ end -}}
{{- end -}}

{{/*
The Gatekeeper Provider the Constraints call: policies.constraints.provider,
else Ratify's ratify-provider (mode ratify) or this chart's verify Provider
(mode provider).
*/}}
{{- define "ratify-aws-signer.constraintProvider" -}}
{{- .Values.policies.constraints.provider | default (eq .Values.mode "provider" | ternary (include "ratify-aws-signer.verifyProviderName" .) "ratify-provider") -}}
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
{{- include "ratify-aws-signer.validateTrustPolicyDoc" . -}}
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

{{/*
Refuses a cluster-wide Verifier that would share Notation signatures with
another cluster-wide Verifier while Ratify runs its config policy: that
policy runs only the first matching verifier, in random order, so a validly
signed image would be denied at random. Reads the cluster (lookup): offline
rendering (helm template, GitOps diff) sees nothing and passes.
*/}}
{{- define "ratify-aws-signer.coexistenceGuard" -}}
{{- if not .Values.verifier.allowSharedNotationVerifiers -}}
{{- $policy := lookup "config.ratify.deislabs.io/v1beta1" "Policy" "" "ratify-policy" -}}
{{- $type := "" -}}
{{- if $policy }}{{ $type = $policy.spec.type | default "" }}{{ end -}}
{{- if or (eq $type "config-policy") (eq $type "configpolicy") -}}
{{- $list := lookup "config.ratify.deislabs.io/v1beta1" "Verifier" "" "" -}}
{{- range ($list.items | default list) -}}
{{- $types := splitList "," (.spec.artifactTypes | default "" | nospace) -}}
{{- if and (ne .metadata.name $.Values.verifier.name) (or (has "application/vnd.cncf.notary.signature" $types) (has "*" $types)) -}}
{{- fail (printf "Verifier %s (spec.name %s) already claims Notation signatures (artifactTypes %s) and Ratify's Policy ratify-policy is a config-policy, which runs only the first matching verifier on a signature, in random order: a validly signed image would be denied at random (\"Ratify ran %s ... instead of awssigner\"). Use verifier.kind=NamespacedVerifier (the default: the Constraints then ask Ratify in this release's namespace scope, where only awssigner runs), or remove that Verifier (Ratify's chart: notation.enabled=false does not delete it; kubectl delete verifiers.config.ratify.deislabs.io %s), or switch Ratify to its Rego policy (policy.useRego=true). To install anyway set verifier.allowSharedNotationVerifiers=true" .metadata.name (.spec.name | default "") .spec.artifactTypes .metadata.name .metadata.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Helm hook annotations of the constraints Job and its RBAC, as YAML; the
argument is the hook weight.
*/}}
{{- define "ratify-aws-signer.hook" -}}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/*
The common part of the constraints Job's containers (the argument is
policies.constraints.job).
*/}}
{{- define "ratify-aws-signer.jobContainer" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
resources:
  {{- toYaml .resources | nindent 2 }}
volumeMounts:
  - {name: constraints, mountPath: /constraints, readOnly: true}
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{/*
Combinations the schema cannot refuse and that would make the policy
unsafe or useless; each failure says what to change.
*/}}
{{- define "ratify-aws-signer.validateConstraints" -}}
{{- $v := .Values -}}
{{- $c := $v.policies.constraints -}}
{{- $rendersTP := include "ratify-aws-signer.rendersTrustPolicy" . -}}
{{- $all := list (dict "where" "policies.constraints" "exemptImages" $c.exemptImages "requireRevocationCheck" $c.requireRevocationCheck "enforcementAction" $c.enforcementAction) -}}
{{- range $i, $r := $c.namespaceRestrictions -}}
{{- $all = append $all (dict "where" (printf "policies.constraints.namespaceRestrictions[%d]" $i) "exemptImages" (hasKey $r "exemptImages" | ternary $r.exemptImages $c.exemptImages) "requireRevocationCheck" (hasKey $r "requireRevocationCheck" | ternary $r.requireRevocationCheck $c.requireRevocationCheck) "enforcementAction" ($r.enforcementAction | default $c.enforcementAction)) -}}
{{- end -}}
{{- range $all -}}
{{- $where := .where -}}
{{- range (.exemptImages | default list) -}}
{{- if or (eq . "*") (eq . "**") -}}
{{- fail (printf "%s.exemptImages: %q exempts every image, so nothing would be verified; list the registries or repositories to exempt (registry.example.com/platform/*), or set policies.constraints.enabled=false" $where .) -}}
{{- end -}}
{{- if and (not (hasSuffix "*" .)) (not (contains "@" .)) (regexMatch ":[^/]+$" .) (not (regexMatch "^[^/]+:[0-9]+$" .)) -}}
{{- fail (printf "%s.exemptImages: %q names a tag; %s replaces tags with digests before the policy sees the image, so it would stop matching. Exempt the repository (%s), a prefix (%s*) or a digest (…@sha256:…)" $where . (eq $v.mode "provider" | ternary "the chart's tag-to-digest mutation (provider.mutation, on by default)" "Ratify's mutation (on by default)") (regexReplaceAll ":[^/]+$" . "") (regexReplaceAll ":[^/]+$" . "")) -}}
{{- end -}}
{{- end -}}
{{- if and .requireRevocationCheck $rendersTP (not $v.trustPolicyDoc) (not $v.revocation.enabled) -}}
{{- fail (printf "%s.requireRevocationCheck is true but revocation.enabled is false: %s never asks AWS Signer, every signature's revocationStatus is \"skipped\", and every image would be denied. Enable revocation or drop requireRevocationCheck" $where (eq $v.mode "provider" | ternary "the provider" "the Verifier")) -}}
{{- end -}}
{{- if and (eq .enforcementAction "deny") $rendersTP (not $v.trustPolicyDoc) (has $v.verificationLevel (list "audit" "skip")) (not $c.allowWeakLevelWithDeny) -}}
{{- fail (printf "%s.enforcementAction is deny but verificationLevel is %s, which accepts untrusted (audit) or unverified (skip) signatures: the Constraint would look enforcing and admit them. Use strict or permissive, or enforcementAction warn/dryrun while rolling out; set policies.constraints.allowWeakLevelWithDeny=true to install anyway" $where $v.verificationLevel) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Constraints as YAML documents (empty when none is enabled).
*/}}
{{- define "ratify-aws-signer.constraintDocs" -}}
{{- $c := .Values.policies.constraints -}}
{{- $scope := include "ratify-aws-signer.scope" . -}}
{{- $own := dict -}}
{{- if eq $c.install "manifest" }}{{ $_ := set $own "argocd.argoproj.io/sync-options" "SkipDryRunOnMissingResource=true" }}{{ end -}}
{{- $names := dict -}}
{{- if $c.clusterWide }}
{{- $_ := set $names $c.name "clusterWide" }}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "ratify-aws-signer.labels" $ | nindent 4 }}
    ratify-aws-signer/part: constraint
  {{- with include "ratify-aws-signer.annotations" (dict "root" $ "own" $own) }}{{ . | trim | nindent 2 }}{{ end }}
spec:
  enforcementAction: {{ $c.enforcementAction }}
  match:
    kinds:
      {{- toYaml $c.kinds | nindent 6 }}
    {{- with $c.excludedNamespaces }}
    excludedNamespaces:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  parameters:
    provider: {{ include "ratify-aws-signer.constraintProvider" $ }}
    {{- with $scope }}
    ratifyNamespace: {{ . }}
    {{- end }}
    exemptImages: {{ toJson ($c.exemptImages | default list) }}
    requireRevocationCheck: {{ $c.requireRevocationCheck }}
{{- end }}
{{- range $i, $r := $c.namespaceRestrictions }}
{{- $first := first $r.namespaces }}
{{- $name := $r.name | default (printf "%s-%s" $c.name $first) }}
{{- if not $r.name }}
{{- if or (contains "*" $first) (contains ":" $first) (gt (len $name) 63) }}
{{- fail (printf "policies.constraints.namespaceRestrictions[%d]: give it a name (at most 63 characters); the default %q is not a valid Constraint name" $i $name) }}
{{- end }}
{{- end }}
{{- if hasKey $names $name }}
{{- fail (printf "policies.constraints.namespaceRestrictions[%d]: Constraint name %q is already used; give the entry a different name" $i $name) }}
{{- end }}
{{- $_ := set $names $name "restriction" }}
{{- if and (include "ratify-aws-signer.rendersTrustPolicy" $) (not $.Values.trustPolicyDoc) }}
{{- range $r.allowedSigningProfiles }}
{{- if not (include "ratify-aws-signer.profileTrusted" (dict "profile" . "trusted" $.Values.trustedSigningProfiles)) }}
{{- fail (printf "policies.constraints.namespaceRestrictions[%d].allowedSigningProfiles: %s is not in trustedSigningProfiles, so %s would refuse every signature it makes and the namespace would admit nothing; add it to trustedSigningProfiles or fix the ARN" $i . (include "ratify-aws-signer.verifierWho" $)) }}
{{- end }}
{{- end }}
{{- end }}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata:
  name: {{ $name }}
  labels:
    {{- include "ratify-aws-signer.labels" $ | nindent 4 }}
    ratify-aws-signer/part: constraint
  {{- with include "ratify-aws-signer.annotations" (dict "root" $ "own" $own) }}{{ . | trim | nindent 2 }}{{ end }}
spec:
  enforcementAction: {{ $r.enforcementAction | default $c.enforcementAction }}
  match:
    kinds:
      {{- toYaml $c.kinds | nindent 6 }}
    namespaces:
      {{- toYaml $r.namespaces | nindent 6 }}
  parameters:
    provider: {{ include "ratify-aws-signer.constraintProvider" $ }}
    {{- with $scope }}
    ratifyNamespace: {{ . }}
    {{- end }}
    allowedSigningProfiles:
      {{- toYaml $r.allowedSigningProfiles | nindent 6 }}
    exemptImages: {{ toJson (hasKey $r "exemptImages" | ternary $r.exemptImages $c.exemptImages | default list) }}
    requireRevocationCheck: {{ hasKey $r "requireRevocationCheck" | ternary $r.requireRevocationCheck $c.requireRevocationCheck }}
{{- end }}
{{- end -}}

{{/*
The rules Notation and the plugin apply to a full trustPolicyDoc, checked at
install instead of at the first admission (where the plugin would refuse
its configuration and every image would be denied as config_invalid).
*/}}
{{- define "ratify-aws-signer.validateTrustPolicyDoc" -}}
{{- $v := .Values -}}
{{- $names := dict -}}
{{- $scopes := dict -}}
{{- $known := dict "signingAuthority:aws-signer-ts" true "signingAuthority:aws-us-gov-signer-ts" true -}}
{{- range $type, $stores := ($v.trustStores | default dict) -}}
{{- range $name, $_ := $stores }}{{ $_ := set $known (printf "%s:%s" $type $name) true }}{{ end -}}
{{- end -}}
{{- range $i, $p := $v.trustPolicyDoc.trustPolicies -}}
{{- $where := printf "trustPolicyDoc.trustPolicies[%d] (%s)" $i $p.name -}}
{{- if hasKey $names $p.name -}}
{{- fail (printf "%s: the statement name %q is used twice; statement names must be unique" $where $p.name) -}}
{{- end -}}
{{- $_ := set $names $p.name true -}}
{{- if and (has "*" $p.registryScopes) (gt (len $p.registryScopes) 1) -}}
{{- fail (printf "%s: registryScopes \"*\" covers every repository and cannot be combined with other scopes in the statement" $where) -}}
{{- end -}}
{{- range $p.registryScopes -}}
{{- if hasKey $scopes . -}}
{{- fail (printf "%s: registry scope %q is already in statement %q; a repository may be in one statement only (and \"*\" in one statement only)" $where . (get $scopes .)) -}}
{{- end -}}
{{- $_ := set $scopes . $p.name -}}
{{- end -}}
{{- $level := $p.signatureVerification.level -}}
{{- if eq $level "skip" -}}
{{- if or $p.trustStores $p.trustedIdentities $p.signatureVerification.override -}}
{{- fail (printf "%s: level skip verifies nothing, so Notation refuses trustStores, trustedIdentities and override there; remove them or use another level" $where) -}}
{{- end -}}
{{- else -}}
{{- if not $p.trustStores -}}
{{- fail (printf "%s: level %s needs trustStores, e.g. [\"signingAuthority:aws-signer-ts\"] (the embedded AWS Signer root)" $where $level) -}}
{{- end -}}
{{- if not $p.trustedIdentities -}}
{{- fail (printf "%s: level %s needs trustedIdentities: the signing-profile ARNs to trust" $where $level) -}}
{{- end -}}
{{- range $p.trustStores -}}
{{- if not (hasKey $known .) -}}
{{- fail (printf "%s: trust store %q is neither embedded (signingAuthority:aws-signer-ts, signingAuthority:aws-us-gov-signer-ts) nor in trustStores; add it to trustStores or fix the name" $where .) -}}
{{- end -}}
{{- end -}}
{{- range $p.trustedIdentities -}}
{{- if eq . "*" -}}
{{- fail (printf "%s: trustedIdentities \"*\" would trust every AWS Signer profile of every account, and the AWS Signer plugin refuses it; list the signing-profile ARNs" $where) -}}
{{- end -}}
{{- if not (or (regexMatch "^arn:aws(-us-gov|-cn)?:signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/[A-Za-z0-9_]{2,64}(/[A-Za-z0-9]{10})?$" .) (hasPrefix "x509.subject:" .)) -}}
{{- fail (printf "%s: trusted identity %q is not a signing-profile ARN (arn:aws:signer:<region>:<account>:/signing-profiles/<name>[/<version>]); the plugin would never match it" $where .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
