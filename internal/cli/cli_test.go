package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

const (
	profile    = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"
	govProfile = "arn:aws-us-gov:signer:us-gov-west-1:111122223333:/signing-profiles/Gov/abcdef"
	jobARN     = "arn:aws:signer:us-west-2:111122223333:/signing-jobs/0b5d3c2e"
)

type run struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) run {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb, "test")
	return run{code, out.String(), errb.String()}
}

func TestPolicyInitOutputsDecode(t *testing.T) {
	for _, profiles := range [][]string{{profile}, {profile, govProfile}} {
		args := []string{"policy", "init", "--level", "permissive"}
		for _, p := range profiles {
			args = append(args, "--profile-arn", p)
		}
		check := func(what string, cfg *config.Config) {
			t.Helper()
			p := cfg.TrustPolicy.TrustPolicies[0]
			if p.SignatureVerification.VerificationLevel != "permissive" || len(p.TrustedIdentities) != len(profiles) || p.RegistryScopes[0] != "*" {
				t.Errorf("%s: policy %+v", what, p)
			}
			wantStores := 1
			if len(profiles) == 2 {
				wantStores = 2
			}
			if len(p.TrustStores) != wantStores {
				t.Errorf("%s: trust stores %v", what, p.TrustStores)
			}
		}

		r := runCLI(t, append(args, "--format", "config")...)
		if r.code != 0 {
			t.Fatalf("config: exit %d: %s", r.code, r.stderr)
		}
		cfg, err := config.Decode([]byte(r.stdout))
		if err != nil {
			t.Fatalf("config output does not decode: %v\n%s", err, r.stdout)
		}
		check("config", cfg)
		// Default format is config.
		if d := runCLI(t, args...); d.stdout != r.stdout {
			t.Errorf("default format differs from config:\n%s", d.stdout)
		}

		r = runCLI(t, append(args, "--format", "trustpolicy")...)
		if r.code != 0 {
			t.Fatalf("trustpolicy: exit %d: %s", r.code, r.stderr)
		}
		wrapped := `{"trustPolicyDoc": ` + r.stdout + `}`
		cfg, err = config.Decode([]byte(wrapped))
		if err != nil {
			t.Fatalf("wrapped trust policy does not decode: %v\n%s", err, wrapped)
		}
		check("trustpolicy", cfg)

		r = runCLI(t, append(args, "--format", "verifier")...)
		if r.code != 0 {
			t.Fatalf("verifier: exit %d: %s", r.code, r.stderr)
		}
		var m struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Spec       struct {
				Name          string          `json:"name"`
				ArtifactTypes string          `json:"artifactTypes"`
				Parameters    json.RawMessage `json:"parameters"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("verifier output is not YAML: %v", err)
		}
		if m.APIVersion != "config.ratify.deislabs.io/v1beta1" || m.Kind != "Verifier" || m.Spec.Name != "awssigner" || m.Spec.ArtifactTypes != "application/vnd.cncf.notary.signature" {
			t.Errorf("manifest %+v", m)
		}
		cfg, err = config.Decode(m.Spec.Parameters)
		if err != nil {
			t.Fatalf("spec.parameters does not decode: %v", err)
		}
		check("verifier", cfg)
		// verify --config takes the manifest as it is.
		doc, err := decodeConfigFile([]byte(r.stdout))
		if err != nil {
			t.Fatalf("decodeConfigFile(verifier): %v", err)
		}
		if cfg, err = doc.Resolve(); err != nil {
			t.Fatalf("resolve(verifier): %v", err)
		}
		check("verifier via --config", cfg)

		r = runCLI(t, append(args, "--format", "values")...)
		if r.code != 0 {
			t.Fatalf("values: exit %d: %s", r.code, r.stderr)
		}
		var v map[string]any
		if err := yaml.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatal(err)
		}
		if v["verificationLevel"] != "permissive" || len(v["trustedSigningProfiles"].([]any)) != len(profiles) {
			t.Errorf("values %v", v)
		}
	}
}

func TestPolicyInitOptions(t *testing.T) {
	r := runCLI(t, "policy", "init", "--profile-arn", profile, "--registry-scope", "111122223333.dkr.ecr.us-west-2.amazonaws.com/app",
		"--registry-scope", "111122223333.dkr.ecr.us-west-2.amazonaws.com/web", "--skip-revocation", "--format", "trustpolicy")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	cfg, err := config.Decode([]byte(`{"trustPolicyDoc": ` + r.stdout + `}`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.TrustPolicy.TrustPolicies[0]
	if len(p.RegistryScopes) != 2 || p.SignatureVerification.Override["revocation"] != "skip" {
		t.Errorf("policy %+v", p)
	}
}

func TestPolicyInitErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no profile", nil, "no trusted signing profile"},
		{"job ARN", []string{"--profile-arn", jobARN}, "not a signing-profile ARN"},
		{"not an ARN", []string{"--profile-arn", "Prod"}, "not an ARN"},
		{"level", []string{"--profile-arn", profile, "--level", "skip"}, `--level "skip"`},
		{"format", []string{"--profile-arn", profile, "--format", "yaml"}, `--format "yaml"`},
		{"scope with tag", []string{"--profile-arn", profile, "--registry-scope", "registry.example/app:v1"}, "--registry-scope"},
		{"scope without registry", []string{"--profile-arn", profile, "--registry-scope", "app"}, "--registry-scope"},
		{"star and more", []string{"--profile-arn", profile, "--registry-scope", "*", "--registry-scope", "registry.example/app"}, "cannot be combined"},
		{"unknown flag", []string{"--profile", profile}, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"policy", "init"}, tc.args...)...)
			if r.code != ExitFailed || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Fatalf("exit %d, want 2 with %q\nstdout %s\nstderr %s", r.code, tc.want, r.stdout, r.stderr)
			}
		})
	}
}

func TestJSONErrorObject(t *testing.T) {
	r := runCLI(t, "-o", "json", "policy", "init", "--profile-arn", jobARN)
	var e struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exitCode"`
	}
	if r.code != 2 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.ExitCode != 2 || !strings.Contains(e.Error, "signing-profile") {
		t.Fatalf("exit %d stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, "-o", "yaml", "version"); r.code != 2 || !strings.Contains(r.stderr, `--output "yaml"`) {
		t.Fatalf("bad --output: exit %d %s", r.code, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"verify", "--help"}, {"inspect", "--help"}, {"sign", "--help"},
		{"policy", "--help"}, {"policy", "init", "--help"}, {"version"}, {"help", "verify"},
	} {
		r := runCLI(t, args...)
		if r.code != 0 || r.stdout == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"policy"}, {"verify"}, {"verify", "a", "b"}, {"inspect"}, {"sign", "registry.example/app:v1"},
		{"verify", "registry.example/app:v1"},
		{"verify", "registry.example/app", "--trusted-profile", profile},
		{"verify", "registry.example/app:v1", "--config", "x.yaml", "--trusted-profile", profile},
		{"verify", "registry.example/app:v1", "--trusted-profile", profile, "--level", "strictest"},
		{"verify", "registry.example/app:v1", "--trusted-profile", profile, "--aws-region", "mars"},
		{"verify", "registry.example/app:v1", "--config", filepath.Join(t.TempDir(), "missing.yaml")},
		{"sign", "registry.example/app:v1", "--profile-arn", jobARN},
		{"sign", "registry.example/app:v1", "--profile-arn", profile + "/v1"},
		{"sign", "registry.example/app:v1", "--profile-arn", "arn:aws-iso:signer:us-iso-east-1:111122223333:/signing-profiles/P"},
		{"sign", "registry.example/app:v1", "--profile-arn", profile, "--aws-endpoint", "ftp://x"},
		{"sign", "registry.example/app:v1", "--profile-arn", profile, "--aws-region", "mars"},
	} {
		r := runCLI(t, args...)
		if r.code != ExitFailed || !strings.Contains(r.stderr, "Error: ") {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, r.code, r.stderr)
		}
	}
}

const verifierManifestYAML = `apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: verifier-awssigner}
spec:
  name: awssigner
  artifactTypes: application/vnd.cncf.notary.signature
  parameters:
    trustPolicyDoc:
      version: "1.0"
      trustPolicies:
      - name: p
        registryScopes: ["*"]
        signatureVerification: {LEVEL}
        trustStores: ["signingAuthority:aws-signer-ts"]
        trustedIdentities: ["arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"]
    revocation: {timeout: 3s}
`

func TestDecodeConfigFile(t *testing.T) {
	good := strings.Replace(verifierManifestYAML, "{LEVEL}", "{level: audit}", 1)
	cfg, err := decodeConfigFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustPolicyDoc.TrustPolicies[0].SignatureVerification.VerificationLevel != "audit" || time.Duration(*cfg.Revocation.Timeout) != 3*time.Second {
		t.Errorf("config %+v", cfg)
	}

	bad := strings.Replace(verifierManifestYAML, "{LEVEL}", "{levl: strict}", 1)
	_, err = decodeConfigFile([]byte(bad))
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "spec.parameters.trustPolicyDoc.trustPolicies[0].signatureVerification.levl" {
		t.Fatalf("error %v", err)
	}

	ratify := `{"store": {}, "policy": {}, "verifier": {"version": "1.0.0", "plugins": [
		{"name": "notation"},
		{"name": "verifier-awssigner", "type": "awssigner", "trustPolicyDoc": {"version": "1.0", "trustPolicies": [
			{"name": "p", "registryScopes": ["*"], "signatureVerification": {"level": "strict"}, "trustStores": ["signingAuthority:aws-signer-ts"], "trustedIdentities": ["` + profile + `"]}]},
		 "revocation": {"cacheTTL": 5}}]}}`
	_, err = decodeConfigFile([]byte(ratify))
	if !errors.As(err, &fe) || fe.Path != "verifier.plugins[1].revocation.cacheTTL" {
		t.Fatalf("config.json error %v", err)
	}
	if _, err := decodeConfigFile([]byte(strings.Replace(ratify, `"cacheTTL": 5`, `"cacheTTL": "0s"`, 1))); err != nil {
		t.Fatalf("config.json: %v", err)
	}

	plain := `trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: ["` + profile + `"]}]}
revocaton: {}`
	if _, err := decodeConfigFile([]byte(plain)); err == nil || !strings.Contains(err.Error(), "revocaton: unknown key") {
		t.Fatalf("plain config error %v", err)
	}

	for _, doc := range []string{
		"apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nspec: {}",
		"apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nspec: {name: awssigner}",
		"apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier",
		"[1, 2]",
		"",
		": : :",
	} {
		if _, err := decodeConfigFile([]byte(doc)); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

func TestOverrides(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc, err := policySpec{profiles: []string{profile}, level: "strict"}.document("--trusted-profile")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    overrides
		want string
	}{
		{overrides{trustStorePEM: []string{notPEM}}, "--trust-store-pem " + notPEM},
		{overrides{trustStorePEM: []string{filepath.Join(dir, "missing.pem")}}, "--trust-store-pem"},
		{overrides{awsRegion: "mars"}, "--aws-region"},
		{overrides{awsEndpoint: "signer.example"}, "--aws-endpoint"},
		{overrides{revocationTimeout: time.Hour}, "--revocation-timeout"},
		{overrides{awsRegion: "mars", revocationTimeout: time.Hour}, "--revocation-timeout: must be more than 0s and at most 30s, got 1h0m0s; --aws-region: \"mars\" is not an AWS region name"},
	} {
		_, err := tc.o.apply(&config.Document{TrustPolicyDoc: doc})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
	cfg, err := (overrides{awsRegion: "eu-west-1", awsEndpoint: "http://127.0.0.1:1", revocationTimeout: time.Second}).apply(&config.Document{TrustPolicyDoc: doc})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AWS.Region != "eu-west-1" || cfg.AWS.Endpoint != "http://127.0.0.1:1" || cfg.Revocation.Timeout != time.Second {
		t.Errorf("config %+v", cfg)
	}
}

func TestConclude(t *testing.T) {
	for _, tc := range []struct {
		verdicts []string
		want     string
	}{
		{nil, verdictRefused},
		{[]string{verdictRefused}, verdictRefused},
		{[]string{verdictRefused, verdictVerified}, verdictVerified},
		{[]string{verdictCouldNotCheck, verdictVerified}, verdictVerified},
		{[]string{verdictRefused, verdictCouldNotCheck}, verdictCouldNotCheck},
		{[]string{verdictRefused, verdictRefused}, verdictRefused},
	} {
		r := &verifyReport{Reference: "r@sha256:x", Image: "r:v"}
		for _, v := range tc.verdicts {
			r.Signatures = append(r.Signatures, verification.Report{Verdict: v})
		}
		r.conclude()
		if r.Verdict != tc.want || r.Verified != (tc.want == verdictVerified) {
			t.Errorf("%v: %s, want %s", tc.verdicts, r.Verdict, tc.want)
		}
		if len(tc.verdicts) == 0 && !strings.Contains(r.Message, "no Notation signature found") {
			t.Errorf("message %q", r.Message)
		}
	}
}
