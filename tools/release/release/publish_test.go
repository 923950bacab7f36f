package release

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/plugin"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/ratify"
)

// TestPublishPlugin publishes one built binary the way `release
// publish-plugin` does, pulls it back by the printed digest and publishes
// it again with SOURCE_DATE_EPOCH: same digest.
func TestPublishPlugin(t *testing.T) {
	m := built(t)
	file := filepath.Join(fx.dist, m.Binaries[VariantStd]["linux/amd64"])
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	host := startRegistry(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	ctx := context.Background()
	pinned, platform, err := PublishPlugin(ctx, file, host+"/ratify-plugins/awssigner:0.1.0-test", "0.1.0-test", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if platform != "linux/amd64" {
		t.Errorf("platform %s", platform)
	}
	d, err := name.NewDigest(pinned)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := img.Manifest()
	if mf.ArtifactType != plugin.ArtifactType || mf.Annotations["org.opencontainers.image.created"] != "2023-11-14T22:13:20Z" || mf.Annotations["org.opencontainers.image.version"] != "0.1.0-test" {
		t.Errorf("manifest %+v", mf)
	}
	ls, _ := img.Layers()
	rc, _ := ls[0].Compressed()
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, want) {
		t.Errorf("first layer (%d bytes) is not the binary (%d bytes)", len(got), len(want))
	}
	again, _, err := PublishPlugin(ctx, file, host+"/ratify-plugins/awssigner:0.1.0-test", "0.1.0-test", true, nil)
	if err != nil || again != pinned {
		t.Errorf("republish: %s %v, first %s", again, err, pinned)
	}
}

func TestPublishPluginRefusesBadReferences(t *testing.T) {
	for ref, want := range map[string]string{
		"localhost:5000/plugins/awssigner":                                   "want <registry>/<repository>:<tag>",
		"localhost:5000/plugins/awssigner@sha256:" + strings.Repeat("0", 64): "is a digest",
		"not a reference": "-ref",
	} {
		_, _, err := PublishPlugin(context.Background(), "unused", ref, "", true, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", ref, err, want)
		}
	}
}

// TestCheckBinary: only a static Linux executable is published.
func TestCheckBinary(t *testing.T) {
	m := built(t)
	for p, rel := range m.Binaries[VariantStd] {
		data, err := os.ReadFile(filepath.Join(fx.dist, rel))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := plugin.CheckBinary(data); err != nil || got != p {
			t.Errorf("%s binary: %q, %v", p, got, err)
		}
	}
	if _, err := plugin.CheckBinary([]byte("#!/bin/sh\necho hi\n")); !errors.Is(err, plugin.ErrNotRunnable) || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("script: %v", err)
	}
	for _, p := range []string{"/bin/sh", "/usr/bin/env"} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if _, err := plugin.CheckBinary(data); !errors.Is(err, plugin.ErrNotRunnable) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("%s (dynamically linked): %v", p, err)
		}
		return
	}
	t.Log("no dynamically linked program found to test with")
}

// TestRatifyBaseMustBePinned: a push never builds on a movable tag.
func TestRatifyBaseMustBePinned(t *testing.T) {
	if _, err := ratify.CheckPinned("ghcr.io/notaryproject/ratify:v1.4.6"); !errors.Is(err, ratify.ErrNotPinned) || !strings.Contains(err.Error(), "base.ref") {
		t.Errorf("tag only: %v", err)
	}
	if _, err := ratify.CheckPinned("ghcr.io/notaryproject/ratify:v1.4.6@sha256:" + strings.Repeat("a", 64)); err != nil {
		t.Errorf("pinned: %v", err)
	}
	_, err := Push(context.Background(), PushOptions{Dist: fx.dist, Registry: "127.0.0.1:1/x", RatifyBase: "ghcr.io/notaryproject/ratify:v1.4.6", NoSign: true})
	if !errors.Is(err, ratify.ErrNotPinned) {
		t.Errorf("push on a tag-only base: %v", err)
	}
}
