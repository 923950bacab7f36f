package ratifyv1

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Ratify's ORAS store keeps an on-disk OCI layout (localCachePath) that
// Ratify shares with every plugin process. oras-go rewrites the layout's
// index.json in place, so a plugin opening the store while another process
// writes it can read an empty file, and skel then fails the run with code 7
// ("invalid OCI Image Index"). Several containers of one Pod verify
// concurrently, so this happens in practice (our Gatekeeper-engine benchmark
// hit it with ten containers). Each plugin run therefore gets a private
// layout directory, removed when the run ends.

// staleRun is how old a leftover run directory must be to be swept (runs
// that ended through skel's os.Exit leave theirs behind).
const staleRun = 10 * time.Minute

// isolateStoreCache rewrites the stdin document so the store uses a fresh
// private cache directory, makes os.Stdin serve the rewritten document, and
// returns a cleanup function. On any problem it leaves stdin as it was
// (with a warning) and returns a no-op.
func isolateStoreCache(log *Logger) func() {
	raw, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil {
		return func() {}
	}
	restore := func() { serveStdin(raw) }
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil {
		restore()
		return func() {}
	}
	var sc map[string]json.RawMessage
	var store map[string]any
	if json.Unmarshal(doc["storeConfig"], &sc) != nil || json.Unmarshal(sc["store"], &store) != nil || store == nil {
		restore()
		return func() {}
	}
	shared, _ := store["localCachePath"].(string)
	dir, err := runDir(shared)
	if err != nil {
		log.Warn("sharing Ratify's ORAS cache (no private directory: %v); concurrent runs may fail to open it", err)
		restore()
		return func() {}
	}
	store["localCachePath"] = dir
	if sc["store"], err = json.Marshal(store); err == nil {
		if doc["storeConfig"], err = json.Marshal(sc); err == nil {
			if b, err := json.Marshal(doc); err == nil {
				raw = b
			}
		}
	}
	serveStdin(raw)
	return func() { os.RemoveAll(dir) }
}

// runDir creates a private run directory under the first writable base:
// the system temp directory, else a directory inside Ratify's shared cache
// volume (writable in Ratify's chart even with a read-only root).
func runDir(shared string) (string, error) {
	bases := []string{filepath.Join(os.TempDir(), fmt.Sprintf("ratify-aws-signer-oras-%d", os.Getuid()))}
	if shared != "" {
		bases = append(bases, filepath.Join(shared, "awssigner-runs"))
	}
	var lastErr error
	for _, base := range bases {
		if err := os.MkdirAll(base, 0o700); err != nil {
			lastErr = err
			continue
		}
		sweep(base)
		dir, err := os.MkdirTemp(base, "run-")
		if err != nil {
			lastErr = err
			continue
		}
		return dir, nil
	}
	return "", lastErr
}

func sweep(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleRun)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.IsDir() && info.ModTime().Before(cutoff) {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// serveStdin replaces os.Stdin with a pipe that yields data.
func serveStdin(data []byte) {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	go func() {
		w.Write(data)
		w.Close()
	}()
	os.Stdin = r
}
