// Package artifact makes OCI 1.1 artifact manifests as go-containerregistry
// images: an image manifest with an artifactType, the empty JSON config
// ({}), blobs as layers and an optional subject (a referrer). The plugin
// artifact Ratify downloads and the SBOM referrer are both this shape.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// EmptyConfigMediaType is the OCI empty descriptor's media type; its
// content is the two bytes {}.
const EmptyConfigMediaType types.MediaType = "application/vnd.oci.empty.v1+json"

var emptyConfig = []byte("{}")

// Blob is one layer of an artifact.
type Blob struct {
	MediaType   types.MediaType
	Data        []byte
	Annotations map[string]string
}

// Options describe an artifact.
type Options struct {
	// ArtifactType is the manifest's artifactType.
	ArtifactType string
	// Blobs are the layers, in order.
	Blobs []Blob
	// Annotations are the manifest's annotations.
	Annotations map[string]string
	// Subject makes the artifact a referrer of that manifest.
	Subject *v1.Descriptor
}

// New returns the artifact as an image.
func New(o Options) (v1.Image, error) {
	a := &image{layers: map[v1.Hash]*blob{}}
	cfg := digestOf(emptyConfig)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  o.ArtifactType,
		Config:        v1.Descriptor{MediaType: EmptyConfigMediaType, Digest: cfg, Size: int64(len(emptyConfig)), Data: emptyConfig},
		Annotations:   o.Annotations,
		Subject:       o.Subject,
	}
	for _, b := range o.Blobs {
		d := digestOf(b.Data)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: b.MediaType, Digest: d, Size: int64(len(b.Data)), Annotations: b.Annotations})
		a.layers[d] = &blob{digest: d, data: b.Data, mediaType: b.MediaType}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	a.manifest = raw
	return partial.CompressedToImage(a)
}

type image struct {
	manifest []byte
	layers   map[v1.Hash]*blob
}

func (a *image) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *image) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *image) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if b, ok := a.layers[h]; ok {
		return b, nil
	}
	if h == digestOf(emptyConfig) {
		return &blob{digest: h, data: emptyConfig, mediaType: EmptyConfigMediaType}, nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}

type blob struct {
	digest    v1.Hash
	data      []byte
	mediaType types.MediaType
}

func (b *blob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *blob) Compressed() (io.ReadCloser, error)  { return io.NopCloser(bytes.NewReader(b.data)), nil }
func (b *blob) Size() (int64, error)                { return int64(len(b.data)), nil }
func (b *blob) MediaType() (types.MediaType, error) { return b.mediaType, nil }

func digestOf(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}
