package ratifyv1

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// counting serves one body for every descriptor and counts fetches.
type counting struct {
	body  []byte
	calls int
}

func (c *counting) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	c.calls++
	return io.NopCloser(bytes.NewReader(c.body)), nil
}

func read(t *testing.T, f interface {
	Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
}, d ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := f.Fetch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(rc, d.Size+1))
	rc.Close()
	return b
}

func TestContentCacheKeepsOnlyVerifiedContent(t *testing.T) {
	content := []byte(`{"payload":"e30"}`)
	d := ocispec.Descriptor{MediaType: "application/jose+json", Digest: digest.SHA512.FromBytes(content), Size: int64(len(content))}
	dir := filepath.Join(t.TempDir(), "cache")
	remote := &counting{body: content}
	c := newContentCache(dir, remote)
	for i := 0; i < 3; i++ {
		if got := read(t, c, d); !bytes.Equal(got, content) {
			t.Fatalf("read %d: %q", i, got)
		}
	}
	if remote.calls != 1 {
		t.Fatalf("registry asked %d times, want 1", remote.calls)
	}

	// A corrupted entry is not served: it is removed and the registry asked.
	entry := filepath.Join(dir, "sha512-"+d.Digest.Encoded())
	if err := os.WriteFile(entry, bytes.Repeat([]byte("x"), len(content)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, d); !bytes.Equal(got, content) || remote.calls != 2 {
		t.Fatalf("corrupted entry: %q after %d calls", got, remote.calls)
	}

	// A registry body that does not match is passed on (the pipeline
	// refuses it) but never stored.
	other := ocispec.Descriptor{MediaType: "application/jose+json", Digest: digest.FromString("else"), Size: int64(len(content))}
	read(t, c, other)
	if _, err := os.Lstat(filepath.Join(dir, "sha256-"+other.Digest.Encoded())); !os.IsNotExist(err) {
		t.Fatalf("mismatching body was stored: %v", err)
	}
}
