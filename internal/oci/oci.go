// Package oci reaches OCI registries with oras-go for the command line:
// open a reference, resolve it to a descriptor, list an image's signature
// referrers (referrers API, with the referrers tag schema as fallback), and
// push an envelope as a signature manifest. Reading a signature is
// internal/signature's job, on the repository this package opens.
package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

// Options tune repository access.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS (local registries).
	PlainHTTP bool
	// Client authenticates requests; nil means anonymous.
	Client remote.Client
}

// Image is a parsed reference with its repository handle.
type Image struct {
	Ref  registry.Reference
	Repo *remote.Repository
}

// Repository returns "<registry>/<repository>".
func (i Image) Repository() string { return i.Ref.Registry + "/" + i.Ref.Repository }

// Open parses "<registry>/<repository>[:tag|@digest]".
func Open(reference string, o Options) (Image, error) {
	ref, err := registry.ParseReference(reference)
	if err != nil {
		return Image{}, fmt.Errorf("%q is not an image reference (<registry>/<repository>[:tag|@digest]): %w", reference, err)
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return Image{}, err
	}
	repo.PlainHTTP = o.PlainHTTP
	if o.Client != nil {
		repo.Client = o.Client
	}
	return Image{Ref: ref, Repo: repo}, nil
}

// Resolve returns the descriptor the reference names (a tag is resolved to
// its digest; a digest is checked to exist).
func (i Image) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	if i.Ref.Reference == "" {
		return ocispec.Descriptor{}, fmt.Errorf("%s names no tag or digest", i.Repository())
	}
	d, err := i.Repo.Resolve(ctx, i.Ref.Reference)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", i.Ref, err)
	}
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, nil
}

// Signatures lists the Notation signature manifests that refer to subject.
func (i Image) Signatures(ctx context.Context, subject ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := i.Repo.Referrers(ctx, subject, signature.ArtifactType, func(refs []ocispec.Descriptor) error {
		out = append(out, refs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s@%s: %w", i.Repository(), subject.Digest, err)
	}
	return out, nil
}

// PushSignature stores envelope as a Notation signature of subject and
// returns the signature manifest's descriptor. oras-go uses the referrers
// API when the registry has it and maintains the referrers tag otherwise.
func (i Image) PushSignature(ctx context.Context, subject ocispec.Descriptor, envelope []byte, mediaType string, annotations map[string]string) (ocispec.Descriptor, error) {
	if mediaType == "" {
		mediaType = signature.MediaTypeJWS
	}
	blob := content.NewDescriptorFromBytes(mediaType, envelope)
	if err := push(ctx, i.Repo, blob, envelope); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push signature envelope: %w", err)
	}
	subject = ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	desc, err := oras.PackManifest(ctx, i.Repo, oras.PackManifestVersion1_1, signature.ArtifactType, oras.PackManifestOptions{
		Subject:             &subject,
		Layers:              []ocispec.Descriptor{blob},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push signature manifest: %w", err)
	}
	return desc, nil
}

func push(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, data []byte) error {
	err := repo.Push(ctx, d, bytes.NewReader(data))
	if err != nil && !isExists(err) {
		return err
	}
	return nil
}

func isExists(err error) bool { return errors.Is(err, errdef.ErrAlreadyExists) }
