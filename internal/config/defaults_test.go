package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultCacheDir(t *testing.T) {
	saved := RatifyCacheRoot
	t.Cleanup(func() { RatifyCacheRoot = saved })
	base := t.TempDir()

	t.Setenv("XDG_CACHE_HOME", filepath.Join(base, "xdg"))
	RatifyCacheRoot = base
	if dir, why := DefaultCacheDir(); dir != filepath.Join(base, "xdg", "ratify-aws-signer") || !strings.Contains(why, "XDG_CACHE_HOME") {
		t.Errorf("XDG set: %q (%s)", dir, why)
	}

	t.Setenv("XDG_CACHE_HOME", "relative/path") // ignored, as XDG says
	if dir, why := DefaultCacheDir(); dir != filepath.Join(base, "awssigner-revocation") || !strings.Contains(why, base) {
		t.Errorf("Ratify volume: %q (%s)", dir, why)
	}
	if des, _ := os.ReadDir(base); len(des) != 0 {
		t.Errorf("probe left %v", des)
	}

	t.Setenv("XDG_CACHE_HOME", "")
	wantTemp := filepath.Join(os.TempDir(), "ratify-aws-signer-"+strconv.Itoa(os.Getuid()))
	for _, root := range []string{filepath.Join(base, "missing"), filepath.Join(base, "file")} {
		os.WriteFile(filepath.Join(base, "file"), nil, 0o600)
		RatifyCacheRoot = root
		if dir, why := DefaultCacheDir(); dir != wantTemp || why == "" {
			t.Errorf("root %s: %q (%s), want %q", root, dir, why, wantTemp)
		}
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(base, "ro")
		os.Mkdir(ro, 0o500)
		RatifyCacheRoot = ro
		if dir, _ := DefaultCacheDir(); dir != wantTemp {
			t.Errorf("read-only volume: %q", dir)
		}
	}
}
