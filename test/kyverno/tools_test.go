package kyverno

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// moduleVersions lists, in dir, the module version of every package the
// patterns build (go list -deps).
func moduleVersions(t *testing.T, dir string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list in %s: %v: %s", dir, err, ee.Stderr)
		}
		t.Fatalf("go list in %s: %v", dir, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, version, ok := strings.Cut(sc.Text(), " "); ok {
			m[path] = version
		}
	}
	return m
}

// The Kyverno binary of make e2e (tools/kyverno) and these tests compile
// the same packages only if every module both use is at the same version:
// otherwise a cold CI compiles Kyverno's dependency tree twice. When this
// fails, raise tools/kyverno's requirements to the versions named here
// (go get module@version in tools/kyverno, then go mod tidy).
func TestToolVersionsMatch(t *testing.T) {
	tool := moduleVersions(t, "../../tools/kyverno", "github.com/kyverno/kyverno/cmd/kyverno")
	tests := moduleVersions(t, ".", "-test", "./...")
	if tool["github.com/kyverno/kyverno"] == "" {
		t.Fatal("tools/kyverno does not build github.com/kyverno/kyverno")
	}
	for path, v := range tests {
		if tv, ok := tool[path]; ok && tv != v {
			t.Errorf("%s: tools/kyverno builds %s, test/kyverno %s", path, tv, v)
		}
	}
}
