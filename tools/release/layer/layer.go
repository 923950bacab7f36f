// Package layer builds reproducible OCI image layers: a tar of the given
// entries in path order, every timestamp set to one fixed time, explicit
// owner and mode, no user or group names, gzip-compressed once in memory.
// The same entries and time always give the same digest.
package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Entry is one file or directory of a layer.
type Entry struct {
	// Path is absolute, slash-separated, without a trailing slash
	// ("/usr/local/bin/awssigner").
	Path string
	// Mode holds the permission bits (and fs.ModeDir for a directory,
	// fs.ModeSticky for /tmp).
	Mode fs.FileMode
	// UID and GID own the entry.
	UID, GID int
	// Data is a regular file's content (nil for a directory).
	Data []byte
}

// Layer is a built layer: its compressed bytes, digests and entries.
type Layer struct {
	compressed []byte
	digest     v1.Hash
	diffID     v1.Hash
	// Entries are the layer's entries in tar order.
	Entries []Entry
}

// Build writes the entries, sorted by path, as a tar whose every header has
// mtime (and no access or change time), then gzips it at the default level
// with an empty gzip header. Parent directories are not added implicitly:
// list them (owners and modes are part of the layer's contract).
func Build(entries []Entry, mtime time.Time) (*Layer, error) {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for i, e := range sorted {
		if !strings.HasPrefix(e.Path, "/") || path.Clean(e.Path) != e.Path || e.Path == "/" {
			return nil, fmt.Errorf("layer entry %q: want a clean absolute path other than /", e.Path)
		}
		if i > 0 && sorted[i-1].Path == e.Path {
			return nil, fmt.Errorf("layer entry %q listed twice", e.Path)
		}
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.Path, "/"),
			Mode:    int64(e.Mode.Perm()),
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime.UTC(),
			// USTAR: no access/change times, no names; every path here fits.
			Format: tar.FormatUSTAR,
		}
		if e.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if e.Mode.IsDir() {
			if e.Data != nil {
				return nil, fmt.Errorf("layer entry %q: a directory has no data", e.Path)
			}
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", e.Path, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &Layer{
		compressed: gz.Bytes(),
		digest:     sha(gz.Bytes()),
		diffID:     sha(raw.Bytes()),
		Entries:    sorted,
	}, nil
}

func sha(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
}

// Digest is the compressed layer's digest (v1.Layer).
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID is the uncompressed tar's digest (v1.Layer).
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Compressed returns the gzip bytes (v1.Layer).
func (l *Layer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}

// Uncompressed returns the tar (v1.Layer).
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.compressed))
}

// Size is the compressed size (v1.Layer).
func (l *Layer) Size() (int64, error) { return int64(len(l.compressed)), nil }

// MediaType is the OCI gzip layer type (v1.Layer).
func (l *Layer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

var _ v1.Layer = (*Layer)(nil)
