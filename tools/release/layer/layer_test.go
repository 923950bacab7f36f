package layer

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestSameEntriesSameDigest(t *testing.T) {
	mtime := time.Unix(1700000000, 0)
	a := []Entry{{Path: "/b", Mode: 0o644, Data: []byte("b")}, {Path: "/a", Mode: fs.ModeDir | 0o755, UID: 7, GID: 8}, {Path: "/a/x", Mode: 0o755, Data: []byte("x")}}
	b := []Entry{a[2], a[0], a[1]}
	la, err := Build(a, mtime)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := Build(b, mtime)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := la.Digest()
	db, _ := lb.Digest()
	if da != db {
		t.Errorf("same entries in another order: %s, %s", da, db)
	}
	lc, _ := Build(a, mtime.Add(time.Second))
	if dc, _ := lc.Digest(); dc == da {
		t.Error("another time gives the same digest")
	}
	rc, err := la.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(mtime) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: times %s %s %s, names %q %q", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, h.Uname, h.Gname)
		}
		if h.Name == "a/" && (h.Uid != 7 || h.Gid != 8 || h.Typeflag != tar.TypeDir || h.Mode != 0o755) {
			t.Errorf("a/: %+v", h)
		}
	}
	if strings.Join(names, " ") != "a/ a/x b" {
		t.Errorf("tar order %q", names)
	}
	diff, _ := la.DiffID()
	if diff == da {
		t.Error("diff ID equals the compressed digest")
	}
}

func TestRefusesBadEntries(t *testing.T) {
	for _, e := range [][]Entry{
		{{Path: "relative", Mode: 0o644}},
		{{Path: "/a/../b", Mode: 0o644}},
		{{Path: "/", Mode: fs.ModeDir | 0o755}},
		{{Path: "/a", Mode: 0o644}, {Path: "/a", Mode: 0o644}},
		{{Path: "/d", Mode: fs.ModeDir | 0o755, Data: []byte("x")}},
	} {
		if _, err := Build(e, time.Unix(0, 0)); err == nil {
			t.Errorf("%+v accepted", e)
		}
	}
}

func TestStickyTmp(t *testing.T) {
	l, err := Build([]Entry{{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777}}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := l.Uncompressed()
	h, err := tar.NewReader(rc).Next()
	if err != nil || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v %v", h, err)
	}
}
