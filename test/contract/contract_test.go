// Package contract runs the awssigner binary the way Ratify does (three
// environment variables, a JSON document on stdin) and checks what Ratify
// relies on: one line of JSON on stdout, exit codes, error objects, plain
// log lines on stderr, and an answer before Ratify's deadline.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

var plugin string

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithPlugin(m, func(p string) { plugin = p }))
}

type run struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func runPlugin(t *testing.T, env map[string]string, stdin []byte) run {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, plugin)
	cmd.Env = harness.Env(t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := run{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func ratifyEnv(subject, version string) map[string]string {
	return map[string]string{"RATIFY_VERIFIER_COMMAND": "VERIFY", "RATIFY_VERIFIER_SUBJECT": subject, "RATIFY_VERIFIER_VERSION": version}
}

type stack struct {
	*harness.Stack
	ref     string
	sigDesc map[string]any
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := context.Background()
	ref, desc, err := s.PushImage(c, "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	sig, _, err := s.Sign(c, "team/app", desc, "")
	if err != nil {
		t.Fatal(err)
	}
	return &stack{Stack: s, ref: ref, sigDesc: map[string]any{
		"mediaType": sig.MediaType, "digest": sig.Digest, "size": sig.Size, "artifactType": "application/vnd.cncf.notary.signature",
	}}
}

func (s *stack) stdin(t *testing.T, config map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"config":        config,
		"storeConfig":   map[string]any{"version": "1.0.0", "pluginBinDirs": nil, "store": map[string]any{"name": "oras", "useHttp": true, "localCachePath": filepath.Join(s.Dir, "oras")}},
		"referenceDesc": s.sigDesc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oneJSONLine asserts stdout is exactly one line holding one JSON object.
func oneJSONLine(t *testing.T, r run) map[string]any {
	t.Helper()
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("stdout is not exactly one line:\n%q", r.stdout)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

// plainStderr asserts no stderr line could be mistaken for JSON by Ratify.
func plainStderr(t *testing.T, r run) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.Contains(line, "{") {
			t.Errorf("stderr line with a brace (Ratify would try it as JSON): %q", line)
		}
	}
}

func TestVerificationIsOneJSONLine(t *testing.T) {
	s := newStack(t)
	good := runPlugin(t, ratifyEnv(s.ref, "1.0.0"), s.stdin(t, s.VerifierConfig("verifier-awssigner", "strict", nil, nil)))
	if good.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", good.code, good.stdout, good.stderr)
	}
	v := oneJSONLine(t, good)
	if v["isSuccess"] != true || v["name"] != "verifier-awssigner" || v["type"] != "awssigner" {
		t.Fatalf("result %v", v)
	}
	plainStderr(t, good)

	bad := runPlugin(t, ratifyEnv(s.ref, "1.0.0"), s.stdin(t, s.VerifierConfig("verifier-awssigner", "strict", []string{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Nobody"}, nil)))
	if bad.code != 0 {
		t.Fatalf("a failed verification must exit 0, got %d: %s", bad.code, bad.stdout)
	}
	v = oneJSONLine(t, bad)
	if v["isSuccess"] != false || !strings.Contains(v["message"].(string), "Nobody") {
		t.Fatalf("result %v", v)
	}
	plainStderr(t, bad)
}

func TestErrorObjects(t *testing.T) {
	s := newStack(t)
	valid := s.VerifierConfig("verifier-awssigner", "strict", nil, nil)
	withKey := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		stdin []byte
		code  float64
		want  string
	}{
		{"missing environment", map[string]string{"RATIFY_VERIFIER_COMMAND": "VERIFY"}, s.stdin(t, valid), 4, "missing env"},
		{"unsupported version", ratifyEnv(s.ref, "0.1.0"), s.stdin(t, valid), 6, "0.1.0"},
		{"unknown command", map[string]string{"RATIFY_VERIFIER_COMMAND": "FOO", "RATIFY_VERIFIER_SUBJECT": s.ref, "RATIFY_VERIFIER_VERSION": "1.0.0"}, s.stdin(t, valid), 3, "FOO"},
		{"malformed stdin", ratifyEnv(s.ref, "1.0.0"), []byte(`{"config":`), 1, ""},
		{"unknown config key", ratifyEnv(s.ref, "1.0.0"), s.stdin(t, withKey("revocaton", map[string]any{})), 8, "revocaton: unknown key"},
		{"bad trust policy", ratifyEnv(s.ref, "1.0.0"), s.stdin(t, withKey("trustPolicyDoc", map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{"name": "p", "registryScopes": []string{"*"}, "signatureVerification": map[string]any{"level": "strictest"}}}})), 8, "trustPolicyDoc.trustPolicies[0].signatureVerification.level"},
		{"no trust policy", ratifyEnv(s.ref, "1.0.0"), s.stdin(t, map[string]any{"name": "v"}), 8, "trustPolicyDoc: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runPlugin(t, tc.env, tc.stdin)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstdout %s", r.code, r.stdout)
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
				t.Fatalf("stdout is not an error object: %v\n%s", err, r.stdout)
			}
			if e["code"] != tc.code {
				t.Errorf("code %v, want %v (%v)", e["code"], tc.code, e)
			}
			text := fmt.Sprint(e["msg"], " ", e["details"])
			if tc.want != "" && !strings.Contains(text, tc.want) {
				t.Errorf("error %q lacks %q", text, tc.want)
			}
		})
	}
}

// TestAnswersBeforeRatifysDeadline: a Signer that never answers and a
// registry that is slow still give a result before 2.9 s (Ratify's default
// request deadline), never a kill.
func TestAnswersBeforeRatifysDeadline(t *testing.T) {
	s := newStack(t)
	s.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Hang: true})
	cfg := s.VerifierConfig("verifier-awssigner", "strict", nil, map[string]any{"revocation": map[string]any{"timeout": "2s", "cacheTTL": "0s"}})
	r := runPlugin(t, ratifyEnv(s.ref, "1.0.0"), s.stdin(t, cfg))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	v := oneJSONLine(t, r)
	if v["isSuccess"] != false || !strings.Contains(v["message"].(string), "could not be checked") {
		t.Fatalf("result %v", v)
	}
	if r.took >= 2900*time.Millisecond {
		t.Fatalf("answered after %s, Ratify kills at 2.9 s", r.took)
	}
	t.Logf("hung Signer: answered in %s", r.took)

	// A registry that is unreachable.
	s.Registry.Close()
	r = runPlugin(t, ratifyEnv(s.ref, "1.0.0"), s.stdin(t, cfg))
	v = oneJSONLine(t, r)
	if r.code != 0 || v["isSuccess"] != false || !strings.Contains(v["message"].(string), "could not") {
		t.Fatalf("exit %d result %v", r.code, v)
	}
}
