package ratifyv1

import (
	"fmt"
	"time"

	"github.com/ratify-project/ratify/pkg/verifier"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Outcome is one plugin run, ready to become Ratify's result.
type Outcome struct {
	Name, Type string
	Report     verification.Report
	Duration   time.Duration
}

// VerifierResult renders the outcome as Ratify keeps it: isSuccess, name,
// type, a message a person can act on, and the report (the product's one
// result schema) as extensions for policies. The message is not repeated
// in the extensions.
func (o Outcome) VerifierResult() *verifier.VerifierResult {
	typ := o.Type
	if typ == "" {
		typ = o.Name
	}
	rep := o.Report
	rep.DurationMs = o.Duration.Milliseconds()
	r := &verifier.VerifierResult{Name: o.Name, Type: typ, IsSuccess: rep.Verdict == verification.VerdictVerified}
	sig := short(rep.SignatureDigest)
	switch rep.Verdict {
	case verification.VerdictVerified:
		r.Message = fmt.Sprintf("AWS Signer signature %s %s", sig, rep.Message)
	case verification.VerdictCouldNotCheck:
		r.Message = fmt.Sprintf("AWS Signer signature %s could not be checked, so it is not trusted: %s", sig, rep.Message)
	default:
		r.Message = fmt.Sprintf("AWS Signer signature %s refused: %s", sig, rep.Message)
	}
	rep.Message = ""
	r.Extensions = rep
	return r
}

func short(s string) string {
	if len(s) > 19 {
		return s[:19]
	}
	return s
}
