// Package verification verifies one AWS Signer Notation signature envelope
// against the artifact it claims to sign and a Notation trust policy, with
// notation-go and the in-process AWS Signer plugin, and reports every check
// and the facts admission policies need. It does not talk to registries and
// does not import Ratify.
package verification

import (
	"context"
	"encoding/json"
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
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	awsrevocation "github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

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
	// ClockSkew is how far in the future a signing time may be (the
	// signer's clock ahead of ours); a later one is refused where the level
	// enforces the authentic timestamp. Zero allows none.
	ClockSkew time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Verifier verifies AWS Signer signatures; safe for concurrent use.
type Verifier struct {
	policy *trustpolicy.Document
	nv     notation.Verifier
	skew   time.Duration
	now    func() time.Time
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
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{policy: opts.Policy, nv: nv, skew: max(opts.ClockSkew, 0), now: now}, nil
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

// Subject is the artifact whose signatures are verified.
type Subject struct {
	// Repository is "<registry>/<repository>".
	Repository string
	// Descriptor is the signed manifest's descriptor (tag resolved).
	Descriptor ocispec.Descriptor
}

// VerifyReferrer reads the signature referrer sig of subject from store
// (internal/signature: shape, limits, digests, subject) and verifies it.
// This is the one path from "here is a referrer" to the verdict.
func (v *Verifier) VerifyReferrer(ctx context.Context, store signature.Fetcher, subject Subject, sig ocispec.Descriptor) (*Result, error) {
	s, err := signature.Read(ctx, store, sig, subject.Descriptor.Digest)
	if err != nil {
		return &Result{RevocationStatus: RevocationNotChecked, SubjectDigest: subject.Descriptor.Digest.String()}, readError(err)
	}
	return v.Verify(ctx, Input{Envelope: s.Envelope, MediaType: s.EnvelopeDescriptor.MediaType, Subject: subject.Descriptor, Repository: subject.Repository})
}

// readError classifies a signature.Read failure.
func readError(err error) *Error {
	switch {
	case errors.Is(err, signature.ErrUnavailable) && signature.AuthFailed(err):
		return unavailable(ReasonRegistryAuth, CheckFetch, err.Error(), err)
	case errors.Is(err, signature.ErrUnavailable):
		return unavailable(ReasonRegistry, CheckFetch, err.Error(), err)
	case errors.Is(err, signature.ErrSubjectMismatch):
		return refused(ReasonSubjectMismatch, CheckFetch, err.Error(), err)
	case errors.Is(err, signature.ErrTooLarge), errors.Is(err, signature.ErrDigestMismatch):
		return refused(ReasonIntegrity, CheckFetch, err.Error(), err)
	}
	return refused(ReasonNotAWSSigner, CheckFetch, err.Error(), err)
}

// Verify verifies one signature envelope. The Result is always set (with
// what could be established); the error is nil when verified, else an
// *Error that matches ErrRefused or ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, in Input) (*Result, error) {
	res := &Result{RevocationStatus: RevocationNotChecked, SubjectDigest: in.Subject.Digest.String()}
	fail := func(e *Error) (*Result, error) {
		return res, e
	}
	if in.Repository == "" || strings.ContainsAny(in.Repository, "@") {
		return fail(unavailable(ReasonInput, CheckPolicy, fmt.Sprintf("repository %q must be <registry>/<repository> without tag or digest", in.Repository), nil))
	}
	if err := in.Subject.Digest.Validate(); err != nil {
		return fail(unavailable(ReasonInput, CheckPolicy, fmt.Sprintf("subject digest %q is invalid: %v", in.Subject.Digest, err), err))
	}
	if len(in.Envelope) > signature.MaxEnvelopeSize {
		return fail(refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope is %d bytes, over the %d-byte limit", len(in.Envelope), signature.MaxEnvelopeSize), nil))
	}
	ref := in.Repository + "@" + in.Subject.Digest.String()
	stmt, err := v.policy.GetApplicableTrustPolicy(ref)
	if err != nil {
		return fail(unavailable(ReasonNoPolicy, CheckPolicy, fmt.Sprintf("no trust policy statement applies to %s: %v; add its repository to a statement's registryScopes, or add a \"*\" statement", in.Repository, err), err))
	}
	level, err := stmt.SignatureVerification.GetVerificationLevel()
	if err != nil {
		return fail(unavailable(ReasonNoPolicy, CheckPolicy, fmt.Sprintf("trust policy %q: %v", stmt.Name, err), err))
	}
	res.Level, res.Policy = level.Name, stmt.Name
	var future string
	if level.Name != trustpolicy.LevelSkip.Name {
		facts, serr := strictEnvelope(in.Envelope, in.MediaType)
		if serr != nil {
			return fail(serr)
		}
		if now := v.now(); facts.signingTime.After(now.Add(v.skew)) {
			future = fmt.Sprintf("signing time %s is %s in the future, more than the allowed clock skew of %s; the signer's clock is wrong or the envelope was not made by AWS Signer",
				facts.signingTime.Format(time.RFC3339), facts.signingTime.Sub(now).Round(time.Second), v.skew)
			if level.Enforcement[trustpolicy.TypeAuthenticTimestamp] == trustpolicy.ActionEnforce {
				return fail(refused(ReasonSigningTime, CheckAuthenticTimestamp, future, nil))
			}
		}
	}

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
		return fail(unavailable(ReasonNoPolicy, CheckPolicy, fmt.Sprintf("verification could not start: %v", verr), verr))
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
	if future != "" {
		res.Warnings = append(res.Warnings, CheckAuthenticTimestamp+": "+future)
	}
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
	si := &outcome.EnvelopeContent.SignerInfo
	f := awssigner.FactsOf(si)
	r.SigningTime, r.Expiry, r.SigningScheme = f.SigningTime, f.Expiry, f.SigningScheme
	r.SigningProfileVersionARN, r.SigningJobARN, r.SigningProfileARN = f.SigningProfileVersionARN, f.SigningJobARN, f.SigningProfileARN
	if len(si.CertificateChain) > 0 {
		r.CertificateSubject = si.CertificateChain[0].Subject.String()
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
			idResult.Error = fmt.Errorf("signing profile version %s matches none of the trusted identities %v", rec.ProfileVersionARN, awssigner.SignerIdentities(stmt.TrustedIdentities))
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
		trusted := awssigner.SignerIdentities(stmt.TrustedIdentities)
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
	// notation-go reports these two as untyped errors; tell them apart by
	// what the envelope says, not by notation's wording.
	if outcome.EnvelopeContent != nil {
		if target, ok := signedTarget(outcome); ok && !sameDescriptor(target, in.Subject) {
			return refused(ReasonSubjectMismatch, CheckIntegrity, fmt.Sprintf("signature does not sign this artifact: it signs %s %s (%d bytes), not %s %s (%d bytes)",
				target.MediaType, target.Digest, target.Size, in.Subject.MediaType, in.Subject.Digest, in.Subject.Size), verr)
		}
		if keys := unknownCriticalAttributes(outcome); len(keys) > 0 {
			return refused(ReasonUnprocessedCritical, CheckIntegrity, fmt.Sprintf("signature carries critical attributes this verifier does not know (%s), so it is refused; only %s and %s are understood",
				strings.Join(keys, ", "), awssigner.AttrProfileVersion, awssigner.AttrSigningJob), verr)
		}
	}
	var inconclusive notation.ErrorVerificationInconclusive
	if errors.As(verr, &inconclusive) {
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
	case attr.Value != awssigner.PluginName:
		return fmt.Sprintf("io.cncf.notary.verificationPlugin is %v, not %s", attr.Value, awssigner.PluginName)
	}
	return ""
}

// signedTarget is the descriptor the signature's payload names.
func signedTarget(outcome *notation.VerificationOutcome) (ocispec.Descriptor, bool) {
	var p struct {
		TargetArtifact *ocispec.Descriptor `json:"targetArtifact"`
	}
	if json.Unmarshal(outcome.EnvelopeContent.Payload.Content, &p) != nil || p.TargetArtifact == nil {
		return ocispec.Descriptor{}, false
	}
	return *p.TargetArtifact, true
}

// sameDescriptor compares as notation does: media type, digest and size.
func sameDescriptor(a, b ocispec.Descriptor) bool {
	return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size
}

// unknownCriticalAttributes lists the critical extended attributes that
// neither notation nor the AWS Signer plugin processes.
func unknownCriticalAttributes(outcome *notation.VerificationOutcome) []string {
	var keys []string
	for _, a := range outcome.EnvelopeContent.SignerInfo.SignedAttributes.ExtendedAttributes {
		switch a.Key {
		case awssigner.AttrProfileVersion, awssigner.AttrSigningJob, nverifier.HeaderVerificationPlugin, nverifier.HeaderVerificationPluginMinVersion:
			continue
		}
		if a.Critical {
			keys = append(keys, fmt.Sprint(a.Key))
		}
	}
	return keys
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
