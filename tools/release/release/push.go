package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/artifact"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/layer"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/ratify"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/sbom"
)

// PushOptions say where to push and how to sign.
type PushOptions struct {
	// Dist is what Build wrote.
	Dist string
	// Registry is <host>[/<path>], e.g. 111122223333.dkr.ecr.us-west-2.amazonaws.com/ratify-aws-signer.
	Registry string
	// Tag of this release (default: the built version).
	Tag string
	// PlainHTTP talks HTTP to the registry (local registries).
	PlainHTTP bool
	// RatifyBase is the upstream Ratify image, pinned by digest (default:
	// the reference in tools/release/ratify/base.ref).
	RatifyBase string
	// Awssigner is the `awssigner` binary that signs (it must run here).
	Awssigner string
	// ProfileARN is the AWS Signer signing profile. Empty: do not sign
	// (the push then says so and fails unless NoSign is set).
	ProfileARN string
	// NoSign skips signing explicitly (tests of the push alone).
	NoSign bool
	// AWSEndpoint overrides the AWS Signer endpoint (the emulator in tests).
	AWSEndpoint string
	// Env is the signer's environment (default: this process's).
	Env []string
	// Keychain authenticates to registries (default: Docker's config).
	Keychain authn.Keychain
	// Log receives progress lines.
	Log io.Writer
}

// Pushed is one pushed artifact.
type Pushed struct {
	// Name is the layout ref name (awssigner, awssigner-fips, ratify-awssigner, awssigner-plugin-linux-amd64).
	Name string `json:"name"`
	// Tags are the tag references written.
	Tags []string `json:"tags"`
	// Pinned is <repository>@<digest>.
	Pinned string `json:"pinned"`
	// Signature is the Notation signature manifest's digest.
	Signature string `json:"signature,omitempty"`
	// SBOMs maps each platform manifest's digest to its SBOM referrer's digest.
	SBOMs map[string]string `json:"sboms"`
}

// RefRatify is the Ratify image's name in push results.
const RefRatify = "ratify-awssigner"

// Push pushes the built artifacts and Ratify with the plugin, attaches an
// SBOM to every platform manifest and signs every pushed top-level
// reference with `awssigner sign`.
func Push(ctx context.Context, o PushOptions) ([]Pushed, error) {
	m, err := ReadManifest(o.Dist)
	if err != nil {
		return nil, err
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	if o.Tag == "" {
		o.Tag = m.Version
	}
	if o.RatifyBase == "" {
		o.RatifyBase = ratify.Base()
	}
	baseRef, err := ratify.CheckPinned(o.RatifyBase)
	if err != nil {
		return nil, err
	}
	if !o.NoSign && (o.ProfileARN == "" || o.Awssigner == "") {
		return nil, fmt.Errorf("signing needs an AWS Signer signing profile and the awssigner binary: give PROFILE_ARN=arn:aws:signer:<region>:<account>:/signing-profiles/<name> (and AWSSIGNER=<path> when dist/ has no binary for this machine)")
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	nameOpts := []name.Option{}
	if o.PlainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.Keychain)}
	lp, err := layout.FromPath(filepath.Join(o.Dist, LayoutDir))
	if err != nil {
		return nil, fmt.Errorf("%w: read the OCI layout: %v: run `make image` first", ErrNotBuilt, err)
	}
	root, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	var platforms []string
	for p := range m.Binaries[VariantStd] {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	refs := RefsFor(o.Registry, o.Tag, platforms)
	binary := func(variant, platform string) ([]byte, error) {
		return os.ReadFile(filepath.Join(o.Dist, m.Binaries[variant][platform]))
	}
	find := func(ref string) (v1.Descriptor, error) {
		im, err := root.IndexManifest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		for _, d := range im.Manifests {
			if match.Annotation("org.opencontainers.image.ref.name", ref)(d) {
				return d, nil
			}
		}
		return v1.Descriptor{}, fmt.Errorf("%w: the OCI layout has no %s: run `make image` again", ErrNotBuilt, ref)
	}

	var out []Pushed
	pushIndex := func(refName, variant string, idx v1.ImageIndex, tag string) error {
		first, err := name.NewTag(tag, nameOpts...)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(first, idx, ropts...); err != nil {
			return fmt.Errorf("push %s: %w", first, err)
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		p := Pushed{Name: refName, Tags: []string{tag}, Pinned: first.Context().Digest(d.String()).String(), SBOMs: map[string]string{}}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, md := range im.Manifests {
			plat := md.Platform.OS + "/" + md.Platform.Architecture
			data, err := binary(variant, plat)
			if err != nil {
				return err
			}
			sd, err := attachSBOM(first.Context(), md, data, m, ropts)
			if err != nil {
				return fmt.Errorf("SBOM of %s %s: %w", refName, plat, err)
			}
			p.SBOMs[md.Digest.String()] = sd
		}
		fmt.Fprintf(logw, "pushed %s\n  %s\n", tag, p.Pinned)
		out = append(out, p)
		return nil
	}

	for _, item := range []struct{ ref, variant, tag string }{{RefImage, VariantStd, refs.Image}, {RefFIPS, VariantFIPS, refs.FIPS}} {
		d, err := find(item.ref)
		if err != nil {
			return nil, err
		}
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		if err := pushIndex(item.ref, item.variant, idx, item.tag); err != nil {
			return nil, err
		}
	}

	// Ratify with the plugin: the base streams from its registry at push time.
	base, err := remote.Index(baseRef, ropts...)
	if err != nil {
		return nil, fmt.Errorf("read the Ratify base %s: %w", baseRef, err)
	}
	layers := map[string]*layer.Layer{}
	for _, p := range platforms {
		data, err := binary(VariantStd, p)
		if err != nil {
			return nil, err
		}
		l, err := ratify.PluginLayer(data, m.Created)
		if err != nil {
			return nil, err
		}
		if ld, _ := l.Digest(); ld.String() != m.RatifyLayers[p] {
			return nil, fmt.Errorf("%w: the plugin layer for %s is %s, `make image` recorded %s: dist/ changed since it was built; run `make image` again", ErrNotBuilt, p, ld, m.RatifyLayers[p])
		}
		layers[p] = l
	}
	composed, err := ratify.Compose(base, baseRef.String(), layers, m.Created, map[string]string{
		"org.opencontainers.image.source": m.Source, "org.opencontainers.image.revision": m.Commit, "org.opencontainers.image.version": m.Version,
	})
	if err != nil {
		return nil, err
	}
	if err := pushIndex(RefRatify, VariantStd, composed, refs.Ratify); err != nil {
		return nil, err
	}

	for _, p := range platforms {
		refName := RefPluginPrefix + strings.ReplaceAll(p, "/", "-")
		d, err := find(refName)
		if err != nil {
			return nil, err
		}
		img, err := root.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		tag, err := name.NewTag(refs.Plugin[p], nameOpts...)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(tag, img, ropts...); err != nil {
			return nil, fmt.Errorf("push %s: %w", tag, err)
		}
		data, err := binary(VariantStd, p)
		if err != nil {
			return nil, err
		}
		sd, err := attachSBOM(tag.Context(), d, data, m, ropts)
		if err != nil {
			return nil, err
		}
		pinned := tag.Context().Digest(d.Digest.String()).String()
		fmt.Fprintf(logw, "pushed %s\n  %s\n", tag, pinned)
		out = append(out, Pushed{Name: refName, Tags: []string{tag.String()}, Pinned: pinned, SBOMs: map[string]string{d.Digest.String(): sd}})
	}

	if o.NoSign {
		fmt.Fprintln(logw, "not signed (NoSign)")
		return out, nil
	}
	for i := range out {
		sig, err := sign(ctx, o, out[i].Pinned)
		if err != nil {
			return out, err
		}
		out[i].Signature = sig
		fmt.Fprintf(logw, "signed %s\n  signature %s\n", out[i].Pinned, sig)
	}
	return out, nil
}

// attachSBOM pushes the SPDX document of the binary as a referrer of the
// manifest desc in repo and returns the referrer's digest.
func attachSBOM(repo name.Repository, desc v1.Descriptor, binary []byte, m *Manifest, ropts []remote.Option) (string, error) {
	doc, err := sbom.FromBinary(binary, sbom.Subject{
		Name: "awssigner", Version: m.Version, Created: m.Created, Source: m.Source, Revision: m.Commit,
		Namespace: fmt.Sprintf("%s/sbom/%s", strings.TrimSuffix(m.Source, "/"), desc.Digest.Hex),
	})
	if err != nil {
		return "", err
	}
	data, err := doc.JSON()
	if err != nil {
		return "", err
	}
	subject := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	img, err := artifact.New(artifact.Options{
		ArtifactType: sbom.MediaType,
		Blobs:        []artifact.Blob{{MediaType: sbom.MediaType, Data: data, Annotations: map[string]string{"org.opencontainers.image.title": "sbom.spdx.json"}}},
		Annotations:  map[string]string{"org.opencontainers.image.created": m.Created.UTC().Format(time.RFC3339)},
		Subject:      &subject,
	})
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	if err := remote.Write(repo.Digest(d.String()), img, ropts...); err != nil {
		return "", fmt.Errorf("push %s@%s: %w", repo, d, err)
	}
	return d.String(), nil
}

// sign runs `awssigner sign <pinned> --profile-arn … -o json` and returns
// the signature's digest.
func sign(ctx context.Context, o PushOptions, pinned string) (string, error) {
	args := []string{"sign", pinned, "--profile-arn", o.ProfileARN, "-o", "json"}
	if o.AWSEndpoint != "" {
		args = append(args, "--aws-endpoint", o.AWSEndpoint)
	}
	if o.PlainHTTP {
		args = append(args, "--plain-http")
	}
	cmd := exec.CommandContext(ctx, o.Awssigner, args...)
	cmd.Env = o.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("awssigner %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var res struct {
		SignatureDigest string `json:"signatureDigest"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.SignatureDigest == "" {
		return "", fmt.Errorf("awssigner sign %s printed no signature digest: %s", pinned, stdout.String())
	}
	return res.SignatureDigest, nil
}
