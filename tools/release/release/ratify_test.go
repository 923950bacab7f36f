package release

import (
	"archive/tar"
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

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	verifier := awssignerVerifier(ps, root)
	verifier["source"] = map[string]any{"artifact": artifact}
	cfg := ratifyConfig(dir, []string{pluginDir}, verifier)
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	subject := ps.byName[RefImage].Pinned
	msg := ratifyVerify(t, ratify, dir, cfgFile, subject, "RATIFY_CONFIG="+dir, "RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=1", "SSL_CERT_FILE="+caFile)
	got, err := os.ReadFile(filepath.Join(pluginDir, "awssigner"))
	if err != nil || !bytes.Equal(got, binary) {
		t.Fatalf("Ratify's download of %s: %d bytes (%v), the binary has %d", artifact, len(got), err, len(binary))
	}
	t.Logf("Ratify downloaded %s and verified %s: %s", artifact, subject, msg)
}

// awssignerVerifier is the verifier entry of a Ratify config.json trusting
// the emulator's profile.
func awssignerVerifier(ps *pushedSet, root []byte) map[string]any {
	return map[string]any{
		"name": "verifier-awssigner", "type": "awssigner", "artifactTypes": "application/vnd.cncf.notary.signature",
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
			"name": "release", "registryScopes": []string{"*"}, "signatureVerification": map[string]any{"level": "strict"},
			"trustStores": []string{"signingAuthority:aws-signer-ts"}, "trustedIdentities": []string{ps.emu.profileARN},
		}}},
		"trustStores": map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{string(root)}}},
		"revocation":  map[string]any{"timeout": "2s", "cacheTTL": "0s"},
		"aws":         map[string]any{"endpoint": ps.emu.url},
	}
}

// ratifyConfig is a config.json with one verifier; pluginDirs nil leaves
// Ratify's default ($RATIFY_CONFIG/plugins).
func ratifyConfig(dir string, pluginDirs []string, verifier map[string]any) map[string]any {
	v := map[string]any{"version": "1.0.0", "plugins": []any{verifier}}
	if pluginDirs != nil {
		v["pluginBinDirs"] = pluginDirs
	}
	return map[string]any{
		"store": map[string]any{"version": "1.0.0", "plugins": []any{map[string]any{"name": "oras", "useHttp": true, "localCachePath": filepath.Join(dir, "oras")}}},
		"policy": map[string]any{"version": "1.0.0", "plugin": map[string]any{"name": "configPolicy",
			"artifactVerificationPolicies": map[string]any{"application/vnd.cncf.notary.signature": "all"}}},
		"verifier": v,
		"executor": map[string]any{"verificationRequestTimeout": 2900},
	}
}

// ratifyVerify runs `ratify verify -s subject -c cfgFile` and expects the
// awssigner verifier's report to pass; it returns the report's message.
func ratifyVerify(t *testing.T, ratify, dir, cfgFile, subject string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ratify, "verify", "-s", subject, "-c", cfgFile)
	cmd.Env = append(awsEnv(dir), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ratify verify: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
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
	return res.VerifierReports[0].Message
}

// checkRatifyRunsImagePlugin unpacks the Ratify image (stand-in base plus
// the plugin layer) and runs the real `ratify verify` with the image's own
// RATIFY_CONFIG under that root and no plugin directory configured: Ratify
// looks in its default $RATIFY_CONFIG/plugins, finds the plugin the layer
// put there, runs it, and it verifies the release.
func checkRatifyRunsImagePlugin(t *testing.T, ps *pushedSet, img v1.Image) {
	t.Helper()
	ratify := ratifyBinary(t)
	cfgFile, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ratifyConfigDir := ""
	for _, e := range cfgFile.Config.Env {
		if v, ok := strings.CutPrefix(e, "RATIFY_CONFIG="); ok {
			ratifyConfigDir = v
		}
	}
	if ratifyConfigDir == "" {
		t.Fatalf("the image sets no RATIFY_CONFIG: %v", cfgFile.Config.Env)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ls, _ := img.Layers()
	for _, l := range ls {
		for p, e := range readLayer(t, l) {
			target := filepath.Join(rootfs, filepath.FromSlash(p))
			switch e.typ {
			case tar.TypeDir:
				if err := os.MkdirAll(target, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(target, e.data, os.FileMode(e.mode).Perm()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	root, err := os.ReadFile(ps.emu.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, _ := json.Marshal(ratifyConfig(dir, nil, awssignerVerifier(ps, root)))
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	subject := ps.byName[RefImage].Pinned
	msg := ratifyVerify(t, ratify, dir, cfg, subject, "RATIFY_CONFIG="+filepath.Join(rootfs, filepath.FromSlash(ratifyConfigDir)))
	t.Logf("Ratify found the image's plugin under its default plugin directory and verified %s: %s", subject, msg)
}
