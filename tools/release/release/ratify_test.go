package release

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ratifyBinary is the real Ratify v1.4.6 (make tools): $RATIFY_BIN, else
// bin/ratify. Without it the test is skipped, unless REQUIRE_INTEGRATION=1
// (make test), where that is a failure.
func ratifyBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("RATIFY_BIN")
	if p == "" {
		p = filepath.Join(fx.repo, "bin", "ratify")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("Ratify binary not found at %s: run `make tools`", p)
		}
		t.Skipf("Ratify binary not found at %s (make tools)", p)
	}
	return p
}

// checkRatifyDownloadsPlugin runs the real `ratify verify` with a verifier
// whose source is the pushed amd64 plugin artifact
// (RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=1): Ratify downloads it over TLS
// (it speaks only HTTPS to plugin registries) into an empty plugin
// directory, runs it, and it verifies the release's own signature.
func checkRatifyDownloadsPlugin(t *testing.T, ps *pushedSet, pluginPinned string, binary []byte) {
	t.Helper()
	ratify := ratifyBinary(t)
	backend, _ := url.Parse("http://" + ps.host)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(backend))
	defer front.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "front.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	frontHost := strings.TrimPrefix(front.URL, "https://")
	artifact := strings.Replace(pluginPinned, ps.host, frontHost, 1)
	root, err := os.ReadFile(ps.emu.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"store": map[string]any{"version": "1.0.0", "plugins": []any{map[string]any{"name": "oras", "useHttp": true, "localCachePath": filepath.Join(dir, "oras")}}},
		"policy": map[string]any{"version": "1.0.0", "plugin": map[string]any{"name": "configPolicy",
			"artifactVerificationPolicies": map[string]any{"application/vnd.cncf.notary.signature": "all"}}},
		"verifier": map[string]any{"version": "1.0.0", "pluginBinDirs": []string{pluginDir}, "plugins": []any{map[string]any{
			"name": "verifier-awssigner", "type": "awssigner", "artifactTypes": "application/vnd.cncf.notary.signature",
			"source": map[string]any{"artifact": artifact},
			"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
				"name": "release", "registryScopes": []string{"*"}, "signatureVerification": map[string]any{"level": "strict"},
				"trustStores": []string{"signingAuthority:aws-signer-ts"}, "trustedIdentities": []string{ps.emu.profileARN},
			}}},
			"trustStores": map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{string(root)}}},
			"revocation":  map[string]any{"timeout": "2s", "cacheTTL": "0s"},
			"aws":         map[string]any{"endpoint": ps.emu.url},
		}}},
		"executor": map[string]any{"verificationRequestTimeout": 2900},
	}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	subject := ps.byName[RefImage].Pinned
	cmd := exec.CommandContext(ctx, ratify, "verify", "-s", subject, "-c", cfgFile)
	cmd.Env = append(awsEnv(dir), "RATIFY_CONFIG="+dir, "RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=1", "SSL_CERT_FILE="+caFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ratify verify: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(pluginDir, "awssigner"))
	if err != nil || !bytes.Equal(got, binary) {
		t.Fatalf("Ratify's download of %s: %d bytes (%v), the binary has %d", artifact, len(got), err, len(binary))
	}
	text := stdout.String()
	if i := strings.Index(text, "{"); i >= 0 {
		text = text[i:]
	}
	var res struct {
		IsSuccess       bool `json:"isSuccess"`
		VerifierReports []struct {
			IsSuccess bool   `json:"isSuccess"`
			Name      string `json:"name"`
			Message   string `json:"message"`
		} `json:"verifierReports"`
	}
	if err := json.Unmarshal([]byte(text), &res); err != nil || !res.IsSuccess || len(res.VerifierReports) != 1 ||
		!res.VerifierReports[0].IsSuccess || res.VerifierReports[0].Name != "verifier-awssigner" {
		t.Fatalf("ratify verify %s: %v\n%s\nstderr %s", subject, err, stdout.String(), stderr.String())
	}
	t.Logf("Ratify downloaded %s and verified %s: %s", artifact, subject, res.VerifierReports[0].Message)
}
