// Package ratifyv1 adapts the verification core to Ratify v1's external
// verifier contract: it decodes the configuration Ratify passes on stdin,
// reads the signature through the same pipeline as every other path
// (verification.VerifyReferrer over an oras-go repository configured from
// Ratify's ORAS store: its auth provider and plain-HTTP settings), under a
// deadline that ends before Ratify's, and returns the result Ratify keeps
// (isSuccess, name, type, message, extensions). It is the only package
// besides main that imports Ratify.
package ratifyv1

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ratify-project/ratify/pkg/common"
	"github.com/ratify-project/ratify/pkg/ocispecs"
	"github.com/ratify-project/ratify/pkg/referrerstore"
	"github.com/ratify-project/ratify/pkg/verifier"
	"github.com/ratify-project/ratify/pkg/verifier/plugin/skel"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Contract constants.
const (
	// SupportedVersion is the only RATIFY_VERIFIER_VERSION accepted.
	SupportedVersion = "1.0.0"
	// EnvCommand is set by Ratify when it runs a plugin.
	EnvCommand = "RATIFY_VERIFIER_COMMAND"
)

// Main runs the plugin under Ratify's skel, which exits the process when
// the run ends with an error; on success Main returns.
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
	t0 := p.now()
	var in stdin
	if err := json.Unmarshal(args.StdinData, &in); err != nil {
		return nil, fmt.Errorf("stdin is not the JSON document Ratify sends: %w", err)
	}
	cfg, err := config.DecodeJSON(in.Config)
	if err != nil {
		return nil, fmt.Errorf("invalid awssigner verifier configuration: %w", err)
	}
	for _, w := range cfg.Warnings {
		p.Log.Warn("configuration: %s", w)
	}
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.DiskCache, Version: p.Version, Warn: p.Log.Warn, Debug: p.Log.Debug})
	if err != nil {
		return nil, fmt.Errorf("invalid awssigner verifier configuration: %w", err)
	}
	tBuilt := p.now()
	started := p.Started
	if started.IsZero() {
		started = t0
	}
	ctx, cancel := context.WithDeadline(context.Background(), started.Add(cfg.Deadline))
	defer cancel()

	res, err := p.verify(ctx, v, subject, ref, store)
	end := p.now()
	r := Outcome{Name: cfg.Name, Type: cfg.Type, Report: verification.NewReport(ref.Digest.String(), res, err), Duration: end.Sub(started)}.VerifierResult()
	p.Log.Info("verified %s signature %s: success=%t in %dms", subject.Path, ref.Digest, r.IsSuccess, r.Extensions.(verification.Report).DurationMs)
	p.Log.Debug("timings: start to callback %s, configuration %s, fetch and verify %s", t0.Sub(started), tBuilt.Sub(t0), end.Sub(tBuilt))
	return r, nil
}

func (p *Plugin) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// verify resolves the subject and runs the core pipeline on the referrer.
func (p *Plugin) verify(ctx context.Context, v *verification.Verifier, subject common.Reference, ref ocispecs.ReferenceDescriptor, store referrerstore.ReferrerStore) (*verification.Result, error) {
	repo, cacheDir, err := openRepository(store.GetConfig(), subject, p.Version, p.Log)
	if err != nil {
		return nil, &verification.Error{Kind: verification.KindUnavailable, Reason: verification.ReasonInput, Check: verification.CheckFetch, Msg: err.Error(), Err: err}
	}
	sd, err := repo.Resolve(ctx, subject.Original)
	if err != nil {
		return nil, resolveError(ctx, subject, err)
	}
	if subject.Digest != "" && sd.Digest != subject.Digest {
		return nil, &verification.Error{Kind: verification.KindRefused, Reason: verification.ReasonSubjectMismatch, Check: verification.CheckFetch,
			Msg: fmt.Sprintf("registry resolved %s to %s, not to the digest the reference names", subject.Original, sd.Digest)}
	}
	sig := ref.Descriptor
	sig.ArtifactType = ref.ArtifactType
	return v.VerifyReferrer(ctx, newContentCache(cacheDir, repo), verification.Subject{
		Repository: subject.Path,
		Descriptor: ocispec.Descriptor{MediaType: sd.MediaType, Digest: sd.Digest, Size: sd.Size},
	}, sig)
}
