// Package cli runs the awssigner binary as a person would (no
// RATIFY_VERIFIER_COMMAND in the environment) against a real local registry
// and the AWS Signer emulator: policy init, sign, verify, inspect, revoke,
// and the exit codes.
package cli

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

var binary string

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithPlugin(m, func(p string) { binary = p }))
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// env is the environment of every run: harness.Env plus extra variables.
type env struct {
	dir   string
	extra []string
}

func (e env) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(harness.Env(e.dir), e.extra...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

func (e env) runJSON(t *testing.T, v any, args ...string) result {
	t.Helper()
	r := e.run(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("%v: stdout is not JSON: %v\n%s", args, err, r)
	}
	return r
}

// fixture is a stack with a pushed image and the files verify needs.
type fixture struct {
	*harness.Stack
	env
	ref      string // <registry>/team/app:v1
	rootPEM  string // the emulator's root, for --trust-store-pem
	awsFlags []string
}

func newFixture(t *testing.T, referrers bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := harness.NewStack(harness.StackOptions{Referrers: referrers, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ref, _, err := s.PushImage(context.Background(), "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{Stack: s, env: env{dir: dir}, ref: ref, rootPEM: filepath.Join(dir, "root.pem")}
	if err := os.WriteFile(f.rootPEM, s.Emulator.CA().RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	f.awsFlags = []string{"--aws-endpoint", s.Emulator.URL(), "--plain-http"}
	return f
}

// verifyArgs are the arguments of verify with the emulator's root trusted.
func (f *fixture) verifyArgs(ref string, extra ...string) []string {
	args := append([]string{"verify", ref, "--trust-store-pem", f.rootPEM}, f.awsFlags...)
	return append(args, extra...)
}

type signOut struct {
	Reference                string `json:"reference"`
	SignatureDigest          string `json:"signatureDigest"`
	SigningProfileARN        string `json:"signingProfileArn"`
	SigningProfileVersionARN string `json:"signingProfileVersionArn"`
	SigningJobARN            string `json:"signingJobArn"`
}

type verifyOut struct {
	Reference  string `json:"reference"`
	Verdict    string `json:"verdict"`
	Verified   bool   `json:"verified"`
	Message    string `json:"message"`
	Signatures []struct {
		SignatureDigest          string   `json:"signatureDigest"`
		Verdict                  string   `json:"verdict"`
		Reason                   string   `json:"reason"`
		Message                  string   `json:"message"`
		SigningProfileARN        string   `json:"signingProfileArn"`
		SigningProfileVersionARN string   `json:"signingProfileVersionArn"`
		SigningJobARN            string   `json:"signingJobArn"`
		SigningTime              string   `json:"signingTime"`
		Expiry                   string   `json:"expiry"`
		RevocationStatus         string   `json:"revocationStatus"`
		RevokedEntities          []string `json:"revokedEntities"`
	} `json:"signatures"`
}

type inspectOut struct {
	Reference  string `json:"reference"`
	Signatures []struct {
		SignatureDigest          string `json:"signatureDigest"`
		Error                    string `json:"error"`
		SigningProfileARN        string `json:"signingProfileArn"`
		SigningProfileVersionARN string `json:"signingProfileVersionArn"`
		SigningJobARN            string `json:"signingJobArn"`
		SigningTime              string `json:"signingTime"`
		Expiry                   string `json:"expiry"`
		Payload                  struct {
			MatchesImage bool `json:"matchesImage"`
		} `json:"payload"`
		CertificateChain []struct {
			Subject  string `json:"subject"`
			Issuer   string `json:"issuer"`
			NotAfter string `json:"notAfter"`
			SHA256   string `json:"sha256"`
		} `json:"certificateChain"`
	} `json:"signatures"`
}

// TestSignVerifyInspectRevoke is the whole procedure, with the registry's
// referrers API and with the referrers tag schema.
func TestSignVerifyInspectRevoke(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers=%t", referrers), func(t *testing.T) {
			f := newFixture(t, referrers)

			// policy init writes the Ratify Verifier verify --config takes.
			r := f.run(t, "policy", "init", "--profile-arn", f.ProfileARN, "--format", "verifier")
			if r.code != 0 {
				t.Fatalf("policy init: %s", r)
			}
			verifierFile := filepath.Join(f.dir, "verifier.yaml")
			if err := os.WriteFile(verifierFile, []byte(r.stdout), 0o600); err != nil {
				t.Fatal(err)
			}

			// sign
			var signed signOut
			r = f.runJSON(t, &signed, append([]string{"sign", f.ref, "--profile-arn", f.ProfileARN}, f.awsFlags...)...)
			if r.code != 0 {
				t.Fatalf("sign: %s", r)
			}
			jobs := f.Emulator.Jobs()
			if len(jobs) != 1 {
				t.Fatalf("%d signing jobs", len(jobs))
			}
			job := jobs[0]
			if !strings.HasPrefix(signed.SignatureDigest, "sha256:") || signed.SigningJobARN != job.ARN || signed.SigningProfileVersionARN != f.VersionARN {
				t.Fatalf("sign output %+v, job %+v", signed, job)
			}

			// verify: verified, text and JSON
			args := f.verifyArgs(f.ref, "--config", verifierFile)
			r = f.run(t, args...)
			if r.code != 0 {
				t.Fatalf("verify: %s", r)
			}
			for _, want := range []string{"VERIFIED", signed.SignatureDigest, f.VersionARN, job.ARN, "not revoked", "signed", "expires"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("verify output lacks %q:\n%s", want, r.stdout)
				}
			}
			t.Logf("verify:\n%s", r.stdout)
			var v verifyOut
			if r = f.runJSON(t, &v, args...); r.code != 0 || v.Verdict != "verified" || !v.Verified || len(v.Signatures) != 1 {
				t.Fatalf("verify JSON: %s", r)
			}
			s := v.Signatures[0]
			if s.Verdict != "verified" || s.SigningProfileARN != f.ProfileARN || s.SigningJobARN != job.ARN || s.RevocationStatus != "notRevoked" || s.SigningTime == "" || s.Expiry == "" {
				t.Fatalf("signature report %+v", s)
			}

			// The quick flags give the same verdict.
			if r = f.run(t, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN)...); r.code != 0 {
				t.Fatalf("verify --trusted-profile: %s", r)
			}

			// inspect: profile and job, text and JSON
			r = f.run(t, "inspect", f.ref, "--plain-http")
			if r.code != 0 {
				t.Fatalf("inspect: %s", r)
			}
			for _, want := range []string{signed.SignatureDigest, f.VersionARN, job.ARN, "certificate chain", "sha256: ", "issuer: ", "the inspected image"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
				}
			}
			t.Logf("inspect:\n%s", r.stdout)
			var in inspectOut
			if r = f.runJSON(t, &in, "inspect", f.ref, "--plain-http"); r.code != 0 || len(in.Signatures) != 1 {
				t.Fatalf("inspect JSON: %s", r)
			}
			is := in.Signatures[0]
			if is.Error != "" || is.SigningProfileARN != f.ProfileARN || is.SigningProfileVersionARN != f.VersionARN || is.SigningJobARN != job.ARN ||
				!is.Payload.MatchesImage || len(is.CertificateChain) < 2 || len(is.CertificateChain[0].SHA256) != 64 {
				t.Fatalf("inspect signature %+v", is)
			}

			// revoke the job (found through inspect) and verify again
			if err := f.Emulator.RevokeJob(is.SigningJobARN); err != nil {
				t.Fatal(err)
			}
			r = f.run(t, args...)
			if r.code != 1 {
				t.Fatalf("verify after revocation: want exit 1, got %s", r)
			}
			for _, want := range []string{"REFUSED (revoked)", job.ARN, "revoked"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("refusal lacks %q:\n%s", want, r.stdout)
				}
			}
			t.Logf("verify after revocation:\n%s", r.stdout)
			v = verifyOut{}
			if r = f.runJSON(t, &v, args...); r.code != 1 || v.Verdict != "refused" || len(v.Signatures) != 1 {
				t.Fatalf("verify JSON after revocation: %s", r)
			}
			s = v.Signatures[0]
			if s.Reason != "revoked" || s.RevocationStatus != "revoked" || len(s.RevokedEntities) == 0 || s.RevokedEntities[0] != job.ARN || !strings.Contains(s.Message, job.ARN) {
				t.Fatalf("revoked signature report %+v", s)
			}
		})
	}
}

func TestVerifyUnsignedRefused(t *testing.T) {
	f := newFixture(t, true)
	r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN)...)
	if r.code != 1 || !strings.Contains(r.stdout, "no Notation signature found") {
		t.Fatalf("unsigned: want exit 1 and 'no Notation signature found', got %s", r)
	}
	var v verifyOut
	if r = f.runJSON(t, &v, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN)...); r.code != 1 || v.Verdict != "refused" || len(v.Signatures) != 0 {
		t.Fatalf("unsigned JSON: %s", r)
	}
}

func TestVerifyWrongProfileRefused(t *testing.T) {
	f := newFixture(t, true)
	if r := f.run(t, append([]string{"sign", f.ref, "--profile-arn", f.ProfileARN}, f.awsFlags...)...); r.code != 0 {
		t.Fatalf("sign: %s", r)
	}
	other, _, err := f.Emulator.CreateProfile("Other", 12)
	if err != nil {
		t.Fatal(err)
	}
	before := f.Emulator.Count(signeremu.OpGetRevocationStatus)
	r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", other)...)
	if r.code != 1 {
		t.Fatalf("wrong profile: want exit 1, got %s", r)
	}
	for _, want := range []string{"REFUSED (untrustedIdentity)", other, f.ProfileARN} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("refusal lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := f.Emulator.Count(signeremu.OpGetRevocationStatus) - before; n != 0 {
		t.Errorf("%d GetRevocationStatus calls for an untrusted profile", n)
	}
	// Audit only logs the untrusted identity.
	if r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", other, "--level", "audit")...); r.code != 0 || !strings.Contains(r.stdout, "warning") {
		t.Fatalf("audit: %s", r)
	}
}

func TestVerifyCouldNotCheck(t *testing.T) {
	f := newFixture(t, true)
	if r := f.run(t, append([]string{"sign", f.ref, "--profile-arn", f.ProfileARN}, f.awsFlags...)...); r.code != 0 {
		t.Fatalf("sign: %s", r)
	}
	f.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500})
	r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN, "--revocation-timeout", "1s")...)
	if r.code != 2 || !strings.Contains(r.stdout, "COULD NOT CHECK") {
		t.Fatalf("Signer failing: want exit 2, got %s", r)
	}
	// Permissive logs it and verifies.
	if r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN, "--level", "permissive", "--revocation-timeout", "1s")...); r.code != 0 {
		t.Fatalf("permissive: %s", r)
	}
	// An unreachable registry could not be checked either.
	f.Registry.Close()
	if r := f.run(t, f.verifyArgs(f.ref, "--trusted-profile", f.ProfileARN)...); r.code != 2 || !strings.Contains(r.stderr, "could not resolve") {
		t.Fatalf("registry down: want exit 2, got %s", r)
	}
}

func TestVerifyBadConfig(t *testing.T) {
	f := newFixture(t, true)
	bad := filepath.Join(f.dir, "bad.yaml")
	doc := `trustPolicyDoc:
  version: "1.0"
  trustPolicies:
  - name: p
    registryScopes: ["*"]
    signatureVerification: {levl: strict}
    trustStores: ["signingAuthority:aws-signer-ts"]
    trustedIdentities: ["` + f.ProfileARN + `"]
`
	if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.run(t, f.verifyArgs(f.ref, "--config", bad)...)
	if r.code != 2 || !strings.Contains(r.stderr, "trustPolicyDoc.trustPolicies[0].signatureVerification.levl") || !strings.Contains(r.stderr, bad) {
		t.Fatalf("bad config: want exit 2 naming the field, got %s", r)
	}
	var e struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exitCode"`
	}
	if r = f.runJSON(t, &e, f.verifyArgs(f.ref, "--config", bad)...); r.code != 2 || e.ExitCode != 2 || !strings.Contains(e.Error, "levl") {
		t.Fatalf("bad config JSON: %s", r)
	}
}

func TestSignErrors(t *testing.T) {
	f := newFixture(t, true)
	missing := f.Registry.Host + "/team/app:does-not-exist"
	r := f.run(t, append([]string{"sign", missing, "--profile-arn", f.ProfileARN}, f.awsFlags...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "could not resolve") || !strings.Contains(r.stderr, "does-not-exist") {
		t.Fatalf("missing tag: want exit 2, got %s", r)
	}
	jobARN := "arn:aws:signer:" + f.Emulator.Region() + ":" + f.Emulator.Account() + ":/signing-jobs/0b5d3c2e-0000-0000-0000-000000000000"
	r = f.run(t, append([]string{"sign", f.ref, "--profile-arn", jobARN}, f.awsFlags...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "not a signing-profile ARN") {
		t.Fatalf("job ARN: want exit 2, got %s", r)
	}
	if n := len(f.Emulator.Jobs()); n != 0 {
		t.Fatalf("%d signing jobs after failed signs", n)
	}
}

func TestHelp(t *testing.T) {
	e := env{dir: t.TempDir()}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"verify", "--help"}, {"inspect", "--help"}, {"sign", "--help"},
		{"policy", "--help"}, {"policy", "init", "--help"}, {"version", "--help"},
	} {
		r := e.run(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %s", args, r)
		}
	}
	if r := e.run(t, "frobnicate"); r.code != 2 {
		t.Errorf("unknown command: %s", r)
	}
}

// TestPluginPathIntact: with RATIFY_VERIFIER_COMMAND set the binary is the
// Ratify plugin, whatever the arguments.
func TestPluginPathIntact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "verify", "--help")
	cmd.Env = []string{"RATIFY_VERIFIER_COMMAND=VERIFY"}
	cmd.Stdin = strings.NewReader("{}")
	var so bytes.Buffer
	cmd.Stdout = &so
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v\n%s", err, so.String())
	}
	var obj struct {
		Code float64 `json:"code"`
		Msg  string  `json:"msg"`
	}
	if err := json.Unmarshal(so.Bytes(), &obj); err != nil || obj.Code != 4 || !strings.Contains(obj.Msg, "missing env") {
		t.Fatalf("want Ratify's error object with code 4, got %v %q", err, so.String())
	}
}
