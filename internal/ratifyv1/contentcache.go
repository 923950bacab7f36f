package ratifyv1

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

// Ratify starts one plugin process per signature, so nothing read from the
// registry survives a run in memory. contentCache keeps signature
// manifests and envelopes on disk, by digest, in the run's private store
// cache slot (see storecache.go: held with flock, so no other process
// writes it), and saves the registry round trips on later runs. Nothing
// read from it is trusted: an entry is used only when its size and digest
// match the descriptor, else it is removed and the registry asked; and an
// entry is written only after the whole body matched its descriptor.

// maxCacheEntries bounds one slot's content cache; past it the cache
// starts afresh (a few MiB at most: entries are KiB-sized).
const maxCacheEntries = 1024

type contentCache struct {
	dir  string
	next signature.Fetcher
}

// newContentCache returns next with a cache in dir, or next itself when dir
// cannot be used.
func newContentCache(dir string, next signature.Fetcher) signature.Fetcher {
	if dir == "" {
		return next
	}
	if des, err := os.ReadDir(dir); err == nil && len(des) > maxCacheEntries {
		os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return next
	}
	return &contentCache{dir: dir, next: next}
}

func (c *contentCache) path(d ocispec.Descriptor) (string, bool) {
	if d.Digest.Validate() != nil || d.Size <= 0 || d.Size > signature.MaxEnvelopeSize {
		return "", false
	}
	return filepath.Join(c.dir, d.Digest.Algorithm().String()+"-"+d.Digest.Encoded()), true
}

// Fetch implements signature.Fetcher.
func (c *contentCache) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	p, ok := c.path(d)
	if !ok {
		return c.next.Fetch(ctx, d)
	}
	if b, ok := readCached(p, d); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	rc, err := c.next.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	return &recorder{rc: rc, d: d, path: p}, nil
}

// readCached returns the entry at p when it is a regular file holding
// exactly the content d describes; anything else is removed.
func readCached(p string, d ocispec.Descriptor) ([]byte, bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, false
	}
	if !fi.Mode().IsRegular() || fi.Size() != d.Size {
		os.Remove(p)
		return nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, d.Size+1))
	if err != nil || int64(len(b)) != d.Size || d.Digest.Algorithm().FromBytes(b) != d.Digest {
		os.Remove(p)
		return nil, false
	}
	return b, true
}

// recorder passes a registry body through and, once it was read whole and
// matched its descriptor, stores it.
type recorder struct {
	rc   io.ReadCloser
	d    ocispec.Descriptor
	path string
	buf  bytes.Buffer
	bad  bool
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if !r.bad {
		if int64(r.buf.Len()+n) > r.d.Size {
			r.bad, r.buf = true, bytes.Buffer{}
		} else {
			r.buf.Write(p[:n])
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		r.bad = true
	}
	return n, err
}

func (r *recorder) Close() error {
	err := r.rc.Close()
	if !r.bad && int64(r.buf.Len()) == r.d.Size && r.d.Digest.Algorithm().FromBytes(r.buf.Bytes()) == r.d.Digest {
		store(r.path, r.buf.Bytes())
	}
	return err
}

// store writes an entry atomically (mode 0600); failures only lose the
// cache.
func store(p string, b []byte) {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}
