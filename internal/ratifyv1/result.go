package ratifyv1

import (
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/ratify-project/ratify/pkg/verifier"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Outcome is one plugin run, ready to become Ratify's result.
type Outcome struct {
	Name, Type string
	Signature  digest.Digest
	Result     *verification.Result
	Err        error
	Duration   time.Duration
}

// Extension keys the policies read; see the README's result reference.
const (
	ExtSigningProfileARN        = "signingProfileArn"
	ExtSigningProfileVersionARN = "signingProfileVersionArn"
	ExtSigningJobARN            = "signingJobArn"
	ExtSigningTime              = "signingTime"
	ExtExpiry                   = "expiry"
	ExtVerificationLevel        = "verificationLevel"
	ExtRevocationStatus         = "revocationStatus"
)

// VerifierResult renders the outcome as Ratify keeps it: isSuccess, name,
// type, a message a person can act on, and extensions for policies.
func (o *Outcome) VerifierResult() *verifier.VerifierResult {
	typ := o.Type
	if typ == "" {
		typ = o.Name
	}
	ext := map[string]any{
		"signatureDigest": o.Signature.String(),
		"durationMs":      o.Duration.Milliseconds(),
	}
	r := &verifier.VerifierResult{Name: o.Name, Type: typ, Extensions: ext}
	res := o.Result
	if res != nil {
		ext[ExtVerificationLevel] = res.Level
		ext[ExtRevocationStatus] = res.RevocationStatus
		ext["trustPolicy"] = res.Policy
		ext["checks"] = res.Checks
		put := func(k, v string) {
			if v != "" {
				ext[k] = v
			}
		}
		put(ExtSigningProfileARN, res.SigningProfileARN)
		put(ExtSigningProfileVersionARN, res.SigningProfileVersionARN)
		put(ExtSigningJobARN, res.SigningJobARN)
		put("matchedIdentity", res.MatchedIdentity)
		put("revocationRegion", res.RevocationRegion)
		if !res.SigningTime.IsZero() {
			ext[ExtSigningTime] = res.SigningTime.UTC().Format(time.RFC3339)
		}
		if !res.Expiry.IsZero() {
			ext[ExtExpiry] = res.Expiry.UTC().Format(time.RFC3339)
		}
		if len(res.RevokedEntities) > 0 {
			ext["revokedEntities"] = res.RevokedEntities
		}
		if res.RevocationCached {
			ext["revocationCached"] = true
		}
		if len(res.Warnings) > 0 {
			ext["warnings"] = res.Warnings
		}
	} else {
		ext[ExtRevocationStatus] = verification.RevocationNotChecked
	}
	if o.Err == nil && res != nil && res.Verified {
		r.IsSuccess = true
		r.Message = "AWS Signer signature " + short(o.Signature) + " " + res.Message()
		return r
	}
	var ve *verification.Error
	if errors.As(o.Err, &ve) {
		ext["reason"] = string(ve.Reason)
		ext["failedCheck"] = ve.Check
		if ve.Kind == verification.KindUnavailable {
			ext["outcome"] = "couldNotCheck"
			r.Message = fmt.Sprintf("AWS Signer signature %s could not be checked, so it is not trusted: %s", short(o.Signature), ve.Msg)
			return r
		}
		ext["outcome"] = "refused"
		r.Message = fmt.Sprintf("AWS Signer signature %s refused: %s", short(o.Signature), ve.Msg)
		return r
	}
	ext["outcome"] = "couldNotCheck"
	r.Message = fmt.Sprintf("AWS Signer signature %s could not be checked: %v", short(o.Signature), o.Err)
	return r
}

func short(d digest.Digest) string {
	s := d.String()
	if len(s) > 19 {
		return s[:19]
	}
	return s
}
