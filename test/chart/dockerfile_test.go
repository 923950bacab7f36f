package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// The repository has no Dockerfile: tools/release builds the Ratify image
// with the plugin in Go (make image / make push, docs/release.md), on the
// upstream image pinned in tools/release/ratify/base.ref.

// releaseRatifyBase returns the pinned base's <repository>:<tag> (without
// the digest) from tools/release/ratify/base.ref.
func releaseRatifyBase(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "tools", "release", "ratify", "base.ref"))
	if err != nil {
		t.Fatal(err)
	}
	ref, _, _ := strings.Cut(strings.TrimSpace(string(b)), "@")
	return ref
}

// TestReleaseRatifyBase: the upstream image the release builds on is the
// one Ratify's chart runs by default, at the Ratify version go.mod pins.
func TestReleaseRatifyBase(t *testing.T) {
	base := releaseRatifyBase(t)
	ratifyDefaults, _ := renderRatify(t, filepath.Join(repoRoot, "docs", "ratify-values", "dynamic-plugin.yaml"))
	img := ratifyDefaults["image"].(map[string]any)
	if want := img["repository"].(string) + ":" + img["tag"].(string); base != want {
		t.Errorf("tools/release/ratify/base.ref is %s, Ratify's chart runs %s", base, want)
	}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.ParseLax("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mf.Require {
		if r.Mod.Path == ratifyModule && !strings.HasSuffix(base, ":"+r.Mod.Version) {
			t.Errorf("tools/release/ratify/base.ref is %s, go.mod pins Ratify %s", base, r.Mod.Version)
		}
	}
}

// stage and parseDockerfile keep TestDockerfileBaseIsRatifyChartImage
// (ratify_chart_test.go) compiling and meaningful until it is removed in
// favour of TestReleaseRatifyBase: the one "stage" is the release's base.
type stage struct{ from string }

func parseDockerfile(t *testing.T, _ string) (globals []string, stages []stage) {
	t.Helper()
	return nil, []stage{{from: releaseRatifyBase(t)}}
}
