// Package integration runs the awssigner plugin inside the real Ratify
// v1.4.6 binary against a real registry and the AWS Signer emulator.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

var (
	ratifyBin string
	pluginDir string
)

// TestMain builds the plugin once. Without the Ratify binary the tests are
// skipped, unless REQUIRE_INTEGRATION=1 (as `make test` sets), where that is
// a failure.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "awssigner-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		var err error
		ratifyBin, err = harness.RatifyBinary()
		if err != nil {
			if os.Getenv("REQUIRE_INTEGRATION") == "1" {
				fmt.Fprintln(os.Stderr, "FAIL:", err)
				return 1
			}
			fmt.Fprintln(os.Stderr, "skipping Ratify integration tests:", err)
			return 0
		}
		pluginDir = filepath.Join(dir, "plugins")
		if err := os.MkdirAll(pluginDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := harness.PluginBinary(pluginDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func newStack(t *testing.T, referrers bool) *harness.Stack {
	t.Helper()
	s, err := harness.NewStack(harness.StackOptions{Referrers: referrers, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// verify runs `ratify verify` with one awssigner verifier.
func verify(t *testing.T, s *harness.Stack, subject, policy string, verifiers ...map[string]any) *harness.VerifyOutput {
	t.Helper()
	cfg, err := s.RatifyConfig(pluginDir, policy, verifiers...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := harness.RatifyVerify(ctx(t), ratifyBin, s.Dir, cfg, subject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ratify verify -s %s: stderr:\n%s", subject, out.Stderr)
		}
	})
	return out
}

// awsReports returns the reports of the awssigner verifier.
func awsReports(out *harness.VerifyOutput) []harness.Report {
	var r []harness.Report
	for _, rep := range out.VerifierReports {
		if rep.Type == "awssigner" {
			r = append(r, rep)
		}
	}
	return r
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}
