package verification

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Check names, in the order they run. CheckFetch and CheckPolicy name
// failures before notation's steps: reading the signature, and choosing
// the trust policy statement.
const (
	CheckFetch              = "fetch"
	CheckPolicy             = "policy"
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
	Level  string `json:"verificationLevel,omitempty"`
	Policy string `json:"trustPolicy,omitempty"`

	Checks []CheckResult `json:"checks,omitempty"`

	// SubjectDigest is the digest of the artifact verified (a tag resolved).
	SubjectDigest string `json:"subjectDigest,omitempty"`

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
	RevocationDuration time.Duration `json:"-"`
	// RevocationRegion is the AWS region asked.
	RevocationRegion string `json:"revocationRegion,omitempty"`

	// Warnings are failures the level only logs.
	Warnings []string `json:"warnings,omitempty"`
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

// Verdicts of one signature.
const (
	VerdictVerified      = "verified"
	VerdictRefused       = "refused"
	VerdictCouldNotCheck = "couldNotCheck"
)

// Report is the result schema, defined once: one signature's verdict and
// everything verification established. It is the command line's -o json
// entry per signature and the Ratify plugin's extensions (the README's
// "Result" section documents every key).
type Report struct {
	SignatureDigest string `json:"signatureDigest,omitempty"`
	// Verdict is verified, refused or couldNotCheck.
	Verdict string `json:"verdict"`
	// Reason, FailedCheck: on failure, the stable cause and the step.
	Reason      Reason `json:"reason,omitempty"`
	FailedCheck string `json:"failedCheck,omitempty"`
	// Message says what was checked, what was found and what to do.
	Message string `json:"message,omitempty"`
	// DurationMs is the time the whole verification took (plugin runs).
	DurationMs int64 `json:"durationMs,omitempty"`
	*Result
}

// NewReport turns what Verify or VerifyReferrer returned into a Report.
func NewReport(signature string, res *Result, err error) Report {
	if res == nil {
		res = &Result{RevocationStatus: RevocationNotChecked}
	}
	r := Report{SignatureDigest: signature, Result: res}
	if err == nil && res.Verified {
		r.Verdict, r.Message = VerdictVerified, res.summary()
		return r
	}
	var ve *Error
	if !errors.As(err, &ve) {
		msg := "signature not verified"
		if err != nil {
			msg = err.Error()
		}
		ve = unavailable(ReasonInput, CheckPolicy, msg, err)
	}
	r.Verdict, r.Reason, r.FailedCheck, r.Message = VerdictRefused, ve.Reason, ve.Check, ve.Msg
	if ve.Kind == KindUnavailable {
		r.Verdict = VerdictCouldNotCheck
	}
	return r
}

// summary describes a verified signature.
func (r *Result) summary() string {
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
