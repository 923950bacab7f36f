package gatekeeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/apis/externaldata/unversioned"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
)

// serveProvider is the Provider name the serve-provider sample's
// constraint names.
const serveProvider = "awssigner-serve"

// startServe runs the real `awssigner serve` (the plugin binary's serve
// subcommand) on the same registry and emulator, trusting only profile
// Team (so team/app:other is untrusted), and registers it as Gatekeeper's
// Provider serveProvider. Gatekeeper's engine has one client certificate
// (issued by Ratify's PKI here), so serve's client CA file is rewritten to
// hold that CA too and the test waits until serve has reloaded it, as a
// cluster's serve trusts Gatekeeper's ca.crt.
func startServe(ctx context.Context, binary, dir string) error {
	cfg := env.stack.VerifierConfig("awssigner", "strict", []string{env.stack.ProfileARN}, nil)
	p, err := serve.Start(ctx, binary, dir, cfg)
	if err != nil {
		return err
	}
	env.serve = p
	bundle := append(append([]byte{}, p.PKI.CAPEM...), env.server.PKI.CAPEM...)
	if err := os.WriteFile(p.PKI.CAFile, bundle, 0o600); err != nil {
		return err
	}
	if err := waitClientCA(ctx, p); err != nil {
		return err
	}
	return env.providers.Upsert(&unversioned.Provider{
		ObjectMeta: metav1.ObjectMeta{Name: serveProvider},
		Spec:       unversioned.ProviderSpec{URL: p.VerifyURL, Timeout: 5, CABundle: base64.StdEncoding.EncodeToString(p.PKI.CAPEM)},
	})
}

// waitClientCA polls serve with Gatekeeper's certificate until it is
// accepted (serve checks its TLS files every 2 s), at most 15 s.
func waitClientCA(ctx context.Context, p *serve.Process) error {
	pair, err := tls.LoadX509KeyPair(env.server.PKI.ClientCert, env.server.PKI.ClientKey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.PKI.CAPEM)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.VerifyURL,
			strings.NewReader(`{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":[]}}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("awssigner serve did not accept Gatekeeper's client certificate within 15 s (last: %s): %s", last, p.Log())
}

func servePath() string {
	return filepath.Join(env.root, "policies", "awssigner-verified-images", "samples", "serve-provider", "constraint.yaml")
}

// TestServeCases: the ConstraintTemplate in Gatekeeper's engine against
// the real awssigner serve (Ratify v2's answer shape), the same scenarios
// as against Ratify: signed admitted, unsigned, untrusted and revoked
// denied with the reason.
func TestServeCases(t *testing.T) {
	withConstraint(t, servePath())
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", env.serve.Log())
		}
	}()
	host := env.stack.Registry.Host
	if rs := review(t, pod("p", map[string]string{"app": "team/app:signed", "sidecar": "platform/sidecar:v1"}, nil), util.WebhookEnforcementPoint); len(rs) != 0 {
		t.Fatalf("signed image: got:\n%s", messages(rs))
	}
	cases := []struct {
		tag, reason string
		want        []string
	}{
		{"unsigned", "unsigned", []string{`it has no signature: the provider "` + serveProvider + `" found no Notation signature attached to it; sign it with `}},
		{"other", "verification_failed", []string{`the "awssigner" verifier refused it: `, env.otherARN, "[digest sha256:"}},
		{"revoked", "verification_failed", []string{`the "awssigner" verifier refused it: `, "revoked", "signing-jobs/", "[digest sha256:"}},
	}
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			rs := review(t, pod("p", map[string]string{"app": "team/app:" + c.tag}, nil), util.WebhookEnforcementPoint)
			if len(rs) != 1 || rs[0].EnforcementAction != "deny" {
				t.Fatalf("got:\n%s", messages(rs))
			}
			msg := rs[0].Msg
			if !strings.HasPrefix(msg, fmt.Sprintf("image %q in container \"app\" (containers) is not allowed: ", host+"/team/app:"+c.tag)) {
				t.Errorf("message does not name the image: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			// No Ratify on this path: the message must not say one answered.
			if strings.Contains(msg, "Ratify") {
				t.Errorf("message names Ratify, which this path does not run: %s", msg)
			}
			details, _ := rs[0].Metadata["details"].(map[string]any)
			if details["reason"] != c.reason || details["provider"] != serveProvider {
				t.Errorf("details %v, want reason %s from provider %s", details, c.reason, serveProvider)
			}
			if d, _ := details["digest"].(string); c.tag != "unsigned" && !strings.HasPrefix(d, "sha256:") {
				t.Errorf("details.digest %q, want the digest serve resolved the tag to", d)
			}
			t.Logf("%s: %s", c.tag, msg)
		})
	}
	t.Run("allowedSigningProfiles", func(t *testing.T) {
		c := load(t, servePath())
		c.SetName("serve-profile")
		c.Object["spec"].(map[string]any)["parameters"].(map[string]any)["allowedSigningProfiles"] = []any{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Nobody"}
		if _, err := env.client.AddConstraint(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		defer env.client.RemoveConstraint(context.Background(), c)
		rs := review(t, pod("p", map[string]string{"app": "team/app:signed"}, nil), util.WebhookEnforcementPoint)
		var found bool
		for _, r := range rs {
			details, _ := r.Metadata["details"].(map[string]any)
			if details["reason"] == "signing_profile_not_allowed" && strings.Contains(r.Msg, env.stack.ProfileARN) {
				found = true
			}
		}
		if !found {
			t.Fatalf("want signing_profile_not_allowed naming %s, got:\n%s", env.stack.ProfileARN, messages(rs))
		}
	})
}
