// Package plugin makes the awssigner plugin artifact in the shape Ratify
// v1's dynamic plugins download: an OCI image manifest whose first (and
// only) layer is the binary. Ratify, given a Verifier's
// spec.source.artifact and RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=1, writes
// that layer to <plugin dir>/<spec.name> (mode 0700) and runs it. Ratify
// downloads the layer without looking at any platform, so there is one
// artifact (one reference) per CPU architecture.
package plugin

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/artifact"
)

// The shape of the published artifact.
const (
	// ArtifactType marks the manifest as this project's plugin.
	ArtifactType = "application/vnd.ratify-aws-signer.plugin.v1"
	// LayerMediaType is the binary's media type. Ratify ignores media
	// types; it takes the first layer.
	LayerMediaType = "application/octet-stream"
	// PlatformAnnotation records the binary's os/arch on the manifest.
	PlatformAnnotation = "io.github.ratify-aws-signer.plugin.platform"
	// FileName is the layer's title: the binary's name in Ratify's plugin
	// directory and the Verifier's spec.name.
	FileName = "awssigner"
)

// Artifact returns the plugin artifact of the binary data, after checking
// that it is a static Linux executable. Created is the manifest's
// org.opencontainers.image.created (the commit time, so a rebuild gives the
// same digest); labels are added as annotations.
func Artifact(data []byte, version string, created time.Time, annotations map[string]string) (v1.Image, string, error) {
	platform, err := CheckBinary(data)
	if err != nil {
		return nil, "", err
	}
	a := map[string]string{
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.title":       FileName,
		"org.opencontainers.image.description": "awssigner Ratify v1 verifier plugin (AWS Signer signatures), " + platform,
		PlatformAnnotation:                     platform,
	}
	if version != "" {
		a["org.opencontainers.image.version"] = version
	}
	for k, v := range annotations {
		if _, set := a[k]; !set {
			a[k] = v
		}
	}
	img, err := artifact.New(artifact.Options{
		ArtifactType: ArtifactType,
		Blobs: []artifact.Blob{{MediaType: LayerMediaType, Data: data,
			Annotations: map[string]string{"org.opencontainers.image.title": FileName}}},
		Annotations: a,
	})
	return img, platform, err
}

// ErrNotRunnable: the file is not a binary Ratify's image can run.
var ErrNotRunnable = errors.New("not a static Linux executable")

// CheckBinary makes sure data is what Ratify's image can run: a statically
// linked Linux ELF executable. It returns its platform (linux/<arch>).
func CheckBinary(data []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("%w: not an ELF executable: build the plugin for Linux (make build, GOOS=linux)", ErrNotRunnable)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%w: ELF type %s is not an executable", ErrNotRunnable, f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("%w: ELF OS/ABI %s is not Linux", ErrNotRunnable, f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 4096))
			return "", fmt.Errorf("%w: dynamically linked (interpreter %s): Ratify's distroless image has no C library; build with CGO_ENABLED=0 (make build)", ErrNotRunnable, strings.TrimRight(string(interp), "\x00"))
		}
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64:  "amd64",
		elf.EM_AARCH64: "arm64",
		elf.EM_386:     "386",
		elf.EM_ARM:     "arm",
		elf.EM_PPC64:   "ppc64le",
		elf.EM_S390:    "s390x",
		elf.EM_RISCV:   "riscv64",
	}[f.Machine]
	if !ok {
		return "", fmt.Errorf("%w: ELF machine %s is not a Go platform Ratify is built for", ErrNotRunnable, f.Machine)
	}
	return "linux/" + arch, nil
}
