// Package image assembles the awssigner image: for each platform, one
// shared base layer (CA roots, the nonroot user, /tmp) and one layer with
// the static binary, a config that runs the binary as UID/GID 65532 with
// no shell, and OCI labels; the platforms together as one OCI image index.
// Nothing is downloaded: there is no base image.
package image

import (
	"fmt"
	"io/fs"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/cabundle"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/layer"
)

// The image's contract, checked by the tests.
const (
	// BinaryPath is the entrypoint.
	BinaryPath = "/usr/local/bin/awssigner"
	// UID and GID run the binary (distroless' "nonroot").
	UID, GID = 65532, 65532
	// Home is the nonroot user's home (Docker credentials, caches).
	Home = "/home/nonroot"
)

// DefaultArgs are the arguments after the entrypoint: the provider
// (`awssigner serve`). Run the CLI or the plugin by giving other arguments.
var DefaultArgs = []string{"serve"}

// Labels are the OCI labels (and manifest annotations) of an artifact.
type Labels struct {
	Source, Revision, Version, Licenses, Title, Description string
	Created                                                 time.Time
}

// Map returns the labels under their org.opencontainers.image keys.
func (l Labels) Map() map[string]string {
	m := map[string]string{
		"org.opencontainers.image.created":  l.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":   l.Source,
		"org.opencontainers.image.revision": l.Revision,
		"org.opencontainers.image.version":  l.Version,
		"org.opencontainers.image.licenses": l.Licenses,
	}
	if l.Title != "" {
		m["org.opencontainers.image.title"] = l.Title
	}
	if l.Description != "" {
		m["org.opencontainers.image.description"] = l.Description
	}
	return m
}

// BaseLayer holds what every platform shares: the CA roots, /etc/passwd and
// /etc/group with root and nonroot, the nonroot home, and a sticky /tmp
// (the plugin's caches live in the temp directory).
func BaseLayer(mtime time.Time) (*layer.Layer, error) {
	roots, err := cabundle.PEM()
	if err != nil {
		return nil, err
	}
	dir := func(p string, mode fs.FileMode, uid int) layer.Entry {
		return layer.Entry{Path: p, Mode: fs.ModeDir | mode, UID: uid, GID: uid}
	}
	file := func(p string, data string) layer.Entry {
		return layer.Entry{Path: p, Mode: 0o644, Data: []byte(data)}
	}
	return layer.Build([]layer.Entry{
		dir("/etc", 0o755, 0),
		file("/etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, GID, Home)),
		file("/etc/group", fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)),
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		file(cabundle.Path, string(roots)),
		dir("/home", 0o755, 0),
		dir(Home, 0o700, UID),
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		dir("/usr", 0o755, 0),
		dir("/usr/local", 0o755, 0),
		dir("/usr/local/bin", 0o755, 0),
	}, mtime)
}

// BinaryLayer holds the binary, owned by root and not writable by the user
// that runs it.
func BinaryLayer(binary []byte, mtime time.Time) (*layer.Layer, error) {
	return layer.Build([]layer.Entry{{Path: BinaryPath, Mode: 0o755, Data: binary}}, mtime)
}

// Image is one platform's image.
func Image(base, bin *layer.Layer, p v1.Platform, labels Labels) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: labels.Created.UTC()}
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "ratify-aws-signer release: CA roots (NSS via golang.org/x/crypto/x509roots), users root and nonroot, /tmp"}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "ratify-aws-signer release: go build " + BinaryPath}},
	)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath},
		Cmd:        DefaultArgs,
		Env:        []string{"PATH=/usr/local/bin", "HOME=" + Home, "SSL_CERT_FILE=" + cabundle.Path},
		WorkingDir: "/",
		Labels:     labels.Map(),
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels.Map()).(v1.Image), nil
}

// Platformed is an image and its platform.
type Platformed struct {
	Platform v1.Platform
	Image    v1.Image
}

// Index puts the platform images in one OCI image index.
func Index(images []Platformed, annotations map[string]string) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pi := range images {
		p := pi.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if annotations != nil {
		idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)
	}
	return idx
}
