// Package ratify makes the Ratify v1 image with the awssigner plugin: the
// pinned upstream Ratify image, unchanged, with one layer appended per
// platform that puts the plugin at PluginPath (mode 0755, owner 65532,
// Ratify's user). The base is only read at push time, straight from its
// registry into the target registry; building never downloads it.
package ratify

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/layer"
)

// baseRef is the one place the upstream image is pinned: the image Ratify's
// chart 1.15.7 runs (repository:tag, a test compares it with the chart), and
// after "@" its index digest once it has been read from ghcr.io.
//
//go:embed base.ref
var baseRef string

// Base returns the pinned upstream Ratify image reference.
func Base() string { return strings.TrimSpace(baseRef) }

// Plugin layer contract.
const (
	// PluginPath is where Ratify (RATIFY_CONFIG=/.ratify) finds plugins.
	PluginPath = "/.ratify/plugins/awssigner"
	// UID and GID own the plugin: Ratify's user.
	UID, GID = 65532, 65532
)

// PluginLayer is the one layer added to the base: the plugin file only (the
// base's /.ratify/plugins keeps its owner and mode).
func PluginLayer(binary []byte, mtime time.Time) (*layer.Layer, error) {
	return layer.Build([]layer.Entry{{Path: PluginPath, Mode: 0o755, UID: UID, GID: GID, Data: binary}}, mtime)
}

// ErrNotPinned: the Ratify base reference has no digest.
var ErrNotPinned = errors.New("the Ratify base is not pinned by digest")

// CheckPinned refuses a base reference without a digest: a tag can move,
// and the release must say exactly what it was built on.
func CheckPinned(ref string) (name.Digest, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("Ratify base %q: %w", ref, err)
	}
	d, ok := r.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("%w: %q; read its index digest once from a machine that reaches the registry "+
			"(crane digest %s), check it against Ratify's release, and write <repository>:<tag>@sha256:<digest> to tools/release/ratify/base.ref "+
			"(or give RATIFY_BASE=<reference>@sha256:<digest> to make push)", ErrNotPinned, ref, ref)
	}
	return d, nil
}

// Compose appends, to each platform image of the base index, the plugin
// layer built for that platform, and returns the new index (same platforms,
// in the base's order). Every platform of layers must be in the base;
// platforms of the base without a layer are left out. annotations go on
// every manifest and the index, with the base's name and digest.
func Compose(base v1.ImageIndex, baseRef string, layers map[string]*layer.Layer, created time.Time, annotations map[string]string) (v1.ImageIndex, error) {
	im, err := base.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read the Ratify base index %s: %w", baseRef, err)
	}
	baseDigest, err := base.Digest()
	if err != nil {
		return nil, err
	}
	ann := map[string]string{
		"org.opencontainers.image.base.name":   baseRef,
		"org.opencontainers.image.base.digest": baseDigest.String(),
	}
	for k, v := range annotations {
		ann[k] = v
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	found := map[string]bool{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		l, ok := layers[p]
		if !ok || found[p] {
			continue
		}
		img, err := base.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("Ratify base %s, %s: %w", baseRef, p, err)
		}
		mt, err := img.MediaType()
		if err != nil {
			return nil, err
		}
		layerType := types.OCILayer
		if mt == types.DockerManifestSchema2 {
			layerType = types.DockerLayer
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: layerType,
			History: v1.History{Created: v1.Time{Time: created.UTC()}, CreatedBy: "ratify-aws-signer release: " + PluginPath}})
		if err != nil {
			return nil, err
		}
		img = mutate.Annotations(img, ann).(v1.Image)
		platform := *d.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
		found[p] = true
	}
	for p := range layers {
		if !found[p] {
			return nil, fmt.Errorf("the Ratify base %s has no %s image", baseRef, p)
		}
	}
	return mutate.Annotations(idx, ann).(v1.ImageIndex), nil
}
