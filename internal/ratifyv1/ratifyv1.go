// Package ratifyv1 adapts the verification core to Ratify v1's external
// verifier contract: it decodes the configuration Ratify passes on stdin,
// reads the signature through Ratify's referrer store, verifies it with
// internal/verification under a deadline that ends before Ratify's, and
// returns the result Ratify keeps (isSuccess, name, type, message,
// extensions). It is the only package besides main that imports Ratify.
package ratifyv1

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ratify-project/ratify/pkg/common"
	"github.com/ratify-project/ratify/pkg/ocispecs"
	"github.com/ratify-project/ratify/pkg/referrerstore"
	"github.com/ratify-project/ratify/pkg/verifier"
	"github.com/ratify-project/ratify/pkg/verifier/plugin/skel"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Contract constants.
const (
	// SupportedVersion is the only RATIFY_VERIFIER_VERSION accepted.
	SupportedVersion = "1.0.0"
	// ArtifactType of Notation signatures, the referrers this verifier takes.
	ArtifactType = "application/vnd.cncf.notary.signature"
	// MaxBlobSize bounds the envelope blob (notation's limit).
	MaxBlobSize = 32 << 20
	// EnvCommand is set by Ratify when it runs a plugin.
	EnvCommand = "RATIFY_VERIFIER_COMMAND"
)

// Deadline is how long one plugin run may take at the least; it grows with
// revocation.timeout (timeout + DeadlineMargin). With the defaults (2 s
// revocation budget) the plugin answers within 2.5 s of main, before
// Ratify's default 2.9 s request deadline.
const (
	Deadline       = 2500 * time.Millisecond
	DeadlineMargin = 500 * time.Millisecond
)

// Main runs the plugin under Ratify's skel; it does not return.
func Main(version string, started time.Time) {
	p := &Plugin{Version: version, Started: started, Log: NewLogger(os.Stderr)}
	cleanup := isolateStoreCache(p.Log)
	skel.PluginMain("awssigner", SupportedVersion, p.VerifyReference, []string{SupportedVersion})
	cleanup()
}

// Plugin is one plugin process.
type Plugin struct {
	// Version is reported to notation and in the User-Agent.
	Version string
	// Started is when the process began; the deadline counts from it.
	Started time.Time
	Log     *Logger
	// Now replaces time.Now in tests.
	Now func() time.Time
}

type stdin struct {
	Config json.RawMessage `json:"config"`
}

// VerifyReference is skel's callback for one signature referrer. A bad
// configuration is an error (Ratify shows it with code 8); everything about
// the signature, registry and AWS is a result.
func (p *Plugin) VerifyReference(args *skel.CmdArgs, subject common.Reference, ref ocispecs.ReferenceDescriptor, store referrerstore.ReferrerStore) (*verifier.VerifierResult, error) {
	defer quiet()()
	t0 := p.now()
	var in stdin
	if err := json.Unmarshal(args.StdinData, &in); err != nil {
		return nil, fmt.Errorf("stdin is not the JSON document Ratify sends: %w", err)
	}
	cfg, err := config.DecodeJSON(in.Config)
	if err != nil {
		return nil, fmt.Errorf("invalid awssigner verifier configuration: %w", err)
	}
	v, err := config.New(cfg, config.BuildOptions{Cache: p.cache(cfg), Version: p.Version})
	if err != nil {
		return nil, fmt.Errorf("invalid awssigner verifier configuration: %w", err)
	}
	tBuilt := p.now()
	budget := Deadline
	if t := time.Duration(*cfg.Revocation.Timeout) + DeadlineMargin; t > budget {
		budget = t
	}
	started := p.Started
	if started.IsZero() {
		started = p.now()
	}
	ctx, cancel := context.WithDeadline(context.Background(), started.Add(budget))
	defer cancel()

	out := &Outcome{Name: cfg.Name, Type: cfg.Type, Signature: ref.Digest}
	res, err := p.verify(ctx, v, subject, ref, store)
	out.Result, out.Err = res, err
	end := p.now()
	out.Duration = end.Sub(started)
	r := out.VerifierResult()
	p.Log.Info("verified %s signature %s: success=%t in %s", subject.Path, ref.Digest, r.IsSuccess, out.Duration.Round(time.Millisecond))
	p.Log.Debug("timings: start to callback %s, configuration %s, fetch and verify %s", t0.Sub(started), tBuilt.Sub(t0), end.Sub(tBuilt))
	return r, nil
}

func (p *Plugin) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// cache opens the on-disk revocation cache shared by plugin processes, or
// returns nil (no cache) with one warning when it cannot.
func (p *Plugin) cache(cfg *config.Config) revocation.Cache {
	if time.Duration(*cfg.Revocation.CacheTTL) <= 0 {
		return nil
	}
	dir, why := cfg.Revocation.CacheDir, "revocation.cacheDir"
	if dir == "" {
		dir, why = revocation.DefaultCacheDir()
	}
	c, err := revocation.OpenDiskCache(dir, revocation.DiskCacheOptions{})
	if err != nil {
		p.Log.Warn("revocation cache disabled: %v (set revocation.cacheDir to a writable directory)", err)
		return noCache{}
	}
	p.Log.Debug("revocation cache in %s (%s)", dir, why)
	return c
}

// noCache is a Cache that keeps nothing (an in-memory cache would die with
// the process anyway).
type noCache struct{}

func (noCache) Get(string) (revocation.Answer, bool)         { return revocation.Answer{}, false }
func (noCache) Put(string, revocation.Answer, time.Duration) {}

// errFetch marks registry failures: the signature could not be checked.
type errFetch struct{ error }

func (e errFetch) Unwrap() error { return e.error }

// verify reads the signature and its subject and runs the core.
func (p *Plugin) verify(ctx context.Context, v *verification.Verifier, subject common.Reference, ref ocispecs.ReferenceDescriptor, store referrerstore.ReferrerStore) (*verification.Result, error) {
	if ref.ArtifactType != "" && ref.ArtifactType != ArtifactType {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonNotAWSSigner, Check: "fetch",
			Msg: fmt.Sprintf("referrer %s has artifact type %q, not a Notation signature (%s); configure this verifier's artifactTypes as %s", ref.Digest, ref.ArtifactType, ArtifactType, ArtifactType)}
	}
	manifest, err := store.GetReferenceManifest(ctx, subject, ref)
	if err != nil {
		return nil, unavailable(ctx, fmt.Sprintf("could not read signature manifest %s from %s", ref.Digest, subject.Path), err)
	}
	blob, err := envelopeDescriptor(manifest, ref.Digest)
	if err != nil {
		return nil, err
	}
	sd, err := store.GetSubjectDescriptor(ctx, subject)
	if err != nil {
		return nil, unavailable(ctx, fmt.Sprintf("could not resolve %s to a digest", subject.Original), err)
	}
	if subject.Digest != "" && sd.Digest != subject.Digest {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonSubjectMismatch, Check: "fetch",
			Msg: fmt.Sprintf("registry resolved %s to %s, not to the digest the reference names", subject.Original, sd.Digest)}
	}
	if manifest.Subject != nil && manifest.Subject.Digest != sd.Digest {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonSubjectMismatch, Check: "fetch",
			Msg: fmt.Sprintf("signature manifest %s refers to %s, not to the verified image %s", ref.Digest, manifest.Subject.Digest, sd.Digest)}
	}
	envelope, err := store.GetBlobContent(ctx, subject, blob.Digest)
	if err != nil {
		return nil, unavailable(ctx, fmt.Sprintf("could not read signature envelope %s from %s", blob.Digest, subject.Path), err)
	}
	if len(envelope) > MaxBlobSize {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonIntegrity, Check: "fetch",
			Msg: fmt.Sprintf("signature envelope %s is %d bytes, over the %d-byte limit", blob.Digest, len(envelope), MaxBlobSize)}
	}
	if got := digest.FromBytes(envelope); got != blob.Digest && blob.Digest.Algorithm() == digest.SHA256 {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonIntegrity, Check: "fetch",
			Msg: fmt.Sprintf("signature envelope content has digest %s, not the %s its manifest names", got, blob.Digest)}
	}
	return v.Verify(ctx, verification.Input{
		Envelope:   envelope,
		MediaType:  blob.MediaType,
		Subject:    ocispec.Descriptor{MediaType: sd.MediaType, Digest: sd.Digest, Size: sd.Size},
		Repository: subject.Path,
	})
}

// envelopeDescriptor checks that the manifest is a Notation signature with
// exactly one envelope and returns that envelope's descriptor.
func envelopeDescriptor(m ocispecs.ReferenceManifest, sig digest.Digest) (ocispec.Descriptor, error) {
	refuse := func(format string, a ...any) (ocispec.Descriptor, error) {
		return ocispec.Descriptor{}, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonNotAWSSigner, Check: "fetch", Msg: fmt.Sprintf(format, a...)}
	}
	if m.ArtifactType != ArtifactType {
		return refuse("manifest %s is not a Notation signature: artifact type %q, want %s", sig, m.ArtifactType, ArtifactType)
	}
	if len(m.Blobs) != 1 {
		return refuse("signature manifest %s has %d layers; a Notation signature has exactly one envelope", sig, len(m.Blobs))
	}
	b := m.Blobs[0]
	if b.MediaType != "application/jose+json" && b.MediaType != "application/cose" {
		return refuse("signature manifest %s has an envelope of media type %q; AWS Signer signatures are application/jose+json", sig, b.MediaType)
	}
	if b.Size > MaxBlobSize {
		return ocispec.Descriptor{}, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonIntegrity, Check: "fetch",
			Msg: fmt.Sprintf("signature envelope %s is %d bytes, over the %d-byte limit; not fetched", b.Digest, b.Size, MaxBlobSize)}
	}
	if err := b.Digest.Validate(); err != nil {
		return refuse("signature manifest %s names an invalid envelope digest %q", sig, b.Digest)
	}
	return b, nil
}

func unavailable(ctx context.Context, what string, err error) error {
	msg := fmt.Sprintf("%s: %v", what, err)
	if ctx.Err() != nil {
		msg = fmt.Sprintf("%s: the plugin's deadline passed (%v); the registry is too slow or unreachable", what, ctx.Err())
	}
	return &verification.Error{Kind: verification.KindUnavailable, Reason: verification.ReasonRegistry, Check: "fetch", Msg: msg, Err: errFetch{err}}
}

// quiet stands in for os.Stdout while the plugin works, so no dependency
// can write a stray line into Ratify's result parsing.
func quiet() (restore func()) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return func() {}
	}
	saved := os.Stdout
	os.Stdout = devnull
	return func() { os.Stdout = saved; devnull.Close() }
}
