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

exempt(img) if {
	some e in exempt_images
	endswith(e, "*")
	startswith(img, trim_suffix(e, "*"))
}

exempt(img) if {
	some e in exempt_images
	not endswith(e, "*")
	img == e
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
keys := sort({c.image | some c in checked})

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
	pair[0] == img
]

key_values(img) := [pair[1] |
	some pair in as_array(response.responses)
	is_array(pair)
	count(pair) > 1
	pair[0] == img
]

# ---------------------------------------------------------------- reports

# Config policy (version "0.2.0"): verifierReports are verifier results.
# Rego policy (version "1.1.0"): verifierReports are per-artifact reports
# whose own verifierReports are the verifier results. Told apart by shape.
reports(v) := array.concat(
	[r | some r in as_array(v.verifierReports); is_object(r); not is_array(object.get(r, "verifierReports", null))],
	[r | some n in as_array(v.verifierReports); is_object(n); some r in as_array(n.verifierReports); is_object(r)],
)

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

# ---------------------------------------------------------------- verdicts

# Why one Ratify answer does not admit the image; undefined when it does.
value_problem(v) := p if {
	not is_object(v)
	p := {
		"code": "malformed_response",
		"reason": sprintf("Ratify's answer for it is not an object: %s", [short_json(v)]),
	}
} else := p if {
	not is_boolean(object.get(v, "isSuccess", null))
	p := {
		"code": "malformed_response",
		"reason": sprintf("Ratify's answer for it has no boolean isSuccess: %s", [short_json(v)]),
	}
} else := p if {
	every r in reports(v) {
		not is_ours(r)
	}
	said := notes(reports(v))
	said != ""
	p := {
		"code": "no_verifier_report",
		"reason": sprintf("no report from the %q verifier; Ratify says: %s", [verifier_name, said]),
	}
} else := p if {
	count(ours(v)) == 0
	p := {
		"code": "no_verifier_report",
		"reason": sprintf("no report from the %q verifier (is Ratify's verifier named or typed %q?)", [verifier_name, verifier_name]),
	}
} else := p if {
	every r in ours(v) {
		not succeeded(r)
	}
	p := {
		"code": "verification_failed",
		"reason": sprintf("the %q verifier refused it: %s", [verifier_name, notes(ours(v))]),
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

# Why an image sent to Ratify is not admitted; undefined when it is.
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
	p := {
		"code": "provider_error",
		"reason": sprintf("Ratify returned an error for it: %s", [concat("; ", errs)]),
	}
} else := p if {
	count(key_values(img)) == 0
	p := {
		"code": "no_response",
		"reason": "Ratify's answer has no entry for it",
	}
} else := p if {
	problems := [q | some v in key_values(img); q := value_problem(v)]
	count(problems) > 0
	p := problems[0]
}

# ---------------------------------------------------------------- violations

violation contains {"msg": msg, "details": details} if {
	some c in checked
	p := problem(c.image)
	msg := sprintf("image %q in container %q (%s) is not allowed: %s", [c.image, c.name, c.list, p.reason])
	details := {
		"container": c.name,
		"containerType": c.list,
		"image": c.image,
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
