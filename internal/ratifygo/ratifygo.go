// Package ratifygo is the product's adapter to Ratify v2's library,
// github.com/notaryproject/ratify-go, and the only package importing it: a
// ratify.Verifier whose Verify runs the one verification pipeline
// (verification.Verifier.VerifyReferrer) through a small adapter from
// ratify-go's Store to signature.Fetcher; the Executor with its
// RegistryStore and a ThresholdPolicyEnforcer; and the rendering of a
// ValidationResult in Ratify v2's Gatekeeper value shape (value.go).
//
// It reads no signature itself: shape, limits, digests and subject are
// internal/signature's business, verification internal/verification's.
package ratifygo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	ratify "github.com/notaryproject/ratify-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryhttp"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// DefaultVerifierName is the verifierName of our results when the
// configuration names none; the policy's default verifierName.
const DefaultVerifierName = "awssigner"

// VerifierType is the verifier's type.
const VerifierType = "awssigner"

// Options build an Engine.
type Options struct {
	// Name is the verifier's name in results (DefaultVerifierName if empty).
	Name string
	// Verifier is the verification core (compose.Verifier).
	Verifier *verification.Verifier
	// Generation identifies the configuration the verifier was built from;
	// part of every outcome key, so a reload never reuses an old outcome.
	Generation uint64
	// TrustPolicy names the trust policy document Verifier was built from
	// ("" for trustPolicyDoc); part of every outcome key (see Named).
	TrustPolicy string
	// Outcomes keeps verification outcomes (nil: none) for OutcomeTTL.
	Outcomes   OutcomeCache
	OutcomeTTL time.Duration
	// RevocationTTL is revocation.cacheTTL: a verified outcome whose
	// revocation answer came from AWS Signer is reused only while that
	// answer would be, so an outcome never hides a revocation longer than
	// the revocation cache would (0: verified outcomes are not reused).
	RevocationTTL time.Duration
	// Registry access.
	PlainHTTP  bool
	Credential auth.CredentialFunc
	// HTTPClient overrides the registry HTTP client (tests).
	HTTPClient *http.Client
	UserAgent  string
	// Observe, when set, is given every report of a verification that ran
	// (not of outcomes reused from Outcomes): metrics.
	Observe func(verification.Report)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Engine validates images with ratify-go's Executor and our verifier.
type Engine struct {
	store    *ratify.RegistryStore
	resolved *resolvedDigests
	enforcer ratify.PolicyEnforcer
	verifier *Verifier
}

// New builds the Executor: a RegistryStore (oras-go) with the credential
// function, our verifier, and a threshold policy passing an image when at
// least one of its Notation signatures verifies.
func New(o Options) (*Engine, error) {
	if o.Verifier == nil {
		return nil, errors.New("ratifygo: no verifier")
	}
	if o.Name == "" {
		o.Name = DefaultVerifierName
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	client := o.HTTPClient
	if client == nil {
		client = registryClient()
	}
	storeOpts := ratify.RegistryStoreOptions{HTTPClient: client, PlainHTTP: o.PlainHTTP, UserAgent: o.UserAgent,
		MaxBlobBytes: signature.MaxEnvelopeSize, MaxManifestBytes: signature.MaxManifestSize}
	if o.Credential != nil {
		storeOpts.CredentialProvider = credentialGetter(o.Credential)
	}
	store := ratify.NewRegistryStore(storeOpts)
	v := &Verifier{name: o.Name, core: o.Verifier, gen: o.Generation, trustPolicy: o.TrustPolicy, outcomes: o.Outcomes, outcomeTTL: o.OutcomeTTL, revocationTTL: o.RevocationTTL, observe: o.Observe, now: o.Now}
	enforcer, err := ratify.NewThresholdPolicyEnforcer(&ratify.ThresholdPolicyRule{Threshold: 1, Rules: []*ratify.ThresholdPolicyRule{{Verifier: o.Name}}})
	if err != nil {
		return nil, fmt.Errorf("ratifygo: policy: %w", err)
	}
	if _, err := ratify.NewExecutor(store, []ratify.Verifier{v}, enforcer); err != nil {
		return nil, fmt.Errorf("ratifygo: executor: %w", err)
	}
	return &Engine{store: store, resolved: &resolvedDigests{m: map[string]ocispec.Descriptor{}}, enforcer: enforcer, verifier: v}, nil
}

// Named returns an engine for the verifier of another trust policy
// document of the same configuration (trustPolicyDocs.<name>): it shares
// e's registry store (connections, tokens), digest memory, outcome cache
// and settings; its outcome keys and merged verifications carry name, so
// an outcome under one trust policy never answers for another.
func (e *Engine) Named(name string, core *verification.Verifier) *Engine {
	o := e.verifier
	v := &Verifier{name: o.name, core: core, gen: o.gen, trustPolicy: name, outcomes: o.outcomes, outcomeTTL: o.outcomeTTL,
		revocationTTL: o.revocationTTL, observe: o.observe, now: o.now}
	return &Engine{store: e.store, resolved: e.resolved, enforcer: e.enforcer, verifier: v}
}

// registryClient is the HTTP client of registry requests: connections
// kept for the many admissions that reach one registry, oras-go's retry
// policy, bounded redirects (internal/registryhttp).
func registryClient() *http.Client {
	return registryhttp.New(registryhttp.Options{MaxIdleConnsPerHost: 64})
}

// Validate verifies the image ref names ("<registry>/<repository>:<tag>"
// or "@<digest>") and renders the result. The error is the Executor's:
// the image could not be resolved or its referrers listed, or the context
// ended.
func (e *Engine) Validate(ctx context.Context, ref string) (*Value, error) {
	// One Executor per validation, over a Store that knows this
	// validation's subject (store.go).
	exec := &ratify.Executor{Store: &subjectStore{RegistryStore: e.store, resolved: e.resolved}, Verifiers: []ratify.Verifier{e.verifier}, PolicyEnforcer: e.enforcer}
	res, err := exec.ValidateArtifact(ctx, ratify.ValidateArtifactOptions{Subject: ref, ReferenceTypes: []string{signature.ArtifactType}})
	if err != nil {
		return nil, &ValidateError{Ref: ref, Err: err}
	}
	return render(res), nil
}

// ValidateError is an image that could not be validated at all.
type ValidateError struct {
	Ref string
	Err error
}

func (e *ValidateError) Error() string {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return fmt.Sprintf("could not check %s within the request budget (registry or AWS Signer too slow)", e.Ref)
	}
	return fmt.Sprintf("could not check %s: %s; %s", e.Ref, signature.Describe(e.Err), signature.Hint(e.Err))
}

func (e *ValidateError) Unwrap() error { return e.Err }

// credentialGetter adapts oras-go's credential function to ratify-go.
type credentialGetter auth.CredentialFunc

func (f credentialGetter) Get(ctx context.Context, server string) (ratify.RegistryCredential, error) {
	return f(ctx, server)
}

// Digested returns "<repository>@<digest>" of the image the first report
// of v is about (the resolved subject), and whether there was one.
func (v *Value) Digested() (string, bool) {
	for _, r := range v.ArtifactReports {
		if i := strings.LastIndex(r.Subject, "@"); i > 0 {
			return r.Subject, true
		}
	}
	return "", false
}
