// Package gobuild builds the awssigner binary from an exported source tree
// by running `go build`, the way every release artifact is built: static
// (CGO_ENABLED=0), -trimpath, no VCS stamping (the tree is an export; the
// commit is recorded in the image labels and the SBOM), stripped, with the
// version stamped into main.version. The same tree, toolchain and options
// give the same bytes.
package gobuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is the product's main package, relative to the root module.
const Package = "./plugins/verifier/awssigner"

// FIPSModule is the GOFIPS140 value of the -fips variant. Go 1.26 accepts
// off, latest, inprocess (the snapshot in validation, v1.26.0), certified
// (the CMVP-validated snapshot, v1.0.0-c2097c7c) or an exact snapshot
// version ($GOROOT/lib/fips140). certified is the module with a FIPS 140-3
// certificate; GovCloud / FedRAMP users ask for that one.
const FIPSModule = "certified"

// Platform is a Linux CPU architecture (amd64, arm64).
type Platform struct{ OS, Arch string }

// String is os/arch.
func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Options say what to build.
type Options struct {
	// Dir is the root module's directory (an exported tree).
	Dir string
	// Platform to build for.
	Platform Platform
	// Version goes to main.version.
	Version string
	// FIPS builds with GOFIPS140=FIPSModule.
	FIPS bool
	// Out is the binary's path.
	Out string
}

// Build runs go build and returns the binary's path.
func Build(ctx context.Context, o Options) (string, error) {
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return "", err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return "", err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-mod=readonly",
		"-ldflags", "-s -w -buildid= -X main.version=" + o.Version, "-o", out, Package}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	fips := "off"
	if o.FIPS {
		fips = FIPSModule
	}
	cmd.Env = append(cleanEnv(os.Environ()),
		"CGO_ENABLED=0", "GOOS="+o.Platform.OS, "GOARCH="+o.Platform.Arch, "GOFIPS140="+fips,
		"GOFLAGS=", "GOEXPERIMENT=", "GOAMD64=v1", "GOARM64=v8.0", "GOWORK=off")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s (%s, GOFIPS140=%s): %v\n%s", strings.Join(args, " "), o.Platform, fips, err, output.String())
	}
	return out, nil
}

// cleanEnv drops the variables that would change the binary behind the
// release's back (they are set explicitly above).
func cleanEnv(env []string) []string {
	drop := map[string]bool{"CGO_ENABLED": true, "GOOS": true, "GOARCH": true, "GOFIPS140": true, "GOFLAGS": true,
		"GOEXPERIMENT": true, "GOAMD64": true, "GOARM64": true, "GOWORK": true, "GODEBUG": true}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return out
}

// GoVersion is the toolchain `go build` runs in dir (reproducing a build
// needs the same one).
func GoVersion(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(os.Environ()), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
