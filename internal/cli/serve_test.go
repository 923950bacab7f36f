package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve refuses to start without a usable configuration, saying why.
func TestServeRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	noTLS := filepath.Join(dir, "no-tls.yaml")
	if err := os.WriteFile(noTLS, []byte(`
trustPolicyDoc:
  version: "1.0"
  trustPolicies:
  - name: p
    registryScopes: ["*"]
    signatureVerification: {level: strict}
    trustStores: ["signingAuthority:aws-signer-ts"]
    trustedIdentities: ["arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"serve"}, []string{"--config is required"}},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, []string{"read configuration"}},
		{[]string{"serve", "--config", noTLS}, []string{"server.tls.certFile: required", "server.tls.keyFile: required", "server.tls.clientCAFile: required"}},
		{[]string{"serve", "--config", noTLS, "--log-level", "loud"}, []string{"--log-level \"loud\" is not a level"}},
	} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), tc.args, &out, &errOut, "0.1.0-test")
		for _, w := range tc.want {
			if code != ExitFailed || !strings.Contains(errOut.String(), w) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), ExitFailed, w)
			}
		}
	}
}
