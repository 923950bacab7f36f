package verification

import "errors"

// Sentinels for errors.Is: every *Error matches exactly one of them.
var (
	// ErrRefused: the signature is invalid, untrusted, expired or revoked.
	ErrRefused = errors.New("signature refused")
	// ErrUnavailable: the signature could not be checked (AWS, registry or
	// configuration problem); retrying or fixing the setup may help.
	ErrUnavailable = errors.New("could not check signature")
)

// Kind separates "the signature is bad" from "we could not tell".
type Kind int

// The two kinds of failure.
const (
	KindRefused Kind = iota + 1
	KindUnavailable
)

// Reason is a stable, machine-readable cause of a failure.
type Reason string

// Reasons a verification fails.
const (
	ReasonIntegrity           Reason = "integrity"            // envelope malformed or signature does not verify
	ReasonSubjectMismatch     Reason = "subjectMismatch"      // signed for another artifact
	ReasonUntrustedRoot       Reason = "untrustedRoot"        // chain does not end in a trusted root
	ReasonUntrustedIdentity   Reason = "untrustedIdentity"    // signing profile not in trustedIdentities
	ReasonExpired             Reason = "expired"              // io.cncf.notary.expiry passed
	ReasonSigningTime         Reason = "signingTime"          // signing time outside certificate validity
	ReasonRevoked             Reason = "revoked"              // AWS Signer reports revoked entities
	ReasonNotAWSSigner        Reason = "notAWSSigner"         // the envelope is not an AWS Signer signature
	ReasonInvalidAttributes   Reason = "invalidAttributes"    // AWS attributes or scheme rejected
	ReasonUnprocessedCritical Reason = "unprocessedAttribute" // an attribute this verifier does not know
	ReasonRevocationFailed    Reason = "revocationUnavailable"
	ReasonNoPolicy            Reason = "noApplicablePolicy"
	ReasonInput               Reason = "badInput"
	ReasonRegistry            Reason = "registryUnavailable"  // the signature or image could not be read
	ReasonRegistryAuth        Reason = "registryAuthFailed"   // the registry refused the credentials
	ReasonAlgorithm           Reason = "unsupportedAlgorithm" // not ES384 over a P-384 key, as AWS Signer signs
)

// Error is a failed verification: what was checked, what was found, and
// (in Msg) what to do.
type Error struct {
	Kind   Kind
	Reason Reason
	// Check is the verification step that failed (fetch, policy,
	// integrity, authenticity, trustedIdentity, expiry, authenticTimestamp,
	// revocation).
	Check string
	Msg   string
	Err   error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrRefused or ErrUnavailable according to Kind.
func (e *Error) Is(target error) bool {
	return (target == ErrRefused && e.Kind == KindRefused) || (target == ErrUnavailable && e.Kind == KindUnavailable)
}

func refused(reason Reason, check, msg string, cause error) *Error {
	return &Error{Kind: KindRefused, Reason: reason, Check: check, Msg: msg, Err: cause}
}

func unavailable(reason Reason, check, msg string, cause error) *Error {
	return &Error{Kind: KindUnavailable, Reason: reason, Check: check, Msg: msg, Err: cause}
}
