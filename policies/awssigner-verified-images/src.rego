package awssignerverifiedimages

# Admits a workload only when every container image it runs (other than
# exempt ones) has an AWS Signer signature that Ratify's "awssigner"
# verifier accepted, optionally from an allowed signing profile and with a
# completed revocation check. Ratify is asked once per review, through
# Gatekeeper's external data provider, with every image as a key.
#
# Anything that is not a clear pass is a violation (fail closed): provider
# failures, per-image errors, missing or malformed answers, and answers
# without a report from our verifier.
#
# Written in Rego v0 with future keywords, for the ConstraintTemplate's
# legacy `rego:` field.

import future.keywords.contains
import future.keywords.every
import future.keywords.if
import future.keywords.in

# ---------------------------------------------------------------- parameters

params := p if {
	p := input.parameters
	is_object(p)
} else := {}

provider := p if {
	p := params.provider
	is_string(p)
	p != ""
} else := "ratify-provider"

verifier_name := v if {
	v := params.verifierName
	is_string(v)
	v != ""
} else := "awssigner"

# Ratify scope: keys are sent as "[<scope>]<image>", so Ratify verifies them
# with the NamespacedVerifier (and NamespacedPolicy) of that namespace only,
# whatever cluster-wide Verifiers another release installed. Empty: plain
# keys, Ratify's cluster-wide resources.
ratify_namespace := n if {
	n := params.ratifyNamespace
	is_string(n)
	n != ""
} else := ""

exempt_images := [e | some e in as_list(params.exemptImages); is_string(e); e != ""]

# A non-empty allowedSigningProfiles restricts the profiles, even when its
# entries are unusable (they then match nothing: fail closed).
restrict_profiles if count(as_list(params.allowedSigningProfiles)) > 0

allowed_profiles := [a | some a in as_list(params.allowedSigningProfiles)]

allowed_profiles_lower := {lower(a) | some a in allowed_profiles; is_string(a)}

default require_revocation := false

require_revocation if params.requireRevocationCheck == true

as_list(x) := x if is_array(x)

as_list(x) := [x] if is_string(x)

as_array(x) := x if is_array(x)

as_array(x) := [] if not is_array(x)

# ---------------------------------------------------------------- containers

pod_template_kinds := {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}

pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if obj.kind in pod_template_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

container_lists := ["initContainers", "containers", "ephemeralContainers"]

# Every container of the reviewed object, with the list it is in and its
# index there (so two unnamed containers stay distinct).
containers contains c if {
	spec := pod_spec(input.review.object)
	some list in container_lists
	some i, ctr in as_array(spec[list])
	is_object(ctr)
	c := {
		"list": list,
		"index": i,
		"name": container_name(ctr),
		"image": object.get(ctr, "image", null),
	}
}

container_name(ctr) := n if {
	n := ctr.name
	is_string(n)
} else := ""

valid_image(img) if {
	is_string(img)
	img != ""
}

# An image reference split into repository, tag and digest
# ("reg/repo:tag@sha256:..." -> "reg/repo", "tag", "sha256:...").
without_digest(img) := split(img, "@")[0]

digest_of(img) := d if {
	parts := split(img, "@")
	count(parts) > 1
	d := parts[1]
} else := ""

repository(img) := r if {
	s := without_digest(img)
	segs := split(s, "/")
	last := segs[count(segs) - 1]
	contains(last, ":")
	r := concat("/", array.concat(array.slice(segs, 0, count(segs) - 1), [split(last, ":")[0]]))
} else := without_digest(img)

tag_of(img) := t if {
	s := without_digest(img)
	segs := split(s, "/")
	last := segs[count(segs) - 1]
	contains(last, ":")
	t := split(last, ":")[1]
} else := ""

# A prefix pattern ("reg/platform/*") matches whatever follows, tag or
# digest form alike.
exempt(img) if {
	some e in exempt_images
	endswith(e, "*")
	startswith(img, trim_suffix(e, "*"))
}

# An entry without tag or digest is a repository: it matches the image in
# its tag form and in the digest form Ratify's mutation writes.
exempt(img) if {
	some e in exempt_images
	not endswith(e, "*")
	tag_of(e) == ""
	digest_of(e) == ""
	repository(img) == e
}

# An entry with a digest matches that digest of the repository, tagged or not.
exempt(img) if {
	some e in exempt_images
	not endswith(e, "*")
	digest_of(e) != ""
	repository(img) == repository(e)
	digest_of(img) == digest_of(e)
}

# An entry with a tag only matches that tag (it cannot match once Ratify's
# mutation has replaced the tag with the digest; prefer repositories).
exempt(img) if {
	some e in exempt_images
	not endswith(e, "*")
	digest_of(e) == ""
	tag_of(e) != ""
	repository(img) == repository(e)
	tag_of(img) == tag_of(e)
}

# Containers whose image is sent to Ratify.
checked contains c if {
	some c in containers
	valid_image(c.image)
	not exempt(c.image)
}

# The keys of the single external data call: plain image references,
# unique and sorted. Only strings get here, so the argument is always
# well formed (a malformed one would make the call silently undefined).
keys := sort({key_of(c.image) | some c in checked})

key_of(img) := sprintf("[%s]%s", [ratify_namespace, img]) if ratify_namespace != ""

key_of(img) := img if ratify_namespace == ""

response := external_data({"provider": provider, "keys": keys}) if count(keys) > 0

# Gatekeeper's answer is an object; anything else (or no answer: the call is
# undefined when its argument is malformed) is a failure, not an allow.
response_usable if is_object(response)

system_error := e if {
	e := response.system_error
	is_string(e)
	e != ""
}

key_errors(img) := [sprintf("%v", [pair[1]]) |
	some pair in as_array(response.errors)
	is_array(pair)
	count(pair) > 1
	pair[0] == key_of(img)
]

key_values(img) := [pair[1] |
	some pair in as_array(response.responses)
	is_array(pair)
	count(pair) > 1
	pair[0] == key_of(img)
]

# ---------------------------------------------------------------- reports

# Two value shapes, told apart without a parameter (they share no field):
# Ratify v1 answers a boolean isSuccess; Ratify v2 and `awssigner serve`
# answer no isSuccess, a boolean succeeded and artifactReports (a list, or
# null for an image without signatures). A value with isSuccess is read as
# v1 only. succeeded, like v1's isSuccess, is never the pass: the reports are.
v1_value(v) if is_boolean(v.isSuccess)

v2_value(v) if {
	not v1_value(v)
	is_null(object.get(v, "isSuccess", null))
	is_boolean(v.succeeded)
	report_list(v.artifactReports)
}

report_list(x) if is_array(x)

report_list(x) if is_null(x)

reports(v) := v1_reports(v) if v1_value(v)

reports(v) := v2_reports(v) if v2_value(v)

reports(v) := [] if {
	not v1_value(v)
	not v2_value(v)
}

# Ratify v1, config policy (version "0.2.0"): verifierReports are verifier
# results. Rego policy (version "1.1.0"): verifierReports are per-artifact
# reports whose own verifierReports are the verifier results. Told apart by
# shape.
v1_reports(v) := array.concat(
	[r | some r in as_array(v.verifierReports); is_object(r); not is_array(object.get(r, "verifierReports", null))],
	[r | some n in as_array(v.verifierReports); is_object(n); some r in as_array(n.verifierReports); is_object(r)],
)

# Ratify v2: artifactReports[*] (one per referrer of the image) and their
# nested artifactReports, at any depth, each with results; every result
# becomes a report in v1's terms, so one set of rules reads both. Only
# reports about the image itself count (the subject of the top-level
# report): a nested report about another artifact (a signature of an SBOM
# attached to the image) is not the image's signature and is left out, as
# v1's nestedReports are.
v2_reports(v) := [r |
	tops := as_array(v.artifactReports)
	walk(tops, [path, node])
	report_path(path)
	is_object(node)
	is_object(tops[path[0]])
	node.subject == tops[path[0]].subject
	some res in as_array(node.results)
	is_object(res)
	r := v2_report(node, res)
]

# Paths of artifact reports inside artifactReports: [i], [i,
# "artifactReports", j], ... (not the results or anything else walked).
report_path(path) if {
	count(path) % 2 == 1
	every i, x in path {
		report_step(i, x)
	}
}

report_step(i, x) if {
	i % 2 == 0
	is_number(x)
}

report_step(i, x) if {
	i % 2 == 1
	x == "artifactReports"
}

# One v2 result as a v1 report. detail is our verification.Report as a JSON
# string; anything else reads as {} and so cannot pass (fail closed). It
# passes only with no errorReason and verdict "verified".
v2_report(rep, res) := r if {
	ext := detail_of(res)
	r := {
		"name": object.get(res, "verifierName", ""),
		"subject": object.get(rep, "subject", ""),
		"isSuccess": v2_passed(res, ext),
		"message": object.get(res, "description", ""),
		"errorReason": v2_error_reason(res, ext),
		"extensions": with_subject_digest(ext, rep),
	}
}

detail_of(res) := x if {
	d := res.detail
	is_string(d)
	json.is_valid(d)
	x := json.unmarshal(d)
	is_object(x)
} else := {}

v2_passed(res, ext) if {
	object.get(res, "errorReason", "") == ""
	ext.verdict == "verified"
} else := false

# errorReason as answered; when there is none and the detail is no
# verification report, a reason saying so (so a refusal is never silent).
v2_error_reason(res, _) := e if {
	e := res.errorReason
	e != ""
} else := e if {
	not has_verdict(detail_of(res))
	e := sprintf("its detail is not a verification report (a JSON object with a verdict): %s", [short_json(object.get(res, "detail", null))])
} else := object.get(res, "errorReason", "")

has_verdict(ext) if is_string(ext.verdict)

# The subject digest: the detail's, else the one after "@" in the artifact
# report's subject (ratify-go names the subject by digest).
with_subject_digest(ext, rep) := ext if {
	d := ext.subjectDigest
	is_string(d)
	d != ""
} else := object.union(ext, {"subjectDigest": d}) if {
	s := rep.subject
	is_string(s)
	d := digest_of(s)
	d != ""
} else := ext

# ---------------------------------------------------------------- who answered

# The messages name what answered. Ratify v1's shape is Ratify's answer
# (Gatekeeper → Ratify → our plugin); v2's shape is the Provider's own
# (awssigner serve, no Ratify at all, or Ratify v2), so those messages name
# the Provider (parameter provider) and its hints are about it, not about
# Ratify's resources. A key without a value of either shape (a per-key
# error, no entry, a malformed value) is named after the shape of the
# response's other values; when none tells, after the Provider's name:
# Ratify's ("ratify-provider", the default) means Ratify.
ratify_provider := "ratify-provider"

response_shape(f) if {
	some pair in as_array(response.responses)
	is_array(pair)
	count(pair) > 1
	f == "v1"
	v1_value(pair[1])
}

response_shape(f) if {
	some pair in as_array(response.responses)
	is_array(pair)
	count(pair) > 1
	f == "v2"
	v2_value(pair[1])
}

key_shape(img, f) if {
	some v in key_values(img)
	f == "v1"
	v1_value(v)
}

key_shape(img, f) if {
	some v in key_values(img)
	f == "v2"
	v2_value(v)
}

by_provider(img) if key_shape(img, "v2")

by_provider(img) if {
	not key_shape(img, "v1")
	not key_shape(img, "v2")
	response_shape("v2")
	not response_shape("v1")
}

by_provider(img) if {
	not key_shape(img, "v1")
	not key_shape(img, "v2")
	not response_shape("v1")
	not response_shape("v2")
	provider != ratify_provider
}

provider_label := sprintf("the provider %q", [provider])

# who: "ratify" or "provider", as by_provider says.
who(img) := "provider" if by_provider(img)

who(img) := "ratify" if not by_provider(img)

# Who answered, as a message's subject.
answerer("ratify") := "Ratify"

answerer("provider") := provider_label

# Its answer, as a message's subject.
answer_of("ratify") := "Ratify's answer"

answer_of("provider") := sprintf("the answer of %s", [provider_label])

is_ours(r) if {
	some field in ["name", "type", "verifierName", "verifierType"]
	r[field] == verifier_name
}

ours(v) := [r | some r in reports(v); is_ours(r)]

profile_allowed(_) if not restrict_profiles

profile_allowed(r) if {
	arn := r.extensions.signingProfileArn
	is_string(arn)
	lower(arn) in allowed_profiles_lower
}

revocation_ok(_) if not require_revocation

revocation_ok(r) if r.extensions.revocationStatus == "notRevoked"

# isSuccess must be the boolean true; "true" or 1 is not a pass.
succeeded(r) if r.isSuccess == true

# A report as one line: its message, with Ratify's errorReason if any.
report_note(r) := sprintf("%s (%s)", [m, e]) if {
	m := r.message
	e := r.errorReason
	is_string(m)
	is_string(e)
	m != ""
	e != ""
	m != e
} else := m if {
	m := r.message
	is_string(m)
	m != ""
} else := e if {
	e := r.errorReason
	is_string(e)
	e != ""
}

notes(rs) := concat("; ", [n | some r in rs; n := report_note(r)])

quoted(xs) := concat(", ", [sprintf("%q", [x]) | some x in xs])

profiles_of(rs) := sort({p |
	some r in rs
	p := object.get(object.get(r, "extensions", {}), "signingProfileArn", "(none)")
})

statuses_of(rs) := sort({s |
	some r in rs
	s := object.get(object.get(r, "extensions", {}), "revocationStatus", "(none)")
})

short_json(x) := substring(json.marshal(x), 0, 300)

# Another verifier's words, at most 160 characters (Ratify's notation
# verifier prints whole descriptors).
clipped(s) := s if count(s) <= 160

clipped(s) := concat("", [substring(s, 0, 160), "…"]) if count(s) > 160

# ---------------------------------------------------------------- causes

# Words registries and Ratify's auth providers use when credentials are
# missing or refused (HTTP 401/403, ECR token failures, Docker config).
auth_words := [
	"401", "403", "unauthorized", "authentication required", "forbidden",
	"denied", "basic credential not found", "no basic auth credentials",
	"auth provider failed", "could not get ecr auth token", "credential",
]

auth_failure(text) if {
	t := lower(text)
	some w in auth_words
	contains(t, w)
}

# The plugin's answer when its configuration does not decode or build.
config_marker := "invalid awssigner verifier configuration"

# Ratify's per-key error when the scope has no verifier at all.
no_verifier_marker := "at least one verifier"

# Ratify's answer when its store could not resolve the image (not found,
# registry unreachable, or credentials refused: Ratify v1.4 logs which,
# REPOSITORY_OPERATION_FAILURE, but does not answer it).
unresolved_marker := "could not resolve descriptor"

unreadable_reason("ratify") := "Ratify could not read the image from the registry: it is not there, the registry is unreachable, or the registry refused Ratify's credentials (Ratify's answer does not say which; its log does: `kubectl logs deploy/ratify | grep REPOSITORY_OPERATION_FAILURE`, where \"basic credential not found\", 401 or 403 mean credentials: check the Store's authProvider and Ratify's IAM role)"

unreadable_reason("provider") := sprintf("%s could not read the image from the registry: it is not there, the registry is unreachable, or the registry refused the provider's credentials (its answer does not say which; its log does; for awssigner serve check `server.registry` in its configuration and, for ECR, ecr:GetAuthorizationToken and ecr:BatchGetImage of its identity)", [provider_label])

# What one failing report of ours says about the cause.
report_text(r) := concat(" ", [object.get(r, "message", ""), object.get(r, "errorReason", "")]) if {
	is_string(object.get(r, "message", ""))
	is_string(object.get(r, "errorReason", ""))
} else := ""

report_reason(r) := x if {
	x := r.extensions.reason
	is_string(x)
} else := ""

cause(r) := "config_invalid" if {
	contains(lower(report_text(r)), config_marker)
} else := "aws_unreachable" if {
	report_reason(r) == "revocationUnavailable"
} else := "registry_auth_failed" if {
	report_reason(r) == "registryAuthFailed"
} else := "registry_auth_failed" if {
	report_reason(r) == "registryUnavailable"
	auth_failure(report_text(r))
} else := "verification_failed"

cause_hint("ratify") := {
	"config_invalid": "the awssigner Verifier's parameters are invalid; fix the chart values (or the Verifier's spec.parameters) and check them with `awssigner verify --config`",
	"aws_unreachable": "AWS Signer could not be asked about revocation; check the network path and IAM permission signer:GetRevocationStatus of Ratify's identity",
	"registry_auth_failed": "the registry refused Ratify's credentials; check Ratify's Store authProvider (awsEcrBasic needs IRSA with ecr:GetAuthorizationToken and ecr:BatchGetImage)",
	"verification_failed": "",
}

cause_hint("provider") := {
	"config_invalid": sprintf("the awssigner verifier configuration of %s is invalid; fix it (awssigner serve: its configuration file, the chart's provider values; its /readyz names the refused key)", [provider_label]),
	"aws_unreachable": sprintf("AWS Signer could not be asked about revocation; check the network path and IAM permission signer:GetRevocationStatus of the identity of %s (awssigner serve's service account)", [provider_label]),
	"registry_auth_failed": sprintf("the registry refused the credentials of %s; check awssigner serve's registry credentials (`server.registry` in its configuration; ECR needs ecr:GetAuthorizationToken and ecr:BatchGetImage for its identity)", [provider_label]),
	"verification_failed": "",
}

# The Ratify path's words (the unit tests' one-argument form).
hinted(msg, code) := hinted_by(msg, code, "ratify")

hinted_by(msg, code, w) := msg if cause_hint(w)[code] == ""

hinted_by(msg, code, w) := sprintf("%s; %s", [msg, cause_hint(w)[code]]) if cause_hint(w)[code] != ""

# Reports that are verifier results with a name (not Ratify's anonymous
# "no verification results" report).
named(r) if {
	some field in ["name", "type", "verifierName", "verifierType"]
	is_string(r[field])
	r[field] != ""
}

other_verifiers(v) := sort({label |
	some r in reports(v)
	named(r)
	not is_ours(r)
	label := verifier_label(r)
})

verifier_label(r) := sprintf("%s (type %s)", [n, t]) if {
	n := object.get(r, "name", object.get(r, "verifierName", ""))
	t := object.get(r, "type", object.get(r, "verifierType", ""))
	n != ""
	t != ""
	n != t
} else := n if {
	n := object.get(r, "name", object.get(r, "verifierName", object.get(r, "type", object.get(r, "verifierType", ""))))
}

absent_hint("ratify") := sprintf("Ratify has no %q verifier in scope %q and fell back to its cluster-wide verifiers: check `kubectl get namespacedverifiers -n %s` (the chart's NamespacedVerifier is missing or was refused)", [verifier_name, ratify_namespace, ratify_namespace]) if ratify_namespace != ""

absent_hint("ratify") := sprintf("with Ratify's config policy only the first verifier whose artifactTypes match runs on a signature, in random order: remove the other verifier claiming Notation signatures, or install the chart's Ratify scope (parameter ratifyNamespace) so only %q runs", [verifier_name]) if ratify_namespace == ""

absent_hint("provider") := sprintf("%s answered no result with verifierName %q: set the Constraint's parameter verifierName to the name the provider gives the AWS Signer verifier's results (awssigner serve: \"awssigner\")", [provider_label, verifier_name])

# ---------------------------------------------------------------- verdicts

# Why one answer does not admit the image; undefined when it does. w
# (who) picks the words: "ratify" or "provider".
value_problem(v) := value_problem_by(v, "ratify")

value_problem_by(v, w) := p if {
	not is_object(v)
	p := {
		"code": "malformed_response",
		"reason": sprintf("%s for it is not an object: %s", [answer_of(w), short_json(v)]),
	}
} else := p if {
	not v1_value(v)
	not v2_value(v)
	p := {
		"code": "malformed_response",
		"reason": sprintf("%s for it has neither a boolean isSuccess (Ratify v1) nor a boolean succeeded with artifactReports (Ratify v2, awssigner serve): %s", [answer_of(w), short_json(v)]),
	}
} else := p if {
	count(ours(v)) == 0
	others := other_verifiers(v)
	count(others) > 0
	p := {
		"code": "verifier_absent",
		"reason": sprintf("%s ran %s on its signature instead of the %q verifier (it says: %s); %s", [answerer(w), concat(", ", others), verifier_name, clipped(notes(reports(v))), absent_hint(w)]),
	}
} else := p if {
	count(ours(v)) == 0
	every r in reports(v) {
		not named(r)
	}
	unsigned_text(v)
	p := {
		"code": "unsigned",
		"reason": sprintf("it has no signature: %s found no Notation signature attached to it; sign it with `awssigner sign <image> --profile-arn <ARN>` (or notation with the AWS Signer plugin) and push the signature next to it", [answerer(w)]),
	}
} else := p if {
	count(ours(v)) == 0
	some r in reports(v)
	contains(lower(report_text(r)), unresolved_marker)
	p := {
		"code": "registry_unreadable",
		"reason": unreadable_reason(w),
	}
} else := p if {
	count(ours(v)) == 0
	said := notes(reports(v))
	said != ""
	p := {
		"code": "no_verifier_report",
		"reason": sprintf("no report from the %q verifier; %s says: %s", [verifier_name, answerer(w), said]),
	}
} else := p if {
	count(ours(v)) == 0
	p := {
		"code": "no_verifier_report",
		"reason": no_report_reason(w),
	}
} else := p if {
	failing := [r | some r in ours(v); not succeeded(r)]
	count(failing) == count(ours(v))
	causes := {cause(r) | some r in failing}
	code := single_or(causes, "verification_failed")
	p := {
		"code": code,
		"reason": hinted_by(sprintf("the %q verifier refused it: %s", [verifier_name, notes(failing)]), code, w),
	}
} else := p if {
	good := [r | some r in ours(v); succeeded(r)]
	every r in good {
		not profile_allowed(r)
	}
	p := {
		"code": "signing_profile_not_allowed",
		"reason": sprintf("it is signed by signing profile %s, which is not in allowedSigningProfiles %v", [quoted(profiles_of(good)), allowed_profiles]),
	}
} else := p if {
	good := [r | some r in ours(v); succeeded(r); profile_allowed(r)]
	every r in good {
		not revocation_ok(r)
	}
	p := {
		"code": "revocation_not_checked",
		"reason": sprintf("requireRevocationCheck is set and the revocation status of its signature is %s, not \"notRevoked\"", [quoted(statuses_of(good))]),
	}
}

no_report_reason("ratify") := sprintf("no report from the %q verifier (is Ratify's verifier named or typed %q?)", [verifier_name, verifier_name])

no_report_reason("provider") := sprintf("no report from the %q verifier (do the results of %s carry verifierName %q?)", [verifier_name, provider_label, verifier_name])

single_or(xs, _) := x if {
	count(xs) == 1
	some x in xs
}

single_or(xs, fallback) := fallback if count(xs) != 1

# Ratify's config policy answers an image without signatures with no report
# or one anonymous "No verification results" report.
unsigned_text(v) if count(reports(v)) == 0

unsigned_text(v) if {
	some r in reports(v)
	contains(lower(report_text(r)), "no verification results")
}

# A per-key error, classified; w (who) picks the words.
error_problem(errs) := error_problem_by(errs, "ratify")

error_problem_by(errs, w) := p if {
	some e in errs
	contains(lower(e), "no verification results")
	p := {
		"code": "unsigned",
		"reason": sprintf("it has no signature: %s found no Notation signature attached to it (%s); sign it with `awssigner sign <image> --profile-arn <ARN>` and push the signature next to it", [answerer(w), concat("; ", errs)]),
	}
} else := p if {
	some e in errs
	contains(lower(e), no_verifier_marker)
	p := {
		"code": "verifier_absent",
		"reason": no_verifier_reason(w, errs),
	}
} else := p if {
	some e in errs
	contains(lower(e), unresolved_marker)
	not auth_failure(e)
	p := {
		"code": "registry_unreadable",
		"reason": unreadable_reason(w),
	}
} else := p if {
	some e in errs
	auth_failure(e)
	p := {
		"code": "registry_auth_failed",
		"reason": hinted_by(sprintf("%s could not read it from the registry: %s", [answerer(w), concat("; ", errs)]), "registry_auth_failed", w),
	}
} else := p if {
	p := {
		"code": "provider_error",
		"reason": sprintf("%s returned an error for it: %s", [answerer(w), concat("; ", errs)]),
	}
}

no_verifier_reason("ratify", errs) := sprintf("Ratify has no verifier to run for it (%s); install the chart's Verifier, or check `kubectl get namespacedverifiers,verifiers -A`", [concat("; ", errs)])

no_verifier_reason("provider", errs) := sprintf("%s has no verifier to run for it (%s); check its configuration", [provider_label, concat("; ", errs)])

# Why an image sent to the provider is not admitted; undefined when it is.
problem(img) := p if {
	system_error
	p := {
		"code": "provider_system_error",
		"reason": sprintf("the external data provider %q returned a system error, so no image could be verified: %s", [provider, system_error]),
	}
} else := p if {
	not response_usable
	p := {
		"code": "provider_no_result",
		"reason": sprintf("the external data call to provider %q returned no usable result", [provider]),
	}
} else := p if {
	errs := key_errors(img)
	count(errs) > 0
	p := error_problem_by(errs, who(img))
} else := p if {
	count(key_values(img)) == 0
	p := {
		"code": "no_response",
		"reason": sprintf("%s has no entry for it", [answer_of(who(img))]),
	}
} else := p if {
	w := who(img)
	problems := [q | some v in key_values(img); q := value_problem_by(v, w)]
	count(problems) > 0
	p := problems[0]
}

# ---------------------------------------------------------------- violations

# The digest the answer is about: the image's own, else the one our plugin
# reports having resolved the tag to (extensions.subjectDigest), else "".
verified_digest(img) := d if {
	d := digest_of(img)
	d != ""
} else := d if {
	some v in key_values(img)
	some r in ours(v)
	d := r.extensions.subjectDigest
	is_string(d)
	d != ""
} else := ""

# The image as the user wrote it, when Gatekeeper still has it: on UPDATE
# the old object's container of the same name and list, if it named the
# same repository differently (Ratify's mutation replaces tags by digests).
written_as(c) := w if {
	old := pod_spec(input.review.oldObject)
	some o in as_array(old[c.list])
	container_name(o) == c.name
	w := o.image
	is_string(w)
	w != c.image
	repository(w) == repository(c.image)
} else := ""

image_label(c) := sprintf("image %q (written as %q)", [c.image, written_as(c)]) if written_as(c) != ""

image_label(c) := sprintf("image %q", [c.image]) if written_as(c) == ""

digest_note(img) := sprintf(" [digest %s]", [verified_digest(img)]) if verified_digest(img) != ""

digest_note(img) := "" if verified_digest(img) == ""

violation contains {"msg": msg, "details": details} if {
	some c in checked
	p := problem(c.image)
	msg := sprintf("%s in container %q (%s) is not allowed: %s%s", [image_label(c), c.name, c.list, p.reason, digest_note(c.image)])
	details := {
		"container": c.name,
		"containerType": c.list,
		"image": c.image,
		"writtenAs": written_as(c),
		"digest": verified_digest(c.image),
		"ratifyKey": key_of(c.image),
		"reason": p.code,
		"provider": provider,
		"verifierName": verifier_name,
	}
}

violation contains {"msg": msg, "details": details} if {
	some c in containers
	not valid_image(c.image)
	msg := sprintf("container %q (%s) has no image reference that can be verified: %s", [c.name, c.list, short_json(c.image)])
	details := {
		"container": c.name,
		"containerType": c.list,
		"image": c.image,
		"reason": "invalid_image",
		"provider": provider,
		"verifierName": verifier_name,
	}
}
