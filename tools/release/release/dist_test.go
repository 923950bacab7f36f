package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRefusesForeignDist: a directory Build did not write is never
// deleted.
func TestBuildRefusesForeignDist(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(keep, []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), Options{Repo: fx.repo, Dist: dir, Version: testVersion})
	if !errors.Is(err, ErrForeignDist) || !strings.Contains(err.Error(), "refusing to replace") {
		t.Fatalf("Build into a source directory: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
	}
}

// TestInterruptedBuildIsReplaced: a build stopped half way (marker, no
// release.json) leaves a directory the next build may replace.
func TestInterruptedBuildIsReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dist")
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, distMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := clearDist(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dir, err)
	}
}

// TestPushWithoutBuild: nothing built, nothing pushed.
func TestPushWithoutBuild(t *testing.T) {
	_, err := Push(context.Background(), PushOptions{Dist: t.TempDir(), Registry: "127.0.0.1:1/x", NoSign: true})
	if !errors.Is(err, ErrNotBuilt) || !strings.Contains(err.Error(), "make image") {
		t.Errorf("push of an empty dist: %v", err)
	}
}
