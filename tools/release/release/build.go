// Package release builds and publishes the project's release artifacts:
// the awssigner image index and its -fips variant, the plugin artifacts
// Ratify downloads, and (at push time) Ratify with the plugin; then signs
// what it pushed with `awssigner sign` and attaches SBOMs as referrers.
//
// Build writes everything it can make without a network to an OCI layout
// (dist/oci) plus the binaries and a manifest (dist/release.json); Push reads
// them back, so what is pushed is exactly what was built.
package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sync/errgroup"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/gobuild"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/image"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/layer"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/plugin"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/ratify"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/source"
)

// Platforms are the Linux architectures released.
var Platforms = []gobuild.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}

// Variants of the binary.
const (
	VariantStd  = "std"
	VariantFIPS = "fips"
)

// RefName annotations of the layout's index.json entries.
const (
	RefImage = "awssigner"
	RefFIPS  = "awssigner-fips"
	// RefPluginPrefix + "linux-amd64" names a plugin artifact.
	RefPluginPrefix = "awssigner-plugin-"
)

// Options say what to build.
type Options struct {
	// Repo is the git repository (the root module's directory).
	Repo string
	// Commit to build (default HEAD).
	Commit string
	// Version stamped into the binary and the labels.
	Version string
	// Dist is the output directory; it is replaced.
	Dist string
	// Source and Licenses are the labels' values.
	Source, Licenses string
	// Platforms to build (default Platforms).
	Platforms []gobuild.Platform
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

// Manifest is dist/release.json: what Build made.
type Manifest struct {
	Commit   string    `json:"commit"`
	Created  time.Time `json:"created"`
	Version  string    `json:"version"`
	Source   string    `json:"source"`
	Licenses string    `json:"licenses"`
	// Go is the toolchain that built the binaries.
	Go string `json:"go"`
	// Binaries maps variant → platform → path relative to Dist.
	Binaries map[string]map[string]string `json:"binaries"`
	// Digests maps a layout ref name → manifest or index digest.
	Digests map[string]string `json:"digests"`
	// RatifyLayers maps platform → digest of the layer added to Ratify.
	RatifyLayers map[string]string `json:"ratifyLayers"`
	// Sizes maps "<ref name> <platform>" → compressed size in bytes (layers).
	Sizes map[string]int64 `json:"sizes"`
}

// Refusals of Build and Push.
var (
	// ErrForeignDist: the output directory holds something Build did not write.
	ErrForeignDist = errors.New("the output directory is not a build's")
	// ErrNotBuilt: Push found no (complete) build in the output directory.
	ErrNotBuilt = errors.New("no build to push")
)

// ManifestFile is the manifest's name under Dist.
const ManifestFile = "release.json"

// LayoutDir is the OCI layout's directory under Dist.
const LayoutDir = "oci"

// Build exports the commit, builds every binary, assembles the images and
// writes Dist. It returns the manifest it wrote.
func Build(ctx context.Context, o Options) (*Manifest, error) {
	if o.Commit == "" {
		o.Commit = "HEAD"
	}
	if len(o.Platforms) == 0 {
		o.Platforms = Platforms
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	if err := clearDist(o.Dist); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dist, 0o755); err != nil {
		return nil, err
	}
	// Marks the directory as ours from the start, so an interrupted build's
	// output can be replaced by the next one.
	if err := os.WriteFile(filepath.Join(o.Dist, distMarker), []byte("written by tools/release; replaced by every build\n"), 0o644); err != nil {
		return nil, err
	}
	srcDir := filepath.Join(o.Dist, "src")
	tree, err := source.Export(ctx, o.Repo, o.Commit, srcDir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(srcDir)

	goVersion, err := gobuild.GoVersion(ctx, tree.Dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "building commit %s (%s), version %s, %s\n", tree.Commit, tree.Time.Format(time.RFC3339), o.Version, goVersion)
	m := &Manifest{Commit: tree.Commit, Created: tree.Time, Version: o.Version, Source: o.Source, Licenses: o.Licenses, Go: goVersion,
		Binaries: map[string]map[string]string{}, Digests: map[string]string{}, RatifyLayers: map[string]string{}, Sizes: map[string]int64{}}
	// Two builds at a time: compiling uses every core, but linking (most of
	// a warm build) mostly one.
	binaries := map[string]map[string][]byte{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, variant := range []string{VariantStd, VariantFIPS} {
		m.Binaries[variant] = map[string]string{}
		binaries[variant] = map[string][]byte{}
		for _, p := range o.Platforms {
			g.Go(func() error {
				rel := filepath.Join("bin", variant, p.OS+"-"+p.Arch, "awssigner")
				start := time.Now()
				out, err := gobuild.Build(gctx, gobuild.Options{Dir: tree.Dir, Platform: p, Version: o.Version, FIPS: variant == VariantFIPS, Out: filepath.Join(o.Dist, rel)})
				if err != nil {
					return err
				}
				data, err := os.ReadFile(out)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(logw, "  go build %-5s %-12s %5.1f MB  %s\n", variant, p, float64(len(data))/1e6, time.Since(start).Round(100*time.Millisecond))
				m.Binaries[variant][p.String()] = rel
				binaries[variant][p.String()] = data
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// The layers, gzipped two at a time.
	binLayers := map[string]*layer.Layer{}    // variant + " " + platform
	ratifyLayers := map[string]*layer.Layer{} // platform
	g, _ = errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, variant := range []string{VariantStd, VariantFIPS} {
		for _, p := range o.Platforms {
			g.Go(func() error {
				l, err := image.BinaryLayer(binaries[variant][p.String()], tree.Time)
				mu.Lock()
				defer mu.Unlock()
				binLayers[variant+" "+p.String()] = l
				return err
			})
		}
	}
	for _, p := range o.Platforms {
		g.Go(func() error {
			l, err := ratify.PluginLayer(binaries[VariantStd][p.String()], tree.Time)
			mu.Lock()
			defer mu.Unlock()
			ratifyLayers[p.String()] = l
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	lp, err := layout.Write(filepath.Join(o.Dist, LayoutDir), empty.Index)
	if err != nil {
		return nil, err
	}
	base, err := image.BaseLayer(tree.Time)
	if err != nil {
		return nil, err
	}
	for _, variant := range []string{VariantStd, VariantFIPS} {
		labels := m.labels(variant)
		var imgs []image.Platformed
		for _, p := range o.Platforms {
			bin := binLayers[variant+" "+p.String()]
			plat := v1.Platform{OS: p.OS, Architecture: p.Arch}
			img, err := image.Image(base, bin, plat, labels)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, image.Platformed{Platform: plat, Image: img})
		}
		idx := image.Index(imgs, labels.Map())
		ref := RefImage
		if variant == VariantFIPS {
			ref = RefFIPS
		}
		for _, pi := range imgs {
			if m.Sizes[ref+" "+pi.Platform.OS+"/"+pi.Platform.Architecture], err = compressedSize(pi.Image); err != nil {
				return nil, err
			}
		}
		if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			return nil, err
		}
		d, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		m.Digests[ref] = d.String()
	}
	for _, p := range o.Platforms {
		img, _, err := plugin.Artifact(binaries[VariantStd][p.String()], o.Version, tree.Time, m.labels(VariantStd).Map())
		if err != nil {
			return nil, err
		}
		ref := RefPluginPrefix + p.OS + "-" + p.Arch
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			return nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		m.Digests[ref] = d.String()
		l := ratifyLayers[p.String()]
		ld, _ := l.Digest()
		m.RatifyLayers[p.String()] = ld.String()
		m.Sizes["ratify layer "+p.String()], _ = l.Size()
		m.Sizes[ref+" "+p.String()], _ = compressedSize(img)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dist, ManifestFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// labels are the OCI labels of a variant's artifacts.
func (m *Manifest) labels(variant string) image.Labels {
	l := image.Labels{Source: m.Source, Revision: m.Commit, Version: m.Version, Licenses: m.Licenses, Created: m.Created,
		Title: "awssigner", Description: "AWS Signer signature verification for Kubernetes admission: Ratify v1 plugin, provider (serve) and command line"}
	if variant == VariantFIPS {
		l.Title = "awssigner-fips"
		l.Description += "; built with the Go FIPS 140-3 module (GOFIPS140=" + gobuild.FIPSModule + ")"
	}
	return l
}

// ReadManifest reads dist/release.json.
func ReadManifest(dist string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dist, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v: run `make image` first", ErrNotBuilt, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return &m, nil
}

// Summary lists the digests, then the sizes, one line each, sorted.
func (m *Manifest) Summary() []string {
	var digests, sizes []string
	for k, v := range m.Digests {
		digests = append(digests, fmt.Sprintf("%-28s %s", k, v))
	}
	for k, v := range m.RatifyLayers {
		digests = append(digests, fmt.Sprintf("%-28s %s", "ratify layer "+k, v))
	}
	for k, v := range m.Sizes {
		sizes = append(sizes, fmt.Sprintf("%-40s %6.1f MB of layers as pushed", k, float64(v)/1e6))
	}
	sort.Strings(digests)
	sort.Strings(sizes)
	return append(append(digests, "sizes:"), sizes...)
}

// compressedSize is the sum of an image's layer sizes as pushed.
func compressedSize(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// clearDist removes a previous build's output directory, and refuses to
// remove a directory that is neither empty nor one Build wrote (a mistyped
// -dist must not delete a source tree).
func clearDist(dist string) error {
	entries, err := os.ReadDir(dist)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dist, distMarker)); err != nil {
			return fmt.Errorf("%w: refusing to replace %s: it is not empty and has no %s (not a previous build's output); give an empty or new -dist", ErrForeignDist, dist, distMarker)
		}
	}
	return os.RemoveAll(dist)
}

// distMarker is the file that says a directory is a build's output.
const distMarker = ".release-dist"
