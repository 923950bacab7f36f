package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// checkPluginRun runs the binary pulled from the image the way Ratify v1
// runs a verifier plugin (three RATIFY_VERIFIER_* variables, the JSON
// document on stdin) on the signature `make push` made of the awssigner
// index, and expects one line of JSON saying it verified.
func checkPluginRun(t *testing.T, bin string, ps *pushedSet) {
	t.Helper()
	out, stderr, err := runPlugin(t, bin, ps)
	if err != nil {
		t.Fatalf("plugin run: %v\nstdout %s\nstderr %s", err, out, stderr)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout is not one line: %q", out)
	}
	var res struct {
		IsSuccess bool   `json:"isSuccess"`
		Name      string `json:"name"`
		Type      string `json:"type"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.IsSuccess || res.Name != "verifier-awssigner" || res.Type != "awssigner" {
		t.Fatalf("plugin result %s (%v)\nstderr %s", out, err, stderr)
	}
	t.Logf("plugin from the image verified the release's own signature: %s", res.Message)
}

// runPlugin runs bin as Ratify runs a plugin, with extra environment
// variables, and returns its stdout and stderr.
func runPlugin(t *testing.T, bin string, ps *pushedSet, extraEnv ...string) (string, string, error) {
	t.Helper()
	p := ps.byName[RefImage]
	repo, err := name.NewDigest(p.Pinned)
	if err != nil {
		t.Fatal(err)
	}
	sigRef := repo.Context().Digest(p.Signature)
	sig, err := remote.Head(sigRef)
	if err != nil {
		t.Fatalf("signature %s: %v", sigRef, err)
	}
	root, err := os.ReadFile(ps.emu.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stdin, err := json.Marshal(map[string]any{
		"config": map[string]any{
			"name": "verifier-awssigner", "type": "awssigner", "artifactTypes": "application/vnd.cncf.notary.signature",
			"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
				"name": "release", "registryScopes": []string{"*"},
				"signatureVerification": map[string]any{"level": "strict"},
				"trustStores":           []string{"signingAuthority:aws-signer-ts"},
				"trustedIdentities":     []string{ps.emu.profileARN},
			}}},
			"trustStores": map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{string(root)}}},
			"revocation":  map[string]any{"timeout": "2s", "cacheTTL": "0s"},
			"aws":         map[string]any{"endpoint": ps.emu.url},
		},
		"storeConfig": map[string]any{"version": "1.0.0", "pluginBinDirs": nil, "store": map[string]any{
			"name": "oras", "useHttp": true, "localCachePath": filepath.Join(dir, "oras")}},
		"referenceDesc": map[string]any{"mediaType": string(sig.MediaType), "digest": sig.Digest.String(), "size": sig.Size,
			"artifactType": "application/vnd.cncf.notary.signature"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(append(awsEnv(dir), "RATIFY_VERIFIER_COMMAND=VERIFY", "RATIFY_VERIFIER_SUBJECT="+p.Pinned, "RATIFY_VERIFIER_VERSION=1.0.0"), extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return stdout.String(), stderr.String(), err
}
