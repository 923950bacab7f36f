package hostile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
)

// FuzzCacheEntry puts arbitrary bytes in a revocation cache entry file
// (as a hostile neighbour on the cache volume could, with the plugin's own
// owner and mode) and reads it: no panic, and an answer only from an entry
// that is JSON naming exactly the key asked, saying what it says.
func FuzzCacheEntry(f *testing.F) {
	key := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	seedDir := f.TempDir()
	c, err := revocation.OpenDiskCache(seedDir, revocation.DiskCacheOptions{})
	if err != nil {
		f.Fatal(err)
	}
	c.Put(key, revocation.Answer{Region: "us-west-2"}, time.Hour)
	c.Put(other, revocation.Answer{Revoked: []string{"arn:aws:signer:us-west-2:111122223333:/signing-jobs/j"}, Region: "us-west-2"}, revocation.Forever)
	for _, k := range []string{key, other} {
		b, err := os.ReadFile(filepath.Join(seedDir, k+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add([]byte(strings.ReplaceAll(string(b), k, key)))
	}
	f.Add([]byte(`{"v":1,"key":"` + other + `"}`))
	f.Add([]byte(`{"v":2,"key":"` + key + `"}`))
	f.Add([]byte(`{"v":1,"key":"` + key + `","revoked":["arn:aws:signer:us-west-2:1:/signing-jobs/j"],"revoked":[]}`))
	f.Add([]byte(`{"v":1,"key":"` + key + `","key":"` + other + `"}`))
	f.Add([]byte(`{"v":1,"key":"` + key + `","expires":"1970-01-01T00:00:00Z"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})

	// One cache per process: each input is written over the same entry.
	dir := f.TempDir()
	fc, err := revocation.OpenDiskCache(dir, revocation.DiskCacheOptions{Warn: func(string, ...any) {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, key+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		a, ok := fc.Get(key)
		if !ok {
			return
		}
		var e struct {
			Key     string   `json:"key"`
			Revoked []string `json:"revoked"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("answer %+v from an entry that is not JSON (%v): %q", a, err, data)
		}
		if e.Key != key {
			t.Fatalf("answer for %s from an entry for %q: %q", key, e.Key, data)
		}
		if a.IsRevoked() != (len(e.Revoked) > 0) {
			t.Fatalf("answer revoked=%v from an entry listing %q: %q", a.IsRevoked(), e.Revoked, data)
		}
	})
}
