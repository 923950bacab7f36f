// Package oci reads and writes Notation signatures in OCI registries with
// oras-go: resolve a reference to a descriptor, list an image's signature
// referrers (referrers API, with the referrers tag schema as fallback),
// fetch a signature's envelope, and push an envelope as a signature
// manifest.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
)

// Notation signature constants.
const (
	ArtifactTypeSignature = "application/vnd.cncf.notary.signature"
	MediaTypeJWS          = "application/jose+json"
	MaxEnvelopeSize       = 32 << 20
	MaxManifestSize       = 4 << 20
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
	err := i.Repo.Referrers(ctx, subject, ArtifactTypeSignature, func(refs []ocispec.Descriptor) error {
		out = append(out, refs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s@%s: %w", i.Repository(), subject.Digest, err)
	}
	return out, nil
}

// Signature is a signature manifest and its envelope.
type Signature struct {
	Manifest ocispec.Descriptor
	Envelope []byte
	// MediaType is the envelope's media type.
	MediaType string
	// Subject is the manifest's subject.
	Subject     *ocispec.Descriptor
	Annotations map[string]string
}

// FetchSignature reads a signature manifest and its single envelope,
// refusing anything that is not a Notation signature.
func (i Image) FetchSignature(ctx context.Context, desc ocispec.Descriptor) (*Signature, error) {
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("signature manifest %s is %d bytes, over the %d-byte limit", desc.Digest, desc.Size, MaxManifestSize)
	}
	raw, err := content.FetchAll(ctx, i.Repo.Manifests(), desc)
	if err != nil {
		return nil, fmt.Errorf("fetch signature manifest %s: %w", desc.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("signature manifest %s is not an OCI image manifest: %w", desc.Digest, err)
	}
	artifactType := m.ArtifactType
	if artifactType == "" {
		artifactType = m.Config.MediaType
	}
	if artifactType != ArtifactTypeSignature {
		return nil, fmt.Errorf("manifest %s is not a Notation signature (artifact type %q)", desc.Digest, artifactType)
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("signature manifest %s has %d layers; a Notation signature has exactly one envelope", desc.Digest, len(m.Layers))
	}
	layer := m.Layers[0]
	if layer.Size > MaxEnvelopeSize {
		return nil, fmt.Errorf("signature envelope %s is %d bytes, over the %d-byte limit", layer.Digest, layer.Size, MaxEnvelopeSize)
	}
	env, err := content.FetchAll(ctx, i.Repo.Blobs(), layer)
	if err != nil {
		return nil, fmt.Errorf("fetch signature envelope %s: %w", layer.Digest, err)
	}
	return &Signature{Manifest: desc, Envelope: env, MediaType: layer.MediaType, Subject: m.Subject, Annotations: m.Annotations}, nil
}

// PushSignature stores envelope as a Notation signature of subject and
// returns the signature manifest's descriptor. oras-go uses the referrers
// API when the registry has it and maintains the referrers tag otherwise.
func (i Image) PushSignature(ctx context.Context, subject ocispec.Descriptor, envelope []byte, mediaType string, annotations map[string]string) (ocispec.Descriptor, error) {
	if mediaType == "" {
		mediaType = MediaTypeJWS
	}
	blob := content.NewDescriptorFromBytes(mediaType, envelope)
	if err := push(ctx, i.Repo, blob, envelope); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push signature envelope: %w", err)
	}
	subject = ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	desc, err := oras.PackManifest(ctx, i.Repo, oras.PackManifestVersion1_1, ArtifactTypeSignature, oras.PackManifestOptions{
		Subject:             &subject,
		Layers:              []ocispec.Descriptor{blob},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push signature manifest: %w", err)
	}
	return desc, nil
}

// PushImage stores a small OCI image (config and one layer) and tags it;
// tests and the demo use it to have something to sign.
func (i Image) PushImage(ctx context.Context, tag string, layer []byte) (ocispec.Descriptor, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	cfgDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, config)
	layerDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, layer)
	for _, b := range []struct {
		d ocispec.Descriptor
		c []byte
	}{{cfgDesc, config}, {layerDesc, layer}} {
		if err := push(ctx, i.Repo, b.d, b.c); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	desc, err := oras.PackManifest(ctx, i.Repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		ConfigDescriptor: &cfgDesc,
		Layers:           []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if tag != "" {
		if err := i.Repo.Tag(ctx, desc, tag); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, nil
}

func push(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, data []byte) error {
	err := repo.Push(ctx, d, bytes.NewReader(data))
	if err != nil && !isExists(err) {
		return err
	}
	return nil
}

func isExists(err error) bool { return errors.Is(err, errdef.ErrAlreadyExists) }
