// Command publish-plugin pushes the awssigner plugin binary to an OCI
// registry in the shape Ratify v1's dynamic plugins download: an OCI image
// manifest whose first (and only) layer is the binary. Ratify, given the
// Verifier's spec.source.artifact (the chart's plugin.source.artifact) and
// RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=1, writes that layer to
// <plugin dir>/awssigner and runs it.
//
// Usage, from the repository root:
//
//	make build
//	go run ./test/cmd/publish-plugin -file bin/awssigner \
//	  -ref 111122223333.dkr.ecr.us-west-2.amazonaws.com/ratify-plugins/awssigner:0.1.0-linux-amd64
//
// It prints the pushed reference pinned by digest, the value to give the
// chart. Credentials: Amazon ECR through ecr:GetAuthorizationToken with the
// AWS SDK's default credentials, other registries through the Docker
// credential store (docker login). The binary must be a static Linux ELF
// executable (make build), since Ratify's image has no C library; Ratify
// downloads the layer without looking at the platform, so publish one
// reference per CPU architecture of your nodes.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ecrauth"
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
)

// Options say what to publish where.
type Options struct {
	// File is the plugin binary.
	File string
	// Reference is <registry>/<repository>:<tag>.
	Reference string
	// PlainHTTP talks HTTP to the registry (local registries).
	PlainHTTP bool
	// Version goes to org.opencontainers.image.version when set.
	Version string
	// Created is the manifest's creation time (default: now, or
	// SOURCE_DATE_EPOCH when set, so a rebuild gives the same digest).
	Created time.Time
	// Client is the registry HTTP client (default: ECR and Docker
	// credentials with retries).
	Client remote.Client
}

// Result describes what was pushed.
type Result struct {
	// Manifest is the pushed manifest.
	Manifest ocispec.Descriptor
	// Layer is the binary's layer.
	Layer ocispec.Descriptor
	// Platform is the binary's os/arch, e.g. linux/amd64.
	Platform string
	// Pinned is <registry>/<repository>@<manifest digest>.
	Pinned string
}

func main() {
	var o Options
	flag.StringVar(&o.File, "file", "bin/awssigner", "plugin binary to publish (make build)")
	flag.StringVar(&o.Reference, "ref", "", "where to push: <registry>/<repository>:<tag>")
	flag.BoolVar(&o.PlainHTTP, "plain-http", false, "talk plain HTTP to the registry (local registries)")
	flag.StringVar(&o.Version, "version", "", "plugin version for the org.opencontainers.image.version annotation")
	flag.Parse()
	if o.Reference == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: publish-plugin -file bin/awssigner -ref <registry>/<repository>:<tag> [-plain-http] [-version v]")
		os.Exit(2)
	}
	created, err := sourceDate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "publish-plugin:", err)
		os.Exit(2)
	}
	o.Created = created

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Publish(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "publish-plugin:", err)
		os.Exit(1)
	}
	fmt.Printf("pushed %s (%s, %d bytes) as %s\n", o.File, res.Platform, res.Layer.Size, o.Reference)
	fmt.Printf("manifest %s, plugin layer %s\n", res.Manifest.Digest, res.Layer.Digest)
	fmt.Printf("chart value (pinned by digest):\n  --set plugin.source.artifact=%s\n", res.Pinned)
}

// sourceDate returns SOURCE_DATE_EPOCH when set, else now.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// Publish pushes the binary as the single layer of an OCI image manifest
// and tags it.
func Publish(ctx context.Context, o Options) (*Result, error) {
	ref, err := registry.ParseReference(o.Reference)
	if err != nil {
		return nil, fmt.Errorf("-ref %q: %w", o.Reference, err)
	}
	if ref.Reference == "" {
		return nil, fmt.Errorf("-ref %q has no tag: give <registry>/<repository>:<tag>", o.Reference)
	}
	if _, err := digest.Parse(ref.Reference); err == nil {
		return nil, fmt.Errorf("-ref %q is a digest: give a tag; the digest is printed after the push", o.Reference)
	}
	data, err := os.ReadFile(o.File)
	if err != nil {
		return nil, err
	}
	platform, err := CheckBinary(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.File, err)
	}

	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = o.PlainHTTP
	repo.Client = o.Client
	if repo.Client == nil {
		repo.Client = defaultClient()
	}

	layer := content.NewDescriptorFromBytes(LayerMediaType, data)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: filepath.Base(o.File)}
	if err := pushIfAbsent(ctx, repo, layer, data); err != nil {
		return nil, fmt.Errorf("push the plugin layer: %w", err)
	}

	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC().Truncate(time.Second)
	}
	annotations := map[string]string{
		ocispec.AnnotationCreated:     created.Format(time.RFC3339),
		ocispec.AnnotationTitle:       "awssigner",
		ocispec.AnnotationDescription: "awssigner Ratify v1 verifier plugin (AWS Signer signatures), " + platform,
		PlatformAnnotation:            platform,
	}
	if o.Version != "" {
		annotations[ocispec.AnnotationVersion] = o.Version
	}
	manifest, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: annotations,
	})
	if err != nil {
		return nil, fmt.Errorf("push the manifest: %w", err)
	}
	if err := repo.Tag(ctx, manifest, ref.Reference); err != nil {
		return nil, fmt.Errorf("tag %s: %w", ref.Reference, err)
	}
	return &Result{
		Manifest: manifest,
		Layer:    layer,
		Platform: platform,
		Pinned:   ref.Registry + "/" + ref.Repository + "@" + manifest.Digest.String(),
	}, nil
}

func pushIfAbsent(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, data []byte) error {
	ok, err := repo.Exists(ctx, desc)
	if err != nil || ok {
		return err
	}
	return repo.Push(ctx, desc, bytes.NewReader(data))
}

// CheckBinary makes sure data is what Ratify's image can run: a statically
// linked Linux ELF executable. It returns its platform (linux/<arch>).
func CheckBinary(data []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return "", errors.New("not an ELF executable: build the plugin for Linux (make build, GOOS=linux)")
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("ELF type %s is not an executable", f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("ELF OS/ABI %s is not Linux", f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			return "", fmt.Errorf("dynamically linked (interpreter %s): Ratify's distroless image has no C library; build with CGO_ENABLED=0 (make build)", strings.TrimRight(string(interp), "\x00"))
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
		return "", fmt.Errorf("ELF machine %s is not a Go platform Ratify is built for", f.Machine)
	}
	return "linux/" + arch, nil
}

// defaultClient authenticates to Amazon ECR with ecr:GetAuthorizationToken
// (SDK default credentials) and to other registries with the Docker
// credential store.
func defaultClient() *auth.Client {
	ecr := ecrauth.New(ecrauth.Options{})
	docker := sync.OnceValues(func() (credentials.Store, error) {
		return credentials.NewStoreFromDocker(credentials.StoreOptions{})
	})
	return &auth.Client{
		Client: retry.DefaultClient,
		Cache:  auth.NewCache(),
		Credential: func(ctx context.Context, hostport string) (auth.Credential, error) {
			if ecrauth.IsECRHost(hostport) {
				return ecr.Credential(ctx, hostport)
			}
			store, err := docker()
			if err != nil {
				return auth.EmptyCredential, fmt.Errorf("read the Docker credential store (~/.docker/config.json or $DOCKER_CONFIG): %w", err)
			}
			return credentials.Credential(store)(ctx, hostport)
		},
	}
}
