package awssignerverifiedimages

# Unit tests. external_data is replaced with `with external_data as <mock>`,
# which needs policies/capabilities.json (see policies/README.md):
#
#   opa test --v0-compatible --capabilities policies/capabilities.json policies/awssigner-verified-images/ -v

import future.keywords.contains
import future.keywords.every
import future.keywords.if
import future.keywords.in

# ---------------------------------------------------------------- fixtures

team := "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Team"

other_profile := "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other"

signed := "registry.example.com/team/app:signed"

unsigned := "registry.example.com/team/app:unsigned"

revoked := "registry.example.com/team/app:revoked"

other := "registry.example.com/team/app:other"

sidecar := "registry.example.com/platform/sidecar:v1"

img(t) := concat(":", ["registry.example.com/team/app", t])

revoked_msg := "AWS Signer signature sha256:4b1c9e0d7a refused: signature revoked: AWS Signer reports arn:aws:signer:us-west-2:111122223333:/signing-jobs/5d7e1f0a as revoked; revocation is permanent, sign the image again with an active profile"

ctr(name, image) := {"name": name, "image": image}

pod_named(ns, cs) := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "app", "namespace": ns},
	"spec": {"containers": cs},
}

pod(cs) := pod_named("default", cs)

workload(kind, api, cs) := {
	"apiVersion": api,
	"kind": kind,
	"metadata": {"name": "app", "namespace": "default"},
	"spec": {"template": {"spec": {"containers": cs}}},
}

cronjob(cs) := {
	"apiVersion": "batch/v1",
	"kind": "CronJob",
	"metadata": {"name": "app", "namespace": "default"},
	"spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {"containers": cs}}}}},
}

# The input Gatekeeper builds, for admission and audit alike (no operation).
review(obj) := {"review": {"object": obj}, "parameters": {}}

review_with(obj, params) := {"review": {"object": obj}, "parameters": params}

# One verifier result as Ratify v1.4 keeps it from our plugin.
awssigner_report(subject, ok, profile, status, msg) := {
	"subject": subject,
	"isSuccess": ok,
	"name": "verifier-awssigner",
	"verifierName": "verifier-awssigner",
	"type": "awssigner",
	"verifierType": "awssigner",
	"referenceDigest": "sha256:4b1c9e0d7a6f",
	"artifactType": "application/vnd.cncf.notary.signature",
	"message": msg,
	"extensions": {
		"signingProfileArn": profile,
		"revocationStatus": status,
		"verificationLevel": "strict",
	},
}

ok_report(subject, profile, status) := awssigner_report(subject, true, profile, status, concat("", ["AWS Signer signature sha256:4b1c9e0d7a verified (level strict): signed by AWS Signer profile ", profile, "; revocation: ", status]))

cosign_report(subject, ok) := {
	"subject": subject,
	"isSuccess": ok,
	"name": "verifier-cosign",
	"verifierName": "verifier-cosign",
	"type": "cosign",
	"verifierType": "cosign",
	"artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
	"message": "cosign verification failed: no matching signatures",
}

# Config policy's report when the subject has no referrers at all.
no_referrers_report(subject) := {
	"subject": subject,
	"isSuccess": false,
	"message": concat("", ["failed to verify artifact: ", subject]),
	"errorReason": concat("", ["No verification results for the artifact ", subject, ". Ensure verifiers are properly configured and that artifact metadata is attached"]),
}

flat(ok, rs) := {
	"version": "0.2.0",
	"isSuccess": ok,
	"traceID": "5f0c7a1e-trace",
	"timestamp": "2026-11-26T12:00:00.000000001Z",
	"verifierReports": rs,
}

nested(subject, ok, rs) := {
	"version": "1.1.0",
	"isSuccess": ok,
	"traceID": "5f0c7a1e-trace",
	"timestamp": "2026-11-26T12:00:00.000000001Z",
	"verifierReports": [{
		"subject": subject,
		"referenceDigest": "sha256:4b1c9e0d7a6f",
		"artifactType": "application/vnd.cncf.notary.signature",
		"verifierReports": rs,
		"nestedReports": [],
	}],
}

tag(k) := t if {
	parts := split(k, ":")
	t := parts[count(parts) - 1]
}

# Config-policy answers (version 0.2.0), by tag.
flat_answers(k) := {
	"signed": flat(true, [ok_report(k, team, "notRevoked")]),
	"other": flat(true, [ok_report(k, other_profile, "notRevoked")]),
	"upper": flat(true, [ok_report(k, upper(team), "notRevoked")]),
	"revoked": flat(false, [awssigner_report(k, false, team, "revoked", revoked_msg)]),
	"unavailable": flat(true, [ok_report(k, team, "unavailable")]),
	"unsigned": flat(false, [no_referrers_report(k)]),
	"v1": flat(false, [no_referrers_report(k)]),
	"cosignonly": flat(true, [object.union(cosign_report(k, true), {"message": "cosign signature verified"})]),
	"mixed": flat(false, [cosign_report(k, false), ok_report(k, team, "notRevoked")]),
	"twosigs": flat(true, [awssigner_report(k, false, other_profile, "revoked", "first refused"), ok_report(k, team, "notRevoked")]),
	"bothfail": flat(false, [awssigner_report(k, false, team, "notChecked", "first refused"), awssigner_report(k, false, team, "notChecked", "second refused")]),
	"noreports": flat(false, []),
	"reasononly": flat(false, [{"subject": k, "isSuccess": false, "errorReason": "MANIFEST_UNKNOWN: manifest unknown"}]),
	"string": "verified",
	"null": null,
	"noissuccess": {"version": "0.2.0", "verifierReports": [ok_report(k, team, "notRevoked")]},
	"stringtrue": {"version": "0.2.0", "isSuccess": "true", "verifierReports": [ok_report(k, team, "notRevoked")]},
	"ourstringtrue": flat(true, [object.union(ok_report(k, team, "notRevoked"), {"isSuccess": "true"})]),
	"custom": flat(true, [object.union(ok_report(k, team, "notRevoked"), {"name": "my-signer", "verifierName": "my-signer", "type": "awsnotation", "verifierType": "awsnotation"})]),
	"newfields": flat(true, [object.remove(ok_report(k, team, "notRevoked"), ["name", "type"])]),
	"notation": flat(false, [notation_report(k)]),
	"badconfig": flat(false, [bad_config_report(k)]),
	"awsdown": flat(false, [could_not_check_report(k, "revocationUnavailable", "revocation", "AWS Signer signature sha256:4b1c9e0d7a could not be checked: GetRevocationStatus in us-west-2 failed: dial tcp 10.0.0.1:443: i/o timeout")]),
	"authfail": flat(false, [could_not_check_report(k, "registryUnavailable", "fetch", "AWS Signer signature sha256:4b1c9e0d7a could not be checked: reading the signature manifest: GET https://registry.example.com/v2/team/app/manifests/sha256:4b1c: response status code 401: unauthorized: authentication required")]),
	"authreason": flat(false, [could_not_check_report(k, "registryAuthFailed", "fetch", "AWS Signer signature sha256:4b1c9e0d7a could not be checked: the registry refused the credentials")]),
	"regdown": flat(false, [could_not_check_report(k, "registryUnavailable", "fetch", "AWS Signer signature sha256:4b1c9e0d7a could not be checked: reading the signature manifest: dial tcp: connection refused")]),
	"unresolved": flat(false, [{"subject": k, "isSuccess": false, "message": concat("", ["failed to verify artifact: ", k]), "errorReason": "could not resolve descriptor for a subject from any stores"}]),
	"resolved": flat(false, [object.union(awssigner_report(k, false, team, "revoked", revoked_msg), {"extensions": {"subjectDigest": "sha256:feedface"}})]),
}

# Ratify's built-in notation verifier, run instead of ours (config policy).
notation_report(subject) := {
	"subject": subject,
	"isSuccess": false,
	"name": "verifier-notation",
	"verifierName": "verifier-notation",
	"type": "notation",
	"verifierType": "notation",
	"message": "Failed to validate the Notation signature",
	"errorReason": "verification failure: no applicable trust policy",
	"artifactType": "application/vnd.cncf.notary.signature",
}

# What Ratify records when our plugin exits with an error object (code 8).
bad_config_report(subject) := {
	"subject": subject,
	"isSuccess": false,
	"name": "verifier-awssigner",
	"verifierName": "verifier-awssigner",
	"type": "awssigner",
	"verifierType": "awssigner",
	"message": "Original Error: (Original Error: (plugin command VERIFY failed), Error: plugin error, Code: PLUGIN_ERROR, Plugin Name: awssigner), Error: verify reference failure",
	"errorReason": "invalid awssigner verifier configuration: trustPolicyDoc.trustPolicies[0].signatureVerification.levl: unknown key",
}

could_not_check_report(subject, reason, check, msg) := object.union(awssigner_report(subject, false, team, "notChecked", msg), {"extensions": {"outcome": "couldNotCheck", "reason": reason, "failedCheck": check}})

# Rego-policy answers (version 1.1.0), by tag. Executor errors (such as no
# referrers) are per-key errors with this policy.
nested_answers(k) := {
	"signed": nested(k, true, [ok_report(k, team, "notRevoked")]),
	"other": nested(k, true, [ok_report(k, other_profile, "notRevoked")]),
	"revoked": nested(k, false, [awssigner_report(k, false, team, "revoked", revoked_msg)]),
	"unavailable": nested(k, true, [ok_report(k, team, "unavailable")]),
	"mixed": nested(k, false, [cosign_report(k, false), ok_report(k, team, "notRevoked")]),
	"cosignonly": nested(k, true, [object.union(cosign_report(k, true), {"message": "cosign signature verified"})]),
}

# Item errors. Both policies: a key Ratify cannot parse. Rego policy only:
# executor errors such as no referrers.
item_error(k) := concat("", ["REFERENCE_INVALID: failed to parse subject reference ", k]) if tag(k) == "error"

item_error(k) := concat("", ["GET_SUBJECT_DESCRIPTOR_FAILURE: failed to resolve the subject descriptor of ", k, ": GET https://registry.example.com/v2/team/app/manifests/authkey: response status code 401: unauthorized"]) if tag(k) == "authkey"

item_error(k) := "CONFIG_INVALID: verifiers config should have at least one verifier" if tag(k) == "noverifier"

rego_item_error(k) := concat("", ["NO_VERIFIER_REPORT: No verification results for the artifact ", k, ". Ensure verifiers are properly configured and that artifact metadata is attached"]) if {
	tag(k) in {"unsigned", "v1"}
}

rego_item_error(k) := item_error(k) if tag(k) == "error"

# Gatekeeper's RegoResponse: errors is null when there are none (a nil
# slice), responses holds the keys that have a value.
gatekeeper_response(pairs, errs) := {
	"responses": pairs,
	"errors": nullable(errs),
	"status_code": 200,
	"system_error": "",
}

nullable(xs) := null if count(xs) == 0

nullable(xs) := xs if count(xs) > 0

mock_flat(req) := gatekeeper_response(
	[[k, v] | some k in req.keys; v := flat_answers(k)[tag(k)]],
	[[k, e] | some k in req.keys; e := item_error(k)],
)

mock_nested(req) := gatekeeper_response(
	[[k, v] | some k in req.keys; v := nested_answers(k)[tag(k)]],
	[[k, e] | some k in req.keys; e := rego_item_error(k)],
)

# A provider or transport failure, as Gatekeeper reports it.
mock_system_error(_) := {
	"responses": null,
	"errors": null,
	"status_code": 500,
	"system_error": "failed to send external data request: Post \"https://ratify.gatekeeper-system:6001/ratify/gatekeeper/v1/verify\": EOF",
}

# Echoes the request back so a test can see what the provider was sent.
mock_echo(req) := {"responses": [], "errors": [], "status_code": 200, "system_error": "", "request": req}

# Answers [key, null] for every key (an item with neither value nor error).
mock_null_values(req) := gatekeeper_response([[k, null] | some k in req.keys], [])

# Behaves like Gatekeeper's builtin on a malformed argument: undefined.
mock_strict(req) := mock_flat(req) if {
	is_object(req)
	is_string(req.provider)
	every k in req.keys {
		is_string(k)
	}
}

mock_undefined(req) := x if {
	req.provider == "no such thing"
	x := {}
}

reasons(vs) := {v.details.reason | some v in vs}

msgs(vs) := {v.msg | some v in vs}

# ---------------------------------------------------------------- allowed

test_signed_flat_allowed if {
	count(violation) == 0 with input as review(pod([ctr("app", signed)])) with external_data as mock_flat
}

test_signed_nested_allowed if {
	count(violation) == 0 with input as review(pod([ctr("app", signed)])) with external_data as mock_nested
}

test_all_kinds_of_containers_signed_allowed if {
	p := object.union(pod([ctr("app", signed)]), {"spec": {
		"initContainers": [ctr("init", img("signed"))],
		"containers": [ctr("app", signed), ctr("other", other)],
		"ephemeralContainers": [ctr("debug", signed)],
	}})
	count(violation) == 0 with input as review(p) with external_data as mock_flat
	count(violation) == 0 with input as review(p) with external_data as mock_nested
}

test_other_verifier_failing_ours_passing_allowed if {
	count(violation) == 0 with input as review(pod([ctr("app", img("mixed"))])) with external_data as mock_flat
	count(violation) == 0 with input as review(pod([ctr("app", img("mixed"))])) with external_data as mock_nested
}

test_one_of_two_signatures_passing_allowed if {
	count(violation) == 0 with input as review(pod([ctr("app", img("twosigs"))])) with external_data as mock_flat
}

test_matches_on_verifier_name_and_type_fields if {
	# Ratify's deprecated name/type missing: verifierType still matches.
	count(violation) == 0 with input as review(pod([ctr("app", img("newfields"))])) with external_data as mock_flat
}

test_verifier_name_parameter if {
	p := pod([ctr("app", img("custom"))])
	count(violation) == 0 with input as review_with(p, {"verifierName": "awsnotation"}) with external_data as mock_flat
	count(violation) == 0 with input as review_with(p, {"verifierName": "my-signer"}) with external_data as mock_flat
	vs := violation with input as review(p) with external_data as mock_flat
	reasons(vs) == {"verifier_absent"}
}

# ---------------------------------------------------------------- refused by the verifier

test_unsigned_flat_denied_exact_message if {
	vs := violation with input as review(pod([ctr("app", unsigned)])) with external_data as mock_flat
	count(vs) == 1
	msgs(vs) == {"image \"registry.example.com/team/app:unsigned\" in container \"app\" (containers) is not allowed: it has no signature: Ratify found no Notation signature attached to it; sign it with `awssigner sign <image> --profile-arn <ARN>` (or notation with the AWS Signer plugin) and push the signature next to it"}
	some v in vs
	v.details == {
		"container": "app",
		"containerType": "containers",
		"image": unsigned,
		"writtenAs": "",
		"digest": "",
		"ratifyKey": unsigned,
		"reason": "unsigned",
		"provider": "ratify-provider",
		"verifierName": "awssigner",
	}
}

test_unsigned_nested_is_a_key_error_exact_message if {
	vs := violation with input as review(pod([ctr("app", unsigned)])) with external_data as mock_nested
	msgs(vs) == {"image \"registry.example.com/team/app:unsigned\" in container \"app\" (containers) is not allowed: it has no signature: Ratify found no Notation signature attached to it (NO_VERIFIER_REPORT: No verification results for the artifact registry.example.com/team/app:unsigned. Ensure verifiers are properly configured and that artifact metadata is attached); sign it with `awssigner sign <image> --profile-arn <ARN>` and push the signature next to it"}
	reasons(vs) == {"unsigned"}
}

test_revoked_flat_denied_exact_message if {
	vs := violation with input as review(pod([ctr("app", revoked)])) with external_data as mock_flat
	msgs(vs) == {concat("", ["image \"registry.example.com/team/app:revoked\" in container \"app\" (containers) is not allowed: the \"awssigner\" verifier refused it: ", revoked_msg])}
	reasons(vs) == {"verification_failed"}
}

test_revoked_nested_denied if {
	vs := violation with input as review(pod([ctr("app", revoked)])) with external_data as mock_nested
	reasons(vs) == {"verification_failed"}
	some v in vs
	contains(v.msg, revoked_msg)
}

test_all_our_reports_failed_messages_joined if {
	vs := violation with input as review(pod([ctr("app", img("bothfail"))])) with external_data as mock_flat
	reasons(vs) == {"verification_failed"}
	some v in vs
	endswith(v.msg, "the \"awssigner\" verifier refused it: first refused; second refused")
}

test_our_report_with_string_true_is_not_a_pass if {
	vs := violation with input as review(pod([ctr("app", img("ourstringtrue"))])) with external_data as mock_flat
	reasons(vs) == {"verification_failed"}
}

test_only_another_verifier_reported_flat if {
	vs := violation with input as review(pod([ctr("app", img("cosignonly"))])) with external_data as mock_flat
	msgs(vs) == {"image \"registry.example.com/team/app:cosignonly\" in container \"app\" (containers) is not allowed: Ratify ran verifier-cosign (type cosign) on its signature instead of the \"awssigner\" verifier (it says: cosign signature verified); with Ratify's config policy only the first verifier whose artifactTypes match runs on a signature, in random order: remove the other verifier claiming Notation signatures, or install the chart's Ratify scope (parameter ratifyNamespace) so only \"awssigner\" runs"}
	reasons(vs) == {"verifier_absent"}
}

test_only_another_verifier_reported_nested if {
	vs := violation with input as review(pod([ctr("app", img("cosignonly"))])) with external_data as mock_nested
	reasons(vs) == {"verifier_absent"}
}

test_no_reports_at_all_is_unsigned if {
	vs := violation with input as review(pod([ctr("app", img("noreports"))])) with external_data as mock_flat
	reasons(vs) == {"unsigned"}
}

test_ratify_error_reason_without_message if {
	vs := violation with input as review(pod([ctr("app", img("reasononly"))])) with external_data as mock_flat
	some v in vs
	endswith(v.msg, "no report from the \"awssigner\" verifier; Ratify says: MANIFEST_UNKNOWN: manifest unknown")
}

# ---------------------------------------------------------------- provider failures (fail closed)

test_system_error_denies_every_container_exact_message if {
	p := pod([ctr("app", signed), ctr("helper", other)])
	vs := violation with input as review(p) with external_data as mock_system_error
	count(vs) == 2
	reasons(vs) == {"provider_system_error"}
	"image \"registry.example.com/team/app:signed\" in container \"app\" (containers) is not allowed: the external data provider \"ratify-provider\" returned a system error, so no image could be verified: failed to send external data request: Post \"https://ratify.gatekeeper-system:6001/ratify/gatekeeper/v1/verify\": EOF" in msgs(vs)
}

test_per_key_error if {
	p := pod([ctr("app", img("error")), ctr("ok", signed)])
	vs := violation with input as review(p) with external_data as mock_flat
	count(vs) == 1
	msgs(vs) == {"image \"registry.example.com/team/app:error\" in container \"app\" (containers) is not allowed: Ratify returned an error for it: REFERENCE_INVALID: failed to parse subject reference registry.example.com/team/app:error"}
}

test_missing_key if {
	vs := violation with input as review(pod([ctr("app", img("missing"))])) with external_data as mock_flat
	msgs(vs) == {"image \"registry.example.com/team/app:missing\" in container \"app\" (containers) is not allowed: Ratify's answer has no entry for it"}
	reasons(vs) == {"no_response"}
}

test_empty_answer_denies if {
	vs := violation with input as review(pod([ctr("app", signed)])) with external_data as mock_echo
	reasons(vs) == {"no_response"}
}

test_malformed_value_string if {
	vs := violation with input as review(pod([ctr("app", img("string"))])) with external_data as mock_flat
	msgs(vs) == {"image \"registry.example.com/team/app:string\" in container \"app\" (containers) is not allowed: Ratify's answer for it is not an object: \"verified\""}
	reasons(vs) == {"malformed_response"}
}

test_malformed_value_null if {
	vs := violation with input as review(pod([ctr("app", signed)])) with external_data as mock_null_values
	reasons(vs) == {"malformed_response"}
}

test_malformed_value_is_success_missing if {
	vs := violation with input as review(pod([ctr("app", img("noissuccess"))])) with external_data as mock_flat
	reasons(vs) == {"malformed_response"}
	some v in vs
	contains(v.msg, "Ratify's answer for it has neither a boolean isSuccess (Ratify v1) nor a boolean succeeded with artifactReports (Ratify v2, awssigner serve): {")
}

test_malformed_value_is_success_string if {
	vs := violation with input as review(pod([ctr("app", img("stringtrue"))])) with external_data as mock_flat
	reasons(vs) == {"malformed_response"}
}

# ---------------------------------------------------------------- allowedSigningProfiles

test_profile_not_allowed_exact_message if {
	params := {"allowedSigningProfiles": [team]}
	vs := violation with input as review_with(pod_named("payments", [ctr("app", other)]), params) with external_data as mock_flat
	msgs(vs) == {"image \"registry.example.com/team/app:other\" in container \"app\" (containers) is not allowed: it is signed by signing profile \"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other\", which is not in allowedSigningProfiles [\"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Team\"]"}
	reasons(vs) == {"signing_profile_not_allowed"}
}

test_profile_not_allowed_nested if {
	params := {"allowedSigningProfiles": [team]}
	vs := violation with input as review_with(pod([ctr("app", other)]), params) with external_data as mock_nested
	reasons(vs) == {"signing_profile_not_allowed"}
}

test_profile_allowed if {
	params := {"allowedSigningProfiles": [other_profile, team]}
	count(violation) == 0 with input as review_with(pod([ctr("a", signed), ctr("b", other)]), params) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("a", signed), ctr("b", other)]), params) with external_data as mock_nested
}

test_profile_match_is_case_insensitive if {
	count(violation) == 0 with input as review_with(pod([ctr("a", signed)]), {"allowedSigningProfiles": [upper(team)]}) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("a", img("upper"))]), {"allowedSigningProfiles": [team]}) with external_data as mock_flat
}

test_unusable_profile_entries_fail_closed if {
	vs := violation with input as review_with(pod([ctr("a", signed)]), {"allowedSigningProfiles": [""]}) with external_data as mock_flat
	reasons(vs) == {"signing_profile_not_allowed"}
}

test_profile_check_uses_a_passing_signature_only if {
	# "twosigs": a refused signature by Other, a good one by Team.
	count(violation) == 0 with input as review_with(pod([ctr("a", img("twosigs"))]), {"allowedSigningProfiles": [team]}) with external_data as mock_flat
	vs := violation with input as review_with(pod([ctr("a", img("twosigs"))]), {"allowedSigningProfiles": [other_profile]}) with external_data as mock_flat
	reasons(vs) == {"signing_profile_not_allowed"}
}

# ---------------------------------------------------------------- requireRevocationCheck

test_revocation_unavailable_denied_when_required if {
	params := {"requireRevocationCheck": true}
	vs := violation with input as review_with(pod([ctr("app", img("unavailable"))]), params) with external_data as mock_flat
	msgs(vs) == {"image \"registry.example.com/team/app:unavailable\" in container \"app\" (containers) is not allowed: requireRevocationCheck is set and the revocation status of its signature is \"unavailable\", not \"notRevoked\""}
	reasons(vs) == {"revocation_not_checked"}
	vs2 := violation with input as review_with(pod([ctr("app", img("unavailable"))]), params) with external_data as mock_nested
	reasons(vs2) == {"revocation_not_checked"}
}

test_revocation_unavailable_allowed_when_not_required if {
	count(violation) == 0 with input as review(pod([ctr("app", img("unavailable"))])) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("app", img("unavailable"))]), {"requireRevocationCheck": false}) with external_data as mock_flat
}

test_revocation_checked_allowed_when_required if {
	params := {"requireRevocationCheck": true, "allowedSigningProfiles": [team]}
	count(violation) == 0 with input as review_with(pod([ctr("app", signed)]), params) with external_data as mock_flat
}

# ---------------------------------------------------------------- exemptions and keys

test_exempt_prefix_and_exact_not_sent if {
	params := {"exemptImages": ["registry.example.com/platform/*", "registry.example.com/team/app:unsigned"]}
	p := pod([ctr("app", signed), ctr("sidecar", sidecar), ctr("legacy", unsigned), ctr("other", other)])
	r := response with input as review_with(p, params) with external_data as mock_echo
	r.request == {"provider": "ratify-provider", "keys": [other, signed]}
	count(violation) == 0 with input as review_with(p, params) with external_data as mock_flat
}

test_single_string_exemption if {
	params := {"exemptImages": "registry.example.com/platform/*"}
	count(violation) == 0 with input as review_with(pod([ctr("sidecar", sidecar)]), params) with external_data as mock_flat
}

test_repository_exemption_matches_tag_and_digest_forms if {
	params := {"exemptImages": ["registry.example.com/team/app"]}
	count(violation) == 0 with input as review_with(pod([ctr("app", unsigned)]), params) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("app", "registry.example.com/team/app@sha256:0123")]), params) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("app", "registry.example.com/team/app:v1@sha256:0123")]), params) with external_data as mock_flat
	vs := violation with input as review_with(pod([ctr("a", "registry.example.com/team/app-other:unsigned"), ctr("b", "registry.example.com/team/app/sub:unsigned")]), params) with external_data as mock_flat
	count(vs) == 2
}

test_digest_exemption_matches_tagged_and_untagged_forms if {
	params := {"exemptImages": ["registry.example.com/team/app@sha256:0123"]}
	count(violation) == 0 with input as review_with(pod([ctr("app", "registry.example.com/team/app@sha256:0123")]), params) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("app", "registry.example.com/team/app:v1@sha256:0123")]), params) with external_data as mock_flat
	vs := violation with input as review_with(pod([ctr("app", "registry.example.com/team/app@sha256:4567")]), params) with external_data as mock_echo
	count(vs) == 1
}

test_tag_exemption_matches_only_that_tag if {
	params := {"exemptImages": ["registry.example.com/team/app:unsigned"]}
	count(violation) == 0 with input as review_with(pod([ctr("app", unsigned)]), params) with external_data as mock_flat
	count(violation) == 0 with input as review_with(pod([ctr("app", "registry.example.com/team/app:unsigned@sha256:0123")]), params) with external_data as mock_flat
	vs := violation with input as review_with(pod([ctr("app", revoked)]), params) with external_data as mock_flat
	reasons(vs) == {"verification_failed"}
}

test_registry_port_is_not_a_tag if {
	repository("localhost:5000/team/app:v1") == "localhost:5000/team/app"
	repository("localhost:5000/team/app") == "localhost:5000/team/app"
	tag_of("localhost:5000/team/app") == ""
	digest_of("localhost:5000/team/app:v1@sha256:ab") == "sha256:ab"
}

test_unexempted_unsigned_sidecar_denied if {
	vs := violation with input as review(pod([ctr("app", signed), ctr("sidecar", sidecar)])) with external_data as mock_flat
	count(vs) == 1
	some v in vs
	v.details.container == "sidecar"
}

test_only_exempt_images_no_call if {
	params := {"exemptImages": ["registry.example.com/platform/*"]}
	input_ := review_with(pod([ctr("sidecar", sidecar)]), params)
	not response with input as input_ with external_data as mock_system_error
	count(violation) == 0 with input as input_ with external_data as mock_system_error
}

test_keys_sorted_unique_and_plain if {
	p := object.union(pod([]), {"spec": {
		"initContainers": [ctr("init", unsigned)],
		"containers": [ctr("a", signed), ctr("b", unsigned)],
	}})
	r := response with input as review(p) with external_data as mock_echo
	r.request == {"provider": "ratify-provider", "keys": [signed, unsigned]}
}

test_duplicate_image_one_violation_per_container if {
	p := object.union(pod([]), {"spec": {
		"initContainers": [ctr("init", unsigned)],
		"containers": [ctr("a", unsigned), ctr("b", signed)],
	}})
	vs := violation with input as review(p) with external_data as mock_flat
	{[v.details.containerType, v.details.container] | some v in vs} == {["initContainers", "init"], ["containers", "a"]}
}

test_provider_parameter if {
	r := response with input as review_with(pod([ctr("a", signed)]), {"provider": "ratify-provider-prod"}) with external_data as mock_echo
	r.request.provider == "ratify-provider-prod"
	vs := violation with input as review_with(pod([ctr("a", signed)]), {"provider": "ratify-provider-prod"}) with external_data as mock_system_error
	some v in vs
	contains(v.msg, "the external data provider \"ratify-provider-prod\" returned a system error")
}

test_missing_parameters_use_defaults if {
	inp := {"review": {"object": pod([ctr("a", signed)])}}
	r := response with input as inp with external_data as mock_echo
	r.request.provider == "ratify-provider"
	count(violation) == 0 with input as inp with external_data as mock_flat
}

# ---------------------------------------------------------------- container lists and kinds

test_init_and_ephemeral_containers if {
	p := object.union(pod([ctr("app", signed)]), {"spec": {
		"initContainers": [ctr("setup", unsigned)],
		"ephemeralContainers": [ctr("debugger", revoked)],
	}})
	vs := violation with input as review(p) with external_data as mock_flat
	{[v.details.containerType, v.details.container, v.details.reason] | some v in vs} == {
		["initContainers", "setup", "unsigned"],
		["ephemeralContainers", "debugger", "verification_failed"],
	}
	some v in vs
	startswith(v.msg, "image \"registry.example.com/team/app:unsigned\" in container \"setup\" (initContainers) is not allowed: ")
}

test_deployment_init_container if {
	d := workload("Deployment", "apps/v1", [ctr("app", signed)])
	dep := object.union(d, {"spec": {"template": {"spec": {"initContainers": [ctr("migrate", unsigned)]}}}})
	vs := violation with input as review(dep) with external_data as mock_flat
	{[v.details.containerType, v.details.container] | some v in vs} == {["initContainers", "migrate"]}
}

test_pod_template_kinds if {
	every kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"] {
		vs := violation with input as review(workload(kind, "apps/v1", [ctr("app", unsigned)])) with external_data as mock_flat
		reasons(vs) == {"unsigned"}
		count(violation) == 0 with input as review(workload(kind, "apps/v1", [ctr("app", signed)])) with external_data as mock_flat
	}
}

test_cronjob if {
	vs := violation with input as review(cronjob([ctr("job", revoked)])) with external_data as mock_flat
	reasons(vs) == {"verification_failed"}
	count(violation) == 0 with input as review(cronjob([ctr("job", signed)])) with external_data as mock_nested
}

test_no_containers_no_call if {
	inp := review(pod([]))
	not response with input as inp with external_data as mock_system_error
	count(violation) == 0 with input as inp with external_data as mock_system_error
}

test_other_kinds_ignored if {
	cm := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": unsigned}}
	not response with input as review(cm) with external_data as mock_system_error
	count(violation) == 0 with input as review(cm) with external_data as mock_system_error
}

test_unnamed_containers_stay_distinct if {
	p := pod([{"image": unsigned}, {"image": revoked}])
	vs := violation with input as review(p) with external_data as mock_flat
	count(vs) == 2
}

test_delete_review_without_object if {
	inp := {"review": {"operation": "DELETE", "object": null, "oldObject": pod([ctr("a", unsigned)])}, "parameters": {}}
	count(violation) == 0 with input as inp with external_data as mock_system_error
}

# ---------------------------------------------------------------- malformed external_data argument (§2.1)

# In Gatekeeper a malformed argument (non-string keys) makes external_data
# undefined: no provider call and, for a naive policy, no violation. Here
# keys are built from string images only, so the argument stays well formed
# and the container with the bad image gets its own violation.
test_non_string_image_does_not_poison_the_call if {
	p := pod([ctr("app", unsigned), {"name": "weird", "image": 42}, {"name": "empty", "image": ""}])
	r := response with input as review(p) with external_data as mock_echo
	r.request.keys == [unsigned]
	vs := violation with input as review(p) with external_data as mock_strict
	{[v.details.container, v.details.reason] | some v in vs} == {
		["app", "unsigned"],
		["weird", "invalid_image"],
		["empty", "invalid_image"],
	}
	msgs(vs)["container \"weird\" (containers) has no image reference that can be verified: 42"]
}

# Should the call ever be undefined anyway (what Gatekeeper does on a
# malformed argument), the policy denies instead of silently allowing.
test_undefined_external_data_fails_closed if {
	vs := violation with input as review(pod([ctr("app", signed)])) with external_data as mock_undefined
	msgs(vs) == {"image \"registry.example.com/team/app:signed\" in container \"app\" (containers) is not allowed: the external data call to provider \"ratify-provider\" returned no usable result"}
}

# ---------------------------------------------------------------- one cause per message

test_notation_verifier_instead_of_ours_names_it if {
	vs := violation with input as review(pod([ctr("app", img("notation"))])) with external_data as mock_flat
	reasons(vs) == {"verifier_absent"}
	some v in vs
	contains(v.msg, "Ratify ran verifier-notation (type notation) on its signature instead of the \"awssigner\" verifier")
	contains(v.msg, "Failed to validate the Notation signature")
	contains(v.msg, "remove the other verifier claiming Notation signatures")
}

test_notation_verifier_in_scope_points_at_the_namespaced_verifier if {
	vs := violation with input as review_with(pod([ctr("app", img("notation"))]), {"ratifyNamespace": "gatekeeper-system"}) with external_data as mock_scoped
	reasons(vs) == {"verifier_absent"}
	some v in vs
	contains(v.msg, "no \"awssigner\" verifier in scope \"gatekeeper-system\"")
	contains(v.msg, "kubectl get namespacedverifiers -n gatekeeper-system")
}

test_scope_prefixes_every_key if {
	p := pod([ctr("a", signed), ctr("b", unsigned)])
	r := response with input as review_with(p, {"ratifyNamespace": "gatekeeper-system"}) with external_data as mock_echo
	r.request.keys == ["[gatekeeper-system]registry.example.com/team/app:signed", "[gatekeeper-system]registry.example.com/team/app:unsigned"]
	vs := violation with input as review_with(p, {"ratifyNamespace": "gatekeeper-system"}) with external_data as mock_scoped
	{[v.details.container, v.details.reason, v.details.ratifyKey] | some v in vs} == {["b", "unsigned", "[gatekeeper-system]registry.example.com/team/app:unsigned"]}
}

test_no_verifier_in_scope_key_error if {
	vs := violation with input as review(pod([ctr("app", img("noverifier"))])) with external_data as mock_flat
	reasons(vs) == {"verifier_absent"}
}

test_config_invalid_has_its_own_reason if {
	vs := violation with input as review(pod([ctr("app", img("badconfig"))])) with external_data as mock_flat
	reasons(vs) == {"config_invalid"}
	some v in vs
	contains(v.msg, "levl: unknown key")
	contains(v.msg, "Verifier's parameters are invalid")
}

test_aws_unreachable_has_its_own_reason if {
	vs := violation with input as review(pod([ctr("app", img("awsdown"))])) with external_data as mock_flat
	reasons(vs) == {"aws_unreachable"}
	some v in vs
	contains(v.msg, "signer:GetRevocationStatus")
}

test_registry_auth_failed_from_our_report if {
	vs := violation with input as review(pod([ctr("app", img("authfail"))])) with external_data as mock_flat
	reasons(vs) == {"registry_auth_failed"}
}

test_registry_auth_failed_from_ratify_key_error if {
	vs := violation with input as review(pod([ctr("app", img("authkey"))])) with external_data as mock_flat
	reasons(vs) == {"registry_auth_failed"}
	some v in vs
	contains(v.msg, "refused Ratify's credentials")
}

test_registry_down_is_not_an_auth_failure if {
	vs := violation with input as review(pod([ctr("app", img("regdown"))])) with external_data as mock_flat
	reasons(vs) == {"verification_failed"}
}

test_distinct_reasons_for_distinct_causes if {
	p := pod([
		ctr("a", unsigned), ctr("b", img("notation")), ctr("c", img("authfail")),
		ctr("d", img("badconfig")), ctr("e", img("awsdown")),
	])
	vs := violation with input as review(p) with external_data as mock_flat
	{[v.details.container, v.details.reason] | some v in vs} == {
		["a", "unsigned"], ["b", "verifier_absent"], ["c", "registry_auth_failed"],
		["d", "config_invalid"], ["e", "aws_unreachable"],
	}
}

test_digest_named_in_message if {
	d := "registry.example.com/team/app@sha256:0a1b"
	vs := violation with input as review(pod([ctr("app", d)])) with external_data as mock_digest
	some v in vs
	endswith(v.msg, " [digest sha256:0a1b]")
	v.details.digest == "sha256:0a1b"
}

test_resolved_digest_from_our_report if {
	vs := violation with input as review(pod([ctr("app", img("resolved"))])) with external_data as mock_flat
	some v in vs
	v.details.digest == "sha256:feedface"
	endswith(v.msg, " [digest sha256:feedface]")
}

test_image_as_written_on_update if {
	d := "registry.example.com/team/app@sha256:0a1b"
	old := pod([ctr("app", unsigned)])
	inp := {"review": {"object": pod([ctr("app", d)]), "oldObject": old, "operation": "UPDATE"}, "parameters": {}}
	vs := violation with input as inp with external_data as mock_digest
	some v in vs
	startswith(v.msg, "image \"registry.example.com/team/app@sha256:0a1b\" (written as \"registry.example.com/team/app:unsigned\") in container \"app\"")
	v.details.writtenAs == unsigned
}

# Answers a scoped key ("[ns]image") like the unscoped one.
mock_scoped(req) := gatekeeper_response(
	[[k, v] | some k in req.keys; v := flat_answers(unscoped(k))[tag(k)]],
	[],
)

unscoped(k) := substring(k, indexof(k, "]") + 1, -1)

# Answers every key with the unsigned (no referrers) result.
mock_digest(req) := gatekeeper_response([[k, flat(false, [no_referrers_report(k)])] | some k in req.keys], [])

test_unresolvable_image_is_registry_unreadable if {
	vs := violation with input as review(pod([ctr("app", img("unresolved"))])) with external_data as mock_flat
	reasons(vs) == {"registry_unreadable"}
	some v in vs
	contains(v.msg, "REPOSITORY_OPERATION_FAILURE")
}

test_other_verifier_words_are_clipped if {
	long := concat("", ["x" | some _ in numbers.range(1, 400)])
	r := object.union(notation_report("s"), {"message": long, "errorReason": ""})
	p := value_problem(flat(false, [r]))
	p.code == "verifier_absent"
	contains(p.reason, "…)")
	count(p.reason) < 800
}

test_registry_auth_failed_from_a_dedicated_plugin_reason if {
	vs := violation with input as review(pod([ctr("app", img("authreason"))])) with external_data as mock_flat
	reasons(vs) == {"registry_auth_failed"}
}

# ---------------------------------------------------------------- Ratify v2 shape (awssigner serve)

# ratify-go's subject: the image by digest.
serve_subject := "registry.example.com/team/app@sha256:5a1f0c3e9b7d"

# Our verification.Report as internal/ratifygo writes it into detail.
serve_detail(verdict, profile, status, reason, check, msg) := json.marshal(object.union(
	{
		"verified": verdict == "verified",
		"verificationLevel": "strict",
		"signingProfileArn": profile,
		"revocationStatus": status,
		"signatureDigest": "sha256:4b1c9e0d7a6f",
		"verdict": verdict,
		"message": msg,
	},
	serve_reason(reason, check),
))

serve_reason(reason, _) := {} if reason == ""

serve_reason(reason, check) := {"reason": reason, "failedCheck": check} if reason != ""

# One result of ours: errorReason is the message unless verified.
serve_result(verdict, profile, status, reason, check, msg) := object.union(
	{"verifierName": "awssigner", "description": msg, "detail": serve_detail(verdict, profile, status, reason, check, msg)},
	serve_error(verdict, msg),
)

serve_error(verdict, _) := {} if verdict == "verified"

serve_error(verdict, msg) := {"errorReason": msg} if verdict != "verified"

serve_ok(profile, status) := serve_result("verified", profile, status, "", "", concat("", ["AWS Signer signature sha256:4b1c9e0d7a verified (level strict): signed by AWS Signer profile ", profile, "; revocation: ", status]))

serve_report(results) := {"subject": serve_subject, "artifact": "sha256:4b1c9e0d7a6f", "results": results}

serve_value(ok, reps) := {"succeeded": ok, "artifactReports": reps}

serve_notation := {"verifierName": "notation", "description": "Failed to validate the Notation signature", "errorReason": "no applicable trust policy"}

# Answers of awssigner serve, by tag.
serve_answers := {
	"signed": serve_value(true, [serve_report([serve_ok(team, "notRevoked")])]),
	"other": serve_value(true, [serve_report([serve_ok(other_profile, "notRevoked")])]),
	"unavailable": serve_value(true, [serve_report([serve_ok(team, "unavailable")])]),
	"revoked": serve_value(false, [serve_report([serve_result("refused", team, "revoked", "signatureRevoked", "revocation", revoked_msg)])]),
	"awsdown": serve_value(false, [serve_report([serve_result("couldNotCheck", team, "notChecked", "revocationUnavailable", "revocation", "AWS Signer signature sha256:4b1c9e0d7a could not be checked: GetRevocationStatus in us-west-2 failed: dial tcp 10.0.0.1:443: i/o timeout")])]),
	"unsigned": {"succeeded": false, "artifactReports": null},
	"emptyreports": serve_value(false, []),
	"notationonly": serve_value(true, [serve_report([serve_notation])]),
	# Claims success everywhere, but the detail is not a report.
	"notjson": serve_value(true, [serve_report([{"verifierName": "awssigner", "description": "verified", "detail": "{not json"}])]),
	"notobject": serve_value(true, [serve_report([{"verifierName": "awssigner", "description": "verified", "detail": "[\"verified\"]"}])]),
	"objectdetail": serve_value(true, [serve_report([{"verifierName": "awssigner", "description": "verified", "detail": {"verdict": "verified"}}])]),
	"nodetail": serve_value(true, [serve_report([{"verifierName": "awssigner", "description": "verified"}])]),
	"errorreason": serve_value(true, [serve_report([object.union(serve_ok(team, "notRevoked"), {"errorReason": "late failure"})])]),
	# A refused signature, and a good one found only in a nested report.
	"nested": serve_value(true, [object.union(serve_report([serve_result("refused", other_profile, "revoked", "signatureRevoked", "revocation", "first refused")]), {"artifactReports": [object.union(serve_report([serve_notation]), {"artifactReports": [serve_report([serve_ok(team, "notRevoked")])]})]})]),
	# A signed SBOM attached to an unsigned image: the nested report is
	# about the SBOM, not the image.
	"sbomsig": serve_value(true, [object.union(serve_report([]), {"artifact": "sha256:0bb0e1", "artifactReports": [object.union(serve_report([serve_ok(team, "notRevoked")]), {"subject": "registry.example.com/team/app@sha256:0bb0e1"})]})]),
	"twosigs": serve_value(true, [serve_report([serve_result("refused", other_profile, "revoked", "signatureRevoked", "revocation", "first refused")]), serve_report([serve_ok(team, "notRevoked")])]),
	"withdigest": serve_value(false, [serve_report([object.union(serve_result("refused", team, "revoked", "signatureRevoked", "revocation", revoked_msg), {"detail": json.marshal({"verdict": "refused", "subjectDigest": "sha256:feedface", "revocationStatus": "revoked"})})])]),
	# Both shapes' fields: read as v1 only (no verifierReports: unsigned).
	"both": {"isSuccess": false, "succeeded": true, "artifactReports": [serve_report([serve_ok(team, "notRevoked")])]},
	"succeededstring": {"succeeded": "true", "artifactReports": [serve_report([serve_ok(team, "notRevoked")])]},
	"noartifactreports": {"succeeded": true},
}

mock_v2(req) := gatekeeper_response([[k, v] | some k in req.keys; v := serve_answers[tag(k)]], [])

# The Provider of awssigner serve, as the chart names it in mode provider.
serve_provider := "awssigner-verify"

serve_params(params) := object.union({"provider": serve_provider}, params)

serve_violations(t, params) := vs if {
	vs := violation with input as review_with(pod([ctr("app", img(t))]), serve_params(params)) with external_data as mock_v2
}

test_v2_signed_allowed if {
	count(serve_violations("signed", {})) == 0
	count(serve_violations("twosigs", {})) == 0
}

test_v2_refused_carries_message if {
	vs := serve_violations("revoked", {})
	msgs(vs) == {concat("", ["image \"registry.example.com/team/app:revoked\" in container \"app\" (containers) is not allowed: the \"awssigner\" verifier refused it: ", revoked_msg, " [digest sha256:5a1f0c3e9b7d]"])}
	reasons(vs) == {"verification_failed"}
	some v in vs
	v.details.digest == "sha256:5a1f0c3e9b7d"
}

test_v2_subject_digest_from_detail_first if {
	some v in serve_violations("withdigest", {})
	v.details.digest == "sha256:feedface"
}

test_v2_could_not_check_classified if {
	vs := serve_violations("awsdown", {})
	reasons(vs) == {"aws_unreachable"}
	some v in vs
	contains(v.msg, "GetRevocationStatus in us-west-2 failed")
	contains(v.msg, "signer:GetRevocationStatus")
}

test_v2_unsigned if {
	vs := serve_violations("unsigned", {})
	msgs(vs) == {"image \"registry.example.com/team/app:unsigned\" in container \"app\" (containers) is not allowed: it has no signature: the provider \"awssigner-verify\" found no Notation signature attached to it; sign it with `awssigner sign <image> --profile-arn <ARN>` (or notation with the AWS Signer plugin) and push the signature next to it"}
	reasons(serve_violations("emptyreports", {})) == {"unsigned"}
}

test_v2_other_verifier_only if {
	vs := serve_violations("notationonly", {})
	reasons(vs) == {"verifier_absent"}
	some v in vs
	contains(v.msg, "the provider \"awssigner-verify\" ran notation on its signature instead of the \"awssigner\" verifier (it says: Failed to validate the Notation signature (no applicable trust policy)); the provider \"awssigner-verify\" answered no result with verifierName \"awssigner\": set the Constraint's parameter verifierName")
	not contains(v.msg, "Ratify")
}

test_v2_malformed_detail_each_denied if {
	every t in ["notjson", "notobject", "objectdetail", "nodetail"] {
		vs := serve_violations(t, {})
		reasons(vs) == {"verification_failed"}
		some v in vs
		contains(v.msg, "the \"awssigner\" verifier refused it: verified (its detail is not a verification report (a JSON object with a verdict): ")
	}
}

test_v2_error_reason_with_verified_detail_denied if {
	vs := serve_violations("errorreason", {})
	reasons(vs) == {"verification_failed"}
	some v in vs
	contains(v.msg, "late failure")
}

test_v2_nested_reports if {
	count(serve_violations("nested", {})) == 0
	count(serve_violations("nested", {"allowedSigningProfiles": [team]})) == 0
	reasons(serve_violations("nested", {"allowedSigningProfiles": [other_profile]})) == {"signing_profile_not_allowed"}
	r := reports(serve_answers.nested)
	[x.name | some x in r] == ["awssigner", "notation", "awssigner"]
}

test_v2_nested_report_about_another_artifact_does_not_count if {
	reasons(serve_violations("sbomsig", {})) == {"unsigned"}
	count(reports(serve_answers.sbomsig)) == 0
}

test_v2_allowed_signing_profiles if {
	vs := serve_violations("other", {"allowedSigningProfiles": [team]})
	msgs(vs) == {"image \"registry.example.com/team/app:other\" in container \"app\" (containers) is not allowed: it is signed by signing profile \"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other\", which is not in allowedSigningProfiles [\"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Team\"] [digest sha256:5a1f0c3e9b7d]"}
	count(serve_violations("other", {"allowedSigningProfiles": [upper(other_profile)]})) == 0
	reasons(serve_violations("twosigs", {"allowedSigningProfiles": [other_profile]})) == {"signing_profile_not_allowed"}
}

test_v2_require_revocation_check if {
	count(serve_violations("unavailable", {})) == 0
	vs := serve_violations("unavailable", {"requireRevocationCheck": true})
	reasons(vs) == {"revocation_not_checked"}
	count(serve_violations("signed", {"requireRevocationCheck": true})) == 0
}

test_v2_succeeded_is_not_the_pass if {
	# succeeded true without a passing report of ours: denied.
	reasons(serve_violations("notationonly", {})) == {"verifier_absent"}
	reasons(serve_violations("notjson", {})) == {"verification_failed"}
}

test_v2_shape_detection if {
	reasons(serve_violations("both", {})) == {"unsigned"}
	reasons(serve_violations("succeededstring", {})) == {"malformed_response"}
	reasons(serve_violations("noartifactreports", {})) == {"malformed_response"}
}

test_v2_custom_verifier_name if {
	count(serve_violations("signed", {"verifierName": "awssigner"})) == 0
	reasons(serve_violations("signed", {"verifierName": "verifier-awssigner"})) == {"verifier_absent"}
}

# ---------------------------------------------------------------- who answered

# On the v2 shape no message names Ratify: the provider path has none.
test_v2_messages_never_name_ratify if {
	every t in ["unsigned", "emptyreports", "notationonly", "revoked", "awsdown", "notjson", "succeededstring", "noartifactreports", "sbomsig"] {
		some v in serve_violations(t, {})
		# The shape names ("Ratify v1", "Ratify v2") are not an answerer.
		said := replace(replace(v.msg, "Ratify v1", ""), "Ratify v2", "")
		not contains(said, "Ratify")
	}
}

test_v2_could_not_check_hint_names_the_provider if {
	some v in serve_violations("awsdown", {})
	contains(v.msg, "signer:GetRevocationStatus of the identity of the provider \"awssigner-verify\" (awssigner serve's service account)")
}

test_v2_registry_auth_hint_names_the_provider if {
	vs := violation with input as review_with(pod([ctr("app", img("authreason"))]), serve_params({})) with external_data as mock_v2_auth
	reasons(vs) == {"registry_auth_failed"}
	some v in vs
	contains(v.msg, "the registry refused the credentials of the provider \"awssigner-verify\"; check awssigner serve's registry credentials")
}

mock_v2_auth(req) := gatekeeper_response([[k, serve_value(false, [serve_report([serve_result("couldNotCheck", team, "notChecked", "registryAuthFailed", "registry", "could not read the signature: 401 Unauthorized")])])] | some k in req.keys], [])

# A per-key error of awssigner serve ("could not check ..."), next to a
# v2 value for another key, and alone.
serve_error_text := "could not check registry.example.com/team/app:slow: within the request budget"

mock_v2_with_error(req) := gatekeeper_response(
	[[k, serve_answers.signed] | some k in req.keys; tag(k) != "slow"],
	[[k, serve_error_text] | some k in req.keys; tag(k) == "slow"],
)

test_v2_per_key_error_names_the_provider if {
	p := pod([ctr("app", img("slow")), ctr("ok", img("signed"))])
	vs := violation with input as review_with(p, serve_params({})) with external_data as mock_v2_with_error
	msgs(vs) == {"image \"registry.example.com/team/app:slow\" in container \"app\" (containers) is not allowed: the provider \"awssigner-verify\" returned an error for it: could not check registry.example.com/team/app:slow: within the request budget"}
	reasons(vs) == {"provider_error"}
}

# No value tells the shape: the Provider's name does.
test_error_only_answer_named_after_the_provider if {
	vs := violation with input as review_with(pod([ctr("app", img("slow"))]), serve_params({})) with external_data as mock_v2_with_error
	msgs(vs) == {"image \"registry.example.com/team/app:slow\" in container \"app\" (containers) is not allowed: the provider \"awssigner-verify\" returned an error for it: could not check registry.example.com/team/app:slow: within the request budget"}
	vr := violation with input as review(pod([ctr("app", img("slow"))])) with external_data as mock_v2_with_error
	msgs(vr) == {"image \"registry.example.com/team/app:slow\" in container \"app\" (containers) is not allowed: Ratify returned an error for it: could not check registry.example.com/team/app:slow: within the request budget"}
}

# A v1 value in the response keeps Ratify's words whatever the Provider's
# name; a v2 value gives the Provider's whatever its name.
test_response_shape_decides_over_the_name if {
	p := pod([ctr("app", img("error")), ctr("ok", signed)])
	vs := violation with input as review_with(p, {"provider": "ratify-provider-prod"}) with external_data as mock_flat
	some v in vs
	startswith(v.msg, "image \"registry.example.com/team/app:error\" in container \"app\" (containers) is not allowed: Ratify returned an error for it: ")
	q := pod([ctr("app", img("slow")), ctr("ok", img("signed"))])
	vq := violation with input as review(q) with external_data as mock_v2_with_error
	some w in vq
	contains(w.msg, "the provider \"ratify-provider\" returned an error for it")
}

test_v2_missing_entry_and_malformed_name_the_provider if {
	vs := violation with input as review_with(pod([ctr("app", img("missing")), ctr("ok", img("signed"))]), serve_params({})) with external_data as mock_v2_partial
	msgs(vs) == {"image \"registry.example.com/team/app:missing\" in container \"app\" (containers) is not allowed: the answer of the provider \"awssigner-verify\" has no entry for it"}
	vm := serve_violations("noartifactreports", {})
	some v in vm
	contains(v.msg, "the answer of the provider \"awssigner-verify\" for it has neither a boolean isSuccess (Ratify v1) nor a boolean succeeded with artifactReports")
}

mock_v2_partial(req) := gatekeeper_response([[k, serve_answers.signed] | some k in req.keys; tag(k) == "signed"], [])

# Per-key errors of every class, next to a v2 value.
serve_key_errors := {
	"nores": "no verification results for it",
	"nover": "at least one verifier must be configured",
	"unauth": "GET https://registry.example.com/v2/: 401 Unauthorized",
	"unresolved": "could not resolve descriptor",
}

mock_v2_errors(req) := gatekeeper_response(
	[[k, serve_answers.signed] | some k in req.keys; not serve_key_errors[tag(k)]],
	[[k, serve_key_errors[tag(k)]] | some k in req.keys; serve_key_errors[tag(k)]],
)

test_v2_per_key_error_causes_name_the_provider if {
	want := {"nores": "unsigned", "nover": "verifier_absent", "unauth": "registry_auth_failed", "unresolved": "registry_unreadable"}
	every t, code in want {
		vs := violation with input as review_with(pod([ctr("app", img(t)), ctr("ok", img("signed"))]), serve_params({})) with external_data as mock_v2_errors
		reasons(vs) == {code}
		some v in vs
		contains(v.msg, "the provider \"awssigner-verify\" ")
		not contains(v.msg, "Ratify")
	}
}
