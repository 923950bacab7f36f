// Package verification verifies one AWS Signer Notation signature envelope
// against the artifact it claims to sign and a Notation trust policy, with
// notation-go and the in-process AWS Signer plugin, and reports every check
// and the facts admission policies need. It does not talk to registries and
// does not import Ratify.
package verification

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/notaryproject/notation-core-go/revocation"
	revocationresult "github.com/notaryproject/notation-core-go/revocation/result"
	"github.com/notaryproject/notation-go"
	nverifier "github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	nstore "github.com/notaryproject/notation-go/verifier/truststore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awsplugin"
	awsrevocation "github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
)

// MaxEnvelopeSize is the largest envelope accepted, as notation's limit for
// signature blobs.
const MaxEnvelopeSize = 32 << 20

// Options build a Verifier.
type Options struct {
	// Policy is the Notation trust policy document (version "1.0").
	Policy *trustpolicy.Document
	// TrustStore serves the policy's trust stores.
	TrustStore nstore.X509TrustStore
	// Revocation answers GetRevocationStatus questions.
	Revocation awsrevocation.Checker
	// PluginVersion is reported to notation (default awsplugin.DefaultVersion).
	PluginVersion string
}

// Verifier verifies AWS Signer signatures; safe for concurrent use.
type Verifier struct {
	policy *trustpolicy.Document
	nv     notation.Verifier
}

// New validates the policy and builds a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Policy == nil {
		return nil, errors.New("trust policy document is required")
	}
	if opts.TrustStore == nil {
		return nil, errors.New("trust store is required")
	}
	manager := awsplugin.Manager{Plugin: &awsplugin.Plugin{Version: opts.PluginVersion, Revocation: opts.Revocation}}
	nv, err := nverifier.NewWithOptions(opts.Policy, opts.TrustStore, manager, nverifier.VerifierOptions{
		RevocationCodeSigningValidator:  noOCSPCRL{},
		RevocationTimestampingValidator: noOCSPCRL{},
	})
	if err != nil {
		return nil, fmt.Errorf("trust policy: %w", err)
	}
	return &Verifier{policy: opts.Policy, nv: nv}, nil
}

// Input is one signature to verify.
type Input struct {
	// Envelope is the signature blob and MediaType its media type
	// (application/jose+json for AWS Signer).
	Envelope  []byte
	MediaType string
	// Subject is the descriptor of the signed manifest; the signature must
	// be for exactly this descriptor.
	Subject ocispec.Descriptor
	// Repository is "<registry>/<repository>", which selects the trust
	// policy statement by its registryScopes.
	Repository string
}

// Verify verifies one signature. The returned error is Result.Err: nil when
// verified, else an *Error that matches ErrRefused or ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, in Input) (*Result, error) {
	res := &Result{RevocationStatus: RevocationNotChecked}
	fail := func(e *Error) (*Result, error) {
		res.Err = e
		return res, e
	}
	if in.Repository == "" || strings.ContainsAny(in.Repository, "@") {
		return fail(unavailable(ReasonInput, "policy", fmt.Sprintf("repository %q must be <registry>/<repository> without tag or digest", in.Repository), nil))
	}
	if err := in.Subject.Digest.Validate(); err != nil {
		return fail(unavailable(ReasonInput, "policy", fmt.Sprintf("subject digest %q is invalid: %v", in.Subject.Digest, err), err))
	}
	if len(in.Envelope) > MaxEnvelopeSize {
		return fail(refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope is %d bytes, over the %d-byte limit", len(in.Envelope), MaxEnvelopeSize), nil))
	}
	ref := in.Repository + "@" + in.Subject.Digest.String()
	stmt, err := v.policy.GetApplicableTrustPolicy(ref)
	if err != nil {
		return fail(unavailable(ReasonNoPolicy, "policy", fmt.Sprintf("no trust policy statement applies to %s: %v; add its repository to a statement's registryScopes, or add a \"*\" statement", in.Repository, err), err))
	}
	level, err := stmt.SignatureVerification.GetVerificationLevel()
	if err != nil {
		return fail(unavailable(ReasonNoPolicy, "policy", fmt.Sprintf("trust policy %q: %v", stmt.Name, err), err))
	}
	res.Level, res.Policy = level.Name, stmt.Name

	rec := &awsplugin.Record{}
	pluginConfig := map[string]string{}
	if level.Enforcement[trustpolicy.TypeAuthenticity] == trustpolicy.ActionEnforce {
		pluginConfig[awsplugin.ConfigSkipRevocationOnUntrusted] = "true"
	}
	outcome, verr := v.nv.Verify(awsplugin.WithRecord(ctx, rec), in.Subject, in.Envelope, notation.VerifierVerifyOptions{
		ArtifactReference:  ref,
		SignatureMediaType: in.MediaType,
		PluginConfig:       pluginConfig,
	})
	if outcome == nil {
		// notation refused before reading the signature.
		return fail(unavailable(ReasonNoPolicy, "policy", fmt.Sprintf("verification could not start: %v", verr), verr))
	}
	revocationAction := level.Enforcement[trustpolicy.TypeRevocation]
	if level.Name == trustpolicy.LevelSkip.Name {
		res.Verified = true
		res.RevocationStatus = RevocationSkipped
		for _, name := range []string{CheckIntegrity, CheckAuthenticity, CheckTrustedIdentity, CheckExpiry, CheckAuthenticTimestamp, CheckRevocation} {
			res.Checks = append(res.Checks, CheckResult{Name: name, Action: string(trustpolicy.ActionSkip), Outcome: Skipped})
		}
		return res, nil
	}
	res.facts(outcome, rec, stmt)
	res.checks(outcome, rec, level, stmt)
	switch {
	case revocationAction == trustpolicy.ActionSkip:
		res.RevocationStatus = RevocationSkipped
	case rec.Revocation.Checked && rec.Revocation.Err != nil:
		res.RevocationStatus = RevocationUnavailable
	case rec.Revocation.Checked && rec.Revocation.Answer.IsRevoked():
		res.RevocationStatus = RevocationRevoked
	case rec.Revocation.Checked:
		res.RevocationStatus = RevocationNotRevoked
	}
	if rec.Revocation.Checked {
		res.RevokedEntities = rec.Revocation.Answer.Revoked
		res.RevocationCached = rec.Revocation.Answer.Cached
		res.RevocationDuration = rec.Revocation.Duration
		res.RevocationRegion = rec.Revocation.Answer.Region
	}

	if verr != nil {
		return fail(res.explain(verr, outcome, rec, stmt, in))
	}
	if !rec.Invoked {
		// notation passed it without the AWS plugin (possible where the
		// level only logs authenticity).
		problem := pluginAttributeProblem(outcome)
		if problem == "" {
			problem = "the AWS Signer plugin checks did not run"
		}
		return fail(refused(ReasonNotAWSSigner, CheckAuthenticity, "not an AWS Signer signature: "+problem+"; sign with AWS Signer (platform Notation-OCI-SHA384-ECDSA)", nil))
	}
	res.Verified = true
	return res, nil
}

// facts copies what the signature says into the result.
func (r *Result) facts(outcome *notation.VerificationOutcome, rec *awsplugin.Record, stmt *trustpolicy.TrustPolicy) {
	r.MatchedIdentity = rec.Identity.Matched
	if outcome.EnvelopeContent == nil {
		return
	}
	si := outcome.EnvelopeContent.SignerInfo
	r.SigningTime = si.SignedAttributes.SigningTime.UTC()
	r.Expiry = si.SignedAttributes.Expiry.UTC()
	r.SigningScheme = string(si.SignedAttributes.SigningScheme)
	if len(si.CertificateChain) > 0 {
		r.CertificateSubject = si.CertificateChain[0].Subject.String()
	}
	for _, a := range si.SignedAttributes.ExtendedAttributes {
		val, _ := a.Value.(string)
		switch a.Key {
		case awsplugin.AttrProfileVersion:
			r.SigningProfileVersionARN = val
		case awsplugin.AttrSigningJob:
			r.SigningJobARN = val
		}
	}
	if p, err := signerapi.ParseProfileARN(r.SigningProfileVersionARN); err == nil {
		r.SigningProfileARN = p.Unversioned()
	}
}

// checks lays out every step with its outcome.
func (r *Result) checks(outcome *notation.VerificationOutcome, rec *awsplugin.Record, level *trustpolicy.VerificationLevel, stmt *trustpolicy.TrustPolicy) {
	byType := map[trustpolicy.ValidationType]*notation.ValidationResult{}
	for _, vr := range outcome.VerificationResults {
		byType[vr.Type] = vr
	}
	out := func(name string, t trustpolicy.ValidationType, vr *notation.ValidationResult, detail string) {
		action := level.Enforcement[t]
		c := CheckResult{Name: name, Action: string(action)}
		switch {
		case action == trustpolicy.ActionSkip:
			c.Outcome = Skipped
		case vr == nil:
			c.Outcome = NotRun
		case vr.Error == nil:
			c.Outcome = Passed
		case action == trustpolicy.ActionEnforce:
			c.Outcome, c.Detail = Failed, vr.Error.Error()
		default:
			c.Outcome, c.Detail = Logged, vr.Error.Error()
			r.Warnings = append(r.Warnings, name+": "+vr.Error.Error())
		}
		if detail != "" && c.Detail == "" {
			c.Detail = detail
		}
		r.Checks = append(r.Checks, c)
	}
	out(CheckIntegrity, trustpolicy.TypeIntegrity, byType[trustpolicy.TypeIntegrity], "")

	// notation folds the plugin's identity verdict into "authenticity";
	// report the root check and the identity check apart.
	auth := byType[trustpolicy.TypeAuthenticity]
	identityFailed := rec.Identity.Checked && rec.Identity.Matched == ""
	rootResult := auth
	if auth != nil && identityFailed {
		rootResult = &notation.ValidationResult{Type: auth.Type, Action: auth.Action}
	}
	out(CheckAuthenticity, trustpolicy.TypeAuthenticity, rootResult, "")
	var idResult *notation.ValidationResult
	if rec.Identity.Checked {
		idResult = &notation.ValidationResult{Type: trustpolicy.TypeAuthenticity}
		if identityFailed {
			idResult.Error = fmt.Errorf("signing profile version %s matches none of the trusted identities %v", rec.ProfileVersionARN, awsplugin.SignerIdentities(stmt.TrustedIdentities))
		}
	}
	matched := ""
	if rec.Identity.Matched != "" {
		matched = "matched " + rec.Identity.Matched
	}
	out(CheckTrustedIdentity, trustpolicy.TypeAuthenticity, idResult, matched)
	out(CheckExpiry, trustpolicy.TypeExpiry, byType[trustpolicy.TypeExpiry], "")
	out(CheckAuthenticTimestamp, trustpolicy.TypeAuthenticTimestamp, byType[trustpolicy.TypeAuthenticTimestamp], "")
	revDetail := ""
	if rec.Revocation.Checked && rec.Revocation.Err == nil {
		revDetail = rec.Revocation.Answer.Reason()
	}
	out(CheckRevocation, trustpolicy.TypeRevocation, byType[trustpolicy.TypeRevocation], revDetail)
}

// explain turns notation's failure into an *Error a person can act on.
func (r *Result) explain(verr error, outcome *notation.VerificationOutcome, rec *awsplugin.Record, stmt *trustpolicy.TrustPolicy, in Input) *Error {
	failed := ""
	for _, c := range r.Checks {
		if c.Outcome == Failed {
			failed = c.Name
			break
		}
	}
	who := r.SigningProfileVersionARN
	if who == "" {
		who = "(unknown profile)"
	}
	if failed != CheckIntegrity && outcome.EnvelopeContent != nil {
		if problem := pluginAttributeProblem(outcome); problem != "" {
			return refused(ReasonNotAWSSigner, CheckAuthenticity, "not an AWS Signer signature: "+problem+"; sign with AWS Signer (platform Notation-OCI-SHA384-ECDSA)", verr)
		}
	}
	switch failed {
	case CheckIntegrity:
		return refused(ReasonIntegrity, failed, fmt.Sprintf("signature envelope failed the integrity check: %v; the envelope is malformed, tampered with, or not a Notation JWS signature", verr), verr)
	case CheckAuthenticity:
		return refused(ReasonUntrustedRoot, failed, fmt.Sprintf("certificate chain of the signature (%s) does not lead to a root in trust stores %v of trust policy %q: %v; AWS Signer signatures need signingAuthority:%s (or aws-us-gov-signer-ts in GovCloud)",
			chainRoot(outcome), stmt.TrustStores, stmt.Name, verr, "aws-signer-ts"), verr)
	case CheckTrustedIdentity:
		trusted := awsplugin.SignerIdentities(stmt.TrustedIdentities)
		return refused(ReasonUntrustedIdentity, failed, fmt.Sprintf("signing profile not trusted: the signature was made by %s (profile %s), but trust policy %q trusts only %s; to accept it, add %s to trustedIdentities",
			who, orUnknown(r.SigningProfileARN), stmt.Name, listOrNone(trusted), orUnknown(r.SigningProfileARN)), verr)
	case CheckExpiry:
		return refused(ReasonExpired, failed, fmt.Sprintf("signature expired at %s (signed %s by %s); re-sign the image", r.Expiry.Format(time.RFC3339), r.SigningTime.Format(time.RFC3339), who), verr)
	case CheckAuthenticTimestamp:
		return refused(ReasonSigningTime, failed, fmt.Sprintf("signing time %s is outside the validity of the signature's certificates: %v", r.SigningTime.Format(time.RFC3339), verr), verr)
	case CheckRevocation:
		if rec.Revocation.Err != nil {
			return unavailable(ReasonRevocationFailed, failed, fmt.Sprintf("could not check revocation of the signature by %s: %v; level %s enforces revocation, so the image is refused (level permissive only logs this; override revocation: skip turns the check off)",
				who, rec.Revocation.Err, r.Level), rec.Revocation.Err)
		}
		if rec.Revocation.Answer.IsRevoked() {
			return refused(ReasonRevoked, failed, fmt.Sprintf("signature revoked: AWS Signer reports %s as revoked (signature by %s in job %s, signed %s); revocation is permanent, sign the image again with an active profile",
				strings.Join(rec.Revocation.Answer.Revoked, ", "), who, orUnknown(r.SigningJobARN), r.SigningTime.Format(time.RFC3339)), verr)
		}
		return refused(ReasonRevoked, failed, fmt.Sprintf("revocation check failed: %v", verr), verr)
	}
	if rec.PluginError != nil {
		return refused(ReasonInvalidAttributes, CheckTrustedIdentity, fmt.Sprintf("the signature's AWS Signer attributes were rejected: %v", rec.PluginError), verr)
	}
	msg := verr.Error()
	switch {
	case strings.Contains(msg, "content descriptor mismatch"):
		return refused(ReasonSubjectMismatch, CheckIntegrity, fmt.Sprintf("signature does not sign this artifact: it is for another descriptor than %s %s (%d bytes)", in.Subject.MediaType, in.Subject.Digest, in.Subject.Size), verr)
	case strings.Contains(msg, "was not processed by the verification plugin"):
		return refused(ReasonUnprocessedCritical, CheckIntegrity, fmt.Sprintf("signature carries an attribute this verifier does not know, so it is refused: %v; only %s and %s are understood", verr, awsplugin.AttrProfileVersion, awsplugin.AttrSigningJob), verr)
	case strings.Contains(msg, "verificationPlugin"), strings.Contains(msg, "verification plugin"), errors.As(verr, new(notation.ErrorVerificationInconclusive)):
		return refused(ReasonNotAWSSigner, CheckAuthenticity, fmt.Sprintf("not an AWS Signer signature: %v", verr), verr)
	}
	return refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature refused: %v", verr), verr)
}

// pluginAttributeProblem says what is wrong with the envelope's
// io.cncf.notary.verificationPlugin attribute ("" if it names the AWS plugin
// as a critical attribute).
func pluginAttributeProblem(outcome *notation.VerificationOutcome) string {
	attr, err := outcome.EnvelopeContent.SignerInfo.ExtendedAttribute(nverifier.HeaderVerificationPlugin)
	switch {
	case err != nil:
		return "the envelope has no io.cncf.notary.verificationPlugin attribute"
	case !attr.Critical:
		return "io.cncf.notary.verificationPlugin is not marked critical"
	case attr.Value != awsplugin.Name:
		return fmt.Sprintf("io.cncf.notary.verificationPlugin is %v, not %s", attr.Value, awsplugin.Name)
	}
	return ""
}

func chainRoot(outcome *notation.VerificationOutcome) string {
	if outcome.EnvelopeContent == nil || len(outcome.EnvelopeContent.SignerInfo.CertificateChain) == 0 {
		return "no chain"
	}
	chain := outcome.EnvelopeContent.SignerInfo.CertificateChain
	return fmt.Sprintf("root %q", chain[len(chain)-1].Subject.String())
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no signing profile (the policy lists no signing-profile ARN)"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// noOCSPCRL stands in for notation's built-in OCSP/CRL revocation, which
// would fetch URLs found in the signature's certificates. AWS Signer
// signatures are checked through GetRevocationStatus by the plugin; notation
// only falls back to OCSP/CRL for signatures that do not name the plugin,
// and those are refused anyway.
type noOCSPCRL struct{}

func (noOCSPCRL) ValidateContext(context.Context, revocation.ValidateContextOptions) ([]*revocationresult.CertRevocationResult, error) {
	return nil, errors.New("OCSP/CRL revocation is not used: only AWS Signer signatures, checked through GetRevocationStatus, are accepted")
}
