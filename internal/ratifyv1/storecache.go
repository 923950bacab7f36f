package ratifyv1

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Ratify's ORAS store keeps an on-disk OCI layout (localCachePath) that
// Ratify shares with every plugin process. oras-go rewrites the layout's
// index.json in place, so a plugin opening the store while another process
// writes it can read an empty file, and skel then fails the run with code 7
// ("invalid OCI Image Index"). Several containers of one Pod verify
// concurrently, so this happens in practice (our Gatekeeper-engine benchmark
// hit it with ten containers). Each plugin run therefore uses a layout no
// other running process uses: one of a few slot directories, held with an
// exclusive flock for the life of the process (the kernel releases it even
// when skel exits early), so sequential runs still find a warm cache; when
// every slot is busy, a temporary directory removed at the end.

// slots is how many warm cache layouts are kept.
const slots = 8

// staleRun is how old a leftover temporary directory must be to be swept
// (runs that ended through skel's os.Exit leave theirs behind).
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
	dir, temporary, err := runDir(shared)
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
	if !temporary {
		return func() {}
	}
	return func() { os.RemoveAll(dir) }
}

// runDir returns a cache directory no other running process uses, under
// the first writable base: the system temp directory, else a directory
// inside Ratify's shared cache volume (writable in Ratify's chart even with
// a read-only root). temporary tells that it must be removed after the run.
func runDir(shared string) (dir string, temporary bool, err error) {
	bases := []string{filepath.Join(os.TempDir(), fmt.Sprintf("ratify-aws-signer-oras-%d", os.Getuid()))}
	if shared != "" {
		bases = append(bases, filepath.Join(shared, "awssigner-runs"))
	}
	for _, base := range bases {
		if err = os.MkdirAll(base, 0o700); err != nil {
			continue
		}
		if err = ownPrivateDir(base); err != nil {
			// A predictable name in a shared temporary directory: another
			// user may have made it first, to plant links or an endless
			// index.json. Use the next base.
			continue
		}
		for i := 0; i < slots; i++ {
			slot := filepath.Join(base, fmt.Sprintf("slot-%d", i))
			if lockSlot(slot + ".lock") {
				if err = healSlot(slot); err == nil {
					return slot, false, nil
				}
			}
		}
		sweep(base)
		if dir, err = os.MkdirTemp(base, "run-"); err == nil {
			return dir, true, nil
		}
	}
	return "", false, err
}

// maxSlotIndex bounds a slot's index.json: oras-go loads the whole index,
// and walks the manifests it lists, every time a run opens the store, so an
// ever-growing cache would make every run slower. A slot over the bound
// starts afresh (about 140 cached manifests).
const maxSlotIndex = 32 << 10

// healSlot makes sure a slot we hold holds a readable, bounded layout: a run
// killed while oras-go rewrote index.json (Ratify kills plugins at its
// deadline) leaves it truncated, which would fail every later run in this
// slot; and the layout is emptied once its index grows past maxSlotIndex.
//
// Nothing in a slot is followed: a slot that is not a directory of ours,
// or an index.json that is not a regular file of at most maxSlotIndex
// bytes, is removed first (Ratify's store would read the index whole).
func healSlot(slot string) error {
	if fi, err := os.Lstat(slot); err == nil && (!fi.IsDir() || ownPrivateDir(slot) != nil) {
		if err := os.RemoveAll(slot); err != nil {
			return err
		}
	}
	index := filepath.Join(slot, "index.json")
	if fi, err := os.Lstat(index); err == nil {
		bad := !fi.Mode().IsRegular() || fi.Size() > maxSlotIndex
		if !bad {
			b, err := os.ReadFile(index)
			bad = err != nil || !json.Valid(b)
		}
		if bad {
			if err := os.RemoveAll(slot); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(slot, 0o700); err != nil {
		return err
	}
	return ownPrivateDir(slot)
}

func sweep(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleRun)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "run-") {
			continue
		}
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
