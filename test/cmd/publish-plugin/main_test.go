package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	ratifyplugin "github.com/ratify-project/ratify/pkg/common/plugin"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/registry"
)

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// pluginBinary builds the real plugin for Linux, statically, as `make
// build` does, once per test process.
func pluginBinary(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "publish-plugin-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "awssigner")
		cmd := exec.Command("go", "build", "-trimpath", "-o", pluginPath, "./plugins/verifier/awssigner")
		cmd.Dir = filepath.Join("..", "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = err
			t.Logf("%s", out)
		}
	})
	if pluginErr != nil {
		t.Fatalf("build the plugin: %v", pluginErr)
	}
	return pluginPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginPath != "" {
		os.RemoveAll(filepath.Dir(pluginPath))
	}
	os.Exit(code)
}

func startRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	r, err := registry.Start(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func publish(t *testing.T, host, file string) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Publish(ctx, Options{
		File:      file,
		Reference: host + "/ratify-plugins/awssigner:0.1.0-test",
		PlainHTTP: true,
		Version:   "0.1.0-test",
		Created:   time.Unix(1700000000, 0).UTC(),
		Client:    http.DefaultClient,
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return res
}

// TestPublishThenPull publishes the real plugin binary to a local registry
// and pulls it back by tag and by the printed digest reference: the
// manifest is an OCI image manifest whose only layer is the binary, byte
// for byte (the first layer is what Ratify downloads).
func TestPublishThenPull(t *testing.T) {
	bin := pluginBinary(t)
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	res := publish(t, reg.Host, bin)
	if !strings.HasPrefix(res.Platform, "linux/") {
		t.Errorf("platform %q", res.Platform)
	}

	ctx := context.Background()
	for _, ref := range []string{reg.Host + "/ratify-plugins/awssigner:0.1.0-test", res.Pinned} {
		repo, err := remote.NewRepository(ref)
		if err != nil {
			t.Fatal(err)
		}
		repo.PlainHTTP = true
		desc, raw, err := repo.FetchReference(ctx, repo.Reference.Reference)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		data, err := content.ReadAll(raw, desc)
		raw.Close()
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != res.Manifest.Digest || desc.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("%s: resolves to %s %s, want %s %s", ref, desc.MediaType, desc.Digest, ocispec.MediaTypeImageManifest, res.Manifest.Digest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.ArtifactType != ArtifactType || m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
			t.Errorf("artifactType %q, config %q", m.ArtifactType, m.Config.MediaType)
		}
		if len(m.Layers) != 1 {
			t.Fatalf("%d layers, want 1", len(m.Layers))
		}
		l := m.Layers[0]
		if l.MediaType != LayerMediaType || l.Annotations[ocispec.AnnotationTitle] != "awssigner" {
			t.Errorf("layer %+v", l)
		}
		if m.Annotations[ocispec.AnnotationVersion] != "0.1.0-test" || m.Annotations[PlatformAnnotation] != res.Platform ||
			m.Annotations[ocispec.AnnotationCreated] != "2023-11-14T22:13:20Z" {
			t.Errorf("manifest annotations %v", m.Annotations)
		}
		got, err := content.FetchAll(ctx, repo, l)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: first layer (%d bytes) differs from the binary (%d bytes)", ref, len(got), len(want))
		}
	}

	// Publishing the same binary again gives the same manifest.
	if again := publish(t, reg.Host, bin); again.Manifest.Digest != res.Manifest.Digest {
		t.Errorf("republish: %s, first %s", again.Manifest.Digest, res.Manifest.Digest)
	}
}

// TestRatifyDownloadsIt runs Ratify v1.4.6's own dynamic plugin download
// (pkg/common/plugin.DownloadPlugin, what the Verifier controller calls for
// spec.source) against the published artifact, over TLS as in a cluster,
// and checks it writes the binary, executable.
func TestRatifyDownloadsIt(t *testing.T) {
	bin := pluginBinary(t)
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	res := publish(t, reg.Host, bin)

	// Ratify speaks HTTPS only: a TLS front for the plain registry, trusted
	// through the default transport Ratify clones.
	backend, _ := url.Parse("http://" + reg.Host)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(backend))
	defer front.Close()
	pool := x509.NewCertPool()
	pool.AddCert(front.Certificate())
	transport := http.DefaultTransport.(*http.Transport)
	saved := transport.TLSClientConfig
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	defer func() { transport.TLSClientConfig = saved }()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // Ratify's default auth provider: no credentials

	frontHost := strings.TrimPrefix(front.URL, "https://")
	target := filepath.Join(t.TempDir(), "awssigner")
	pinned := strings.Replace(res.Pinned, reg.Host, frontHost, 1)
	if err := ratifyplugin.DownloadPlugin(ratifyplugin.PluginSource{Artifact: pinned}, target); err != nil {
		t.Fatalf("Ratify's DownloadPlugin(%s): %v", pinned, err)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Ratify wrote %d bytes, the binary has %d", len(got), len(want))
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v (%v), want 0700", fi.Mode(), err)
	}
	if _, err := CheckBinary(got); err != nil {
		t.Errorf("downloaded file: %v", err)
	}
}

// TestCheckBinary: only a static Linux executable is published.
func TestCheckBinary(t *testing.T) {
	data, err := os.ReadFile(pluginBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := CheckBinary(data); err != nil || !strings.HasPrefix(p, "linux/") {
		t.Errorf("plugin binary: %q, %v", p, err)
	}
	if _, err := CheckBinary([]byte("#!/bin/sh\necho hi\n")); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("script: %v", err)
	}
	// A dynamically linked system program, where there is one.
	for _, p := range []string{"/bin/sh", "/usr/bin/env"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if _, err := CheckBinary(data); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Logf("%s: %v (not dynamically linked here?)", p, err)
		} else {
			return
		}
	}
	t.Log("no dynamically linked program found to test with")
}

// TestPublishRefusesBadReferences: a tag is required; a digest is printed,
// not given.
func TestPublishRefusesBadReferences(t *testing.T) {
	for ref, want := range map[string]string{
		"localhost:5000/plugins/awssigner":                   "has no tag",
		"localhost:5000/plugins/awssigner@sha256:" + zeros(): "is a digest",
		"not a reference":                                    "-ref",
	} {
		_, err := Publish(context.Background(), Options{File: "unused", Reference: ref})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", ref, err, want)
		}
	}
}

func zeros() string { return strings.Repeat("0", 64) }
