package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFromBinary describes the release command itself, built here (a Go
// binary with dependency modules): the root package carries its SHA-256,
// the toolchain and every dependency module are packages, and the JSON is
// the same twice.
func TestFromBinary(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "release")
	if out, err := exec.Command("go", "build", "-o", exe, "../cmd/release").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	s := Subject{Name: "awssigner", Version: "1.2.3", Namespace: "https://example.test/sbom/x", Created: time.Unix(1700000000, 0), Source: "https://example.test/repo", Revision: "abc"}
	doc, err := FromBinary(data, s)
	if err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2023-11-14T22:13:20Z" || doc.DocumentNamespace != s.Namespace {
		t.Errorf("document header %+v", doc)
	}
	root := doc.Packages[0]
	if want := fmt.Sprintf("%x", sha256.Sum256(data)); root.Checksums[0].Value != want || root.VersionInfo != "1.2.3" || !strings.Contains(root.Comment, "revision abc") {
		t.Errorf("root package %+v", root)
	}
	names := map[string]bool{}
	for _, p := range doc.Packages {
		names[p.Name] = true
	}
	for _, want := range []string{"go", "golang.org/x/crypto/x509roots/fallback", "github.com/google/go-containerregistry"} {
		if !names[want] {
			t.Errorf("no package %s in %v", want, names)
		}
	}
	if len(doc.Relationships) != len(doc.Packages) {
		t.Errorf("%d relationships for %d packages", len(doc.Relationships), len(doc.Packages))
	}
	a, _ := doc.JSON()
	again, _ := FromBinary(data, s)
	b, _ := again.JSON()
	if !bytes.Equal(a, b) || !json.Valid(a) {
		t.Error("the JSON differs between two runs or is invalid")
	}
	if _, err := FromBinary([]byte("not a binary"), s); err == nil {
		t.Error("a non-binary was described")
	}
}
