package verification

import (
	"fmt"
	"strings"
	"time"
)

// Check names, in the order they run.
const (
	CheckIntegrity          = "integrity"
	CheckAuthenticity       = "authenticity"
	CheckTrustedIdentity    = "trustedIdentity"
	CheckExpiry             = "expiry"
	CheckAuthenticTimestamp = "authenticTimestamp"
	CheckRevocation         = "revocation"
)

// Outcome of one check.
type Outcome string

// Check outcomes.
const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"  // failed and enforced
	Logged  Outcome = "logged"  // failed, but the level only logs it
	Skipped Outcome = "skipped" // the level or an override skips it
	NotRun  Outcome = "notRun"  // an earlier enforced failure stopped verification
)

// Revocation statuses.
const (
	RevocationNotRevoked  = "notRevoked"
	RevocationRevoked     = "revoked"
	RevocationSkipped     = "skipped"
	RevocationUnavailable = "unavailable"
	RevocationNotChecked  = "notChecked"
)

// CheckResult is one step of verification.
type CheckResult struct {
	Name    string  `json:"name"`
	Action  string  `json:"action"` // enforce, log or skip, from the level
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
}

// Result is everything one verification established.
type Result struct {
	Verified bool `json:"verified"`
	// Level applied (strict, permissive, audit, skip) and the trust policy
	// statement that chose it.
	Level  string `json:"level"`
	Policy string `json:"policy,omitempty"`

	Checks []CheckResult `json:"checks"`

	// Facts read from the signature (empty when it could not be parsed).
	SigningProfileARN        string    `json:"signingProfileArn,omitempty"`
	SigningProfileVersionARN string    `json:"signingProfileVersionArn,omitempty"`
	SigningJobARN            string    `json:"signingJobArn,omitempty"`
	SigningTime              time.Time `json:"signingTime,omitzero"`
	Expiry                   time.Time `json:"expiry,omitzero"`
	SigningScheme            string    `json:"signingScheme,omitempty"`
	CertificateSubject       string    `json:"certificateSubject,omitempty"`

	// MatchedIdentity is the trusted identity that matched.
	MatchedIdentity string `json:"matchedIdentity,omitempty"`
	// RevocationStatus is notRevoked, revoked, skipped, unavailable or
	// notChecked; RevokedEntities what AWS echoed.
	RevocationStatus   string        `json:"revocationStatus"`
	RevokedEntities    []string      `json:"revokedEntities,omitempty"`
	RevocationCached   bool          `json:"revocationCached,omitempty"`
	RevocationDuration time.Duration `json:"revocationDuration,omitempty"`
	// RevocationRegion is the AWS region asked.
	RevocationRegion string `json:"revocationRegion,omitempty"`

	// Warnings are failures the level only logs.
	Warnings []string `json:"warnings,omitempty"`

	// Err is nil when Verified, else an *Error.
	Err error `json:"-"`
}

// Check returns the named check's result.
func (r *Result) Check(name string) (CheckResult, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return CheckResult{}, false
}

// Message is one paragraph a person can act on.
func (r *Result) Message() string {
	if !r.Verified {
		if r.Err == nil {
			return "signature not verified"
		}
		return r.Err.Error()
	}
	if r.Level == "skip" {
		return fmt.Sprintf("verification skipped: trust policy %q has level skip", r.Policy)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "verified (level %s, policy %q): signed by AWS Signer profile %s", r.Level, r.Policy, r.SigningProfileVersionARN)
	if r.SigningJobARN != "" {
		fmt.Fprintf(&b, " in job %s", r.SigningJobARN)
	}
	if !r.SigningTime.IsZero() {
		fmt.Fprintf(&b, " at %s", r.SigningTime.UTC().Format(time.RFC3339))
	}
	if r.MatchedIdentity != "" {
		fmt.Fprintf(&b, "; trusted identity %s", r.MatchedIdentity)
	}
	fmt.Fprintf(&b, "; revocation: %s", r.RevocationStatus)
	if r.RevocationCached {
		b.WriteString(" (cached)")
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(&b, "; warnings (logged, not enforced at level %s): %s", r.Level, strings.Join(r.Warnings, "; "))
	}
	return b.String()
}
