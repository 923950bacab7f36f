package ratifyv1

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockSlotIsExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "slot.lock")
	if !lockSlot(p) {
		t.Fatal("first lock failed")
	}
	if lockSlot(p) {
		t.Fatal("a held slot was locked twice")
	}
}

func TestHealSlotRemovesATruncatedIndex(t *testing.T) {
	slot := filepath.Join(t.TempDir(), "slot-0")
	if err := os.MkdirAll(filepath.Join(slot, "blobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(slot, "index.json"), []byte(`{"schemaVersion":2,"manif`), 0o600)
	if err := healSlot(slot); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(slot, "index.json")); !os.IsNotExist(err) {
		t.Fatal("truncated index kept")
	}
	os.WriteFile(filepath.Join(slot, "index.json"), []byte(`{"schemaVersion":2}`), 0o600)
	if err := healSlot(slot); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(slot, "index.json")); err != nil {
		t.Fatal("a valid index was removed")
	}
	big := `{"schemaVersion":2,"manifests":[` + strings.Repeat(`{"digest":"sha256:00","size":1},`, maxSlotIndex/20) + `{}]}`
	os.WriteFile(filepath.Join(slot, "index.json"), []byte(big), 0o600)
	if err := healSlot(slot); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(slot, "index.json")); !os.IsNotExist(err) {
		t.Fatal("an oversized index was kept")
	}
}

func TestIsolateStoreCacheRewritesOnlyTheCachePath(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	in := `{"config":{"name":"v"},"storeConfig":{"version":"1.0.0","pluginBinDirs":null,"store":{"name":"oras","useHttp":true,"localCachePath":"/shared"}},"referenceDesc":{"digest":"sha256:00"}}`
	saved := os.Stdin
	defer func() { os.Stdin = saved }()
	serveStdin([]byte(in))
	var logs bytes.Buffer
	cleanup := isolateStoreCache(NewLogger(&logs))
	defer cleanup()
	out, err := io.ReadAll(os.Stdin)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Config      map[string]any `json:"config"`
		StoreConfig struct {
			Store map[string]any `json:"store"`
		} `json:"storeConfig"`
		ReferenceDesc map[string]any `json:"referenceDesc"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	dir, _ := doc.StoreConfig.Store["localCachePath"].(string)
	if dir == "/shared" || !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("cache path %q", dir)
	}
	if doc.StoreConfig.Store["useHttp"] != true || doc.Config["name"] != "v" || doc.ReferenceDesc["digest"] != "sha256:00" {
		t.Fatalf("other fields changed: %s", out)
	}
	// Garbage stays garbage, for skel to report.
	serveStdin([]byte("not json"))
	isolateStoreCache(NewLogger(&logs))()
	if b, _ := io.ReadAll(os.Stdin); string(b) != "not json" {
		t.Fatalf("stdin changed: %q", b)
	}
}
