package release

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReproducible builds the same commit a second time into another
// directory and expects every digest, and every binary, to be the same.
func TestReproducible(t *testing.T) {
	first := built(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dist := filepath.Join(t.TempDir(), "dist")
	start := time.Now()
	second, err := Build(ctx, Options{Repo: fx.repo, Commit: first.Commit, Version: testVersion, Dist: dist, Source: first.Source, Licenses: first.Licenses})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second build: %s", time.Since(start).Round(100*time.Millisecond))
	if len(second.Digests) != 4 || len(second.RatifyLayers) != 2 {
		t.Fatalf("second build made %v and %v", second.Digests, second.RatifyLayers)
	}
	for k, d := range first.Digests {
		if second.Digests[k] != d {
			t.Errorf("%s: %s, then %s", k, d, second.Digests[k])
		}
	}
	for k, d := range first.RatifyLayers {
		if second.RatifyLayers[k] != d {
			t.Errorf("Ratify layer %s: %s, then %s", k, d, second.RatifyLayers[k])
		}
	}
	for variant, byPlatform := range first.Binaries {
		for p, rel := range byPlatform {
			a, err1 := os.ReadFile(filepath.Join(fx.dist, rel))
			b, err2 := os.ReadFile(filepath.Join(dist, second.Binaries[variant][p]))
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("%s %s binary differs between the builds (%v %v)", variant, p, err1, err2)
			}
		}
	}
	if !first.Created.Equal(second.Created) || first.Commit != second.Commit {
		t.Errorf("commit/time %s %s, then %s %s", first.Commit, first.Created, second.Commit, second.Created)
	}
}
