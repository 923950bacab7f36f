package ratifygo

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"time"

	ratify "github.com/notaryproject/ratify-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// OutcomeKey is everything a verification outcome depends on: the
// configuration generation (trust policy, stores, levels), the trust
// policy document's name ("" for trustPolicyDoc, else a trustPolicyDocs
// key), the repository (which selects the trust policy statement), the
// subject digest and the signature manifest digest (which pins the
// envelope by content).
type OutcomeKey struct {
	Generation  uint64
	TrustPolicy string
	Repository  string
	Subject     digest.Digest
	Signature   digest.Digest
}

func (k OutcomeKey) String() string {
	return strconv.FormatUint(k.Generation, 10) + " " + k.TrustPolicy + " " + k.Repository + "@" + k.Subject.String() + " " + k.Signature.String()
}

// OutcomeCache keeps verification outcomes; safe for concurrent use. Get
// reports a miss for an expired entry.
type OutcomeCache interface {
	Get(OutcomeKey) (verification.Report, bool)
	Put(OutcomeKey, verification.Report, time.Duration)
}

// Verifier is a ratify.Verifier running the verification pipeline.
type Verifier struct {
	name          string
	core          *verification.Verifier
	gen           uint64
	trustPolicy   string
	outcomes      OutcomeCache
	outcomeTTL    time.Duration
	revocationTTL time.Duration
	observe       func(verification.Report)
	now           func() time.Time
	// flight merges concurrent verifications of one signature (the same
	// image asked as a tag and as a digest, or by several requests).
	flight singleflight.Group
}

var _ ratify.Verifier = (*Verifier)(nil)

// Name implements ratify.Verifier.
func (v *Verifier) Name() string { return v.name }

// Type implements ratify.Verifier.
func (v *Verifier) Type() string { return VerifierType }

// Verifiable implements ratify.Verifier: Notation signatures.
func (v *Verifier) Verifiable(artifact ocispec.Descriptor) bool {
	return artifact.ArtifactType == signature.ArtifactType
}

// Verify implements ratify.Verifier. A signature that is refused or could
// not be checked is a result with Err set, never a Go error (which would
// abort the whole validation).
func (v *Verifier) Verify(ctx context.Context, o *ratify.VerifyOptions) (*ratify.VerificationResult, error) {
	key := OutcomeKey{Generation: v.gen, TrustPolicy: v.trustPolicy, Repository: o.Repository, Subject: o.SubjectDescriptor.Digest, Signature: o.ArtifactDescriptor.Digest}
	if v.outcomes != nil && v.outcomeTTL > 0 {
		if r, ok := v.outcomes.Get(key); ok {
			return v.result(r), nil
		}
	}
	ch := v.flight.DoChan(key.String(), func() (any, error) {
		// Shared by every caller: the first one's deadline, not its
		// cancellation.
		cctx := context.WithoutCancel(ctx)
		d, ok := ctx.Deadline()
		if ok {
			var cancel context.CancelFunc
			cctx, cancel = context.WithDeadline(cctx, d)
			defer cancel()
		}
		return flight{report: v.verify(cctx, key, o), deadline: d}, nil
	})
	select {
	case res := <-ch:
		f := res.Val.(flight)
		if res.Shared && f.report.Verdict == verification.VerdictCouldNotCheck && ranOut(f.deadline, v.now()) && ctx.Err() == nil {
			// The merged verification ran out of its first caller's
			// earlier deadline; this caller still has time, so it checks
			// for itself. (A Signer that fails fast is not asked again.)
			f.report = v.verify(ctx, key, o)
		}
		return v.result(f.report), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// RanOutMargin: a merged call that ended this close to its deadline (or
// after it) ran out of time rather than failing on its own; the SDK gives
// up a little early when no retry fits in what is left.
const RanOutMargin = 250 * time.Millisecond

// ranOut tells whether a call with deadline d that ended at now ran out
// of time.
func ranOut(d, now time.Time) bool {
	return !d.IsZero() && now.After(d.Add(-RanOutMargin))
}

// RanOut is ranOut for the provider's merged validations.
func RanOut(d, now time.Time) bool { return ranOut(d, now) }

// flight is a merged verification's outcome and the deadline it ran to.
type flight struct {
	report   verification.Report
	deadline time.Time
}

// verify runs the pipeline once and keeps the outcome.
func (v *Verifier) verify(ctx context.Context, key OutcomeKey, o *ratify.VerifyOptions) verification.Report {
	start := v.now()
	res, err := v.core.VerifyReferrer(ctx, fetcher{store: o.Store, repo: o.Repository},
		verification.Subject{Repository: o.Repository, Descriptor: o.SubjectDescriptor}, o.ArtifactDescriptor)
	r := verification.NewReport(o.ArtifactDescriptor.Digest.String(), res, err)
	r.DurationMs = v.now().Sub(start).Milliseconds()
	if v.observe != nil {
		v.observe(r)
	}
	if ttl := v.keep(r, start); ttl > 0 && v.outcomes != nil {
		v.outcomes.Put(key, r, ttl)
	}
	return r
}

// keep is how long an outcome may be reused: never when it could not be
// checked (a transient failure) or when its revocation answer's age is
// unknown (it came from the revocation cache); a verified outcome no
// longer than its revocation answer and the signature's expiry.
func (v *Verifier) keep(r verification.Report, start time.Time) time.Duration {
	if r.Verdict == verification.VerdictCouldNotCheck || r.Result == nil {
		return 0
	}
	ttl := v.outcomeTTL
	if r.Verdict != verification.VerdictVerified {
		return ttl
	}
	switch r.RevocationStatus {
	case verification.RevocationNotRevoked:
		if r.RevocationCached {
			return 0
		}
		ttl = min(ttl, v.revocationTTL-v.now().Sub(start))
	case verification.RevocationUnavailable, verification.RevocationNotChecked:
		// Verified although AWS did not answer (a level that only logs
		// it): ask again next time.
		return 0
	}
	if !r.Expiry.IsZero() {
		ttl = min(ttl, r.Expiry.Sub(v.now()))
	}
	return ttl
}

// result is the ratify-go result of a report; Detail is the report
// itself (verification.Report, the product's one result schema).
func (v *Verifier) result(r verification.Report) *ratify.VerificationResult {
	out := &ratify.VerificationResult{Verifier: v, Description: r.Message, Detail: r}
	if r.Verdict != verification.VerdictVerified {
		out.Err = &SignatureError{Report: r}
	}
	return out
}

// SignatureError is a signature that was refused or could not be checked.
type SignatureError struct {
	Report verification.Report
}

func (e *SignatureError) Error() string { return e.Report.Message }

// fetcher adapts ratify-go's Store (whole bodies by repository) to
// signature.Fetcher, which checks sizes and digests of what it reads.
type fetcher struct {
	store ratify.Store
	repo  string
}

func (f fetcher) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	var b []byte
	var err error
	if isManifest(d.MediaType) {
		b, err = f.store.FetchManifest(ctx, f.repo, d)
	} else {
		b, err = f.store.FetchBlob(ctx, f.repo, d)
	}
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func isManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}
