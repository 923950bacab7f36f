package integration

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// TestRatifyServe sends one external-data request with several keys to
// `ratify serve` over HTTPS (TLS 1.3, Gatekeeper's client certificate), as
// Gatekeeper would.
func TestRatifyServe(t *testing.T) {
	s := newStack(t, true)
	c := ctx(t)
	good, desc, _ := s.PushImage(c, "team/app", "good")
	if _, _, err := s.Sign(c, "team/app", desc, ""); err != nil {
		t.Fatal(err)
	}
	unsigned, _, _ := s.PushImage(c, "team/app", "unsigned")
	otherARN, _, _ := s.Emulator.CreateProfile("Other", 12)
	other, odesc, _ := s.PushImage(c, "team/app", "other")
	if _, _, err := s.Sign(c, "team/app", odesc, otherARN); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.RatifyConfig(pluginDir, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	srv, client := serve(t, s, cfg)
	resp, httpResp, err := srv.Query(c, client, good, unsigned, other, "not a reference")
	if err != nil {
		t.Fatal(err)
	}
	if httpResp.TLS == nil || httpResp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %v, want 1.3", httpResp.TLS)
	}
	if len(resp.Response.Items) != 4 || resp.Response.SystemError != "" {
		t.Fatalf("response: %+v", resp.Response)
	}
	byKey := map[string]struct {
		value json.RawMessage
		err   string
	}{}
	for _, it := range resp.Response.Items {
		byKey[it.Key] = struct {
			value json.RawMessage
			err   string
		}{it.Value, it.Error}
	}
	type value struct {
		IsSuccess       bool             `json:"isSuccess"`
		VerifierReports []harness.Report `json:"verifierReports"`
	}
	decode := func(key string) value {
		var v value
		if err := json.Unmarshal(byKey[key].value, &v); err != nil {
			t.Fatalf("%s: %v (error %q)", key, err, byKey[key].err)
		}
		return v
	}
	if v := decode(good); !v.IsSuccess || len(v.VerifierReports) != 1 || v.VerifierReports[0].Extensions["signingProfileArn"] != s.ProfileARN {
		t.Errorf("good: %+v", v)
	}
	if v := decode(unsigned); v.IsSuccess {
		t.Errorf("unsigned verified: %+v", v)
	}
	if v := decode(other); v.IsSuccess || len(v.VerifierReports) != 1 || !strings.Contains(v.VerifierReports[0].Message, otherARN) {
		t.Errorf("other: %+v", v)
	}
	if byKey["not a reference"].err == "" {
		t.Errorf("an invalid key got no error: %s", byKey["not a reference"].value)
	}

	// Without Gatekeeper's client certificate the server refuses.
	anon, _ := srv.PKI.ClientTLS(false)
	if _, _, err := srv.Query(c, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: anon}}, good); err == nil {
		t.Error("a client without a certificate was served")
	}
}

// TestRatifyServeConcurrentKeys verifies ten signed images in one request:
// Ratify runs ten plugin processes at once. They must not trip over each
// other's on-disk state (Ratify's shared ORAS cache layout is rewritten in
// place by oras-go; see internal/ratifyv1/storecache.go).
func TestRatifyServeConcurrentKeys(t *testing.T) {
	s := newStack(t, true)
	c := ctx(t)
	var keys []string
	for i := 0; i < 10; i++ {
		ref, desc, err := s.PushImage(c, "team/app", fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Sign(c, "team/app", desc, ""); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ref)
	}
	cfg, err := s.RatifyConfig(pluginDir, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, map[string]any{
		"revocation": map[string]any{"timeout": "2s", "cacheTTL": "5m", "cacheDir": filepath.Join(s.Dir, "revocation")},
	}))
	if err != nil {
		t.Fatal(err)
	}
	srv, client := serve(t, s, cfg)
	for round := 0; round < 3; round++ {
		resp, _, err := srv.Query(c, client, keys...)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range resp.Response.Items {
			var v struct {
				IsSuccess bool `json:"isSuccess"`
			}
			if err := json.Unmarshal(it.Value, &v); err != nil || !v.IsSuccess {
				t.Errorf("round %d: %s not verified: %s %s", round, it.Key, it.Value, it.Error)
			}
		}
	}
}

// serve starts `ratify serve` with cfg and returns it with a client that
// presents Gatekeeper's certificate.
func serve(t *testing.T, s *harness.Stack, cfg string) (*harness.Server, *http.Client) {
	t.Helper()
	srv, err := harness.StartRatifyServe(ctx(t), ratifyBin, s.Dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tlsCfg, err := srv.PKI.ClientTLS(true)
	if err != nil {
		t.Fatal(err)
	}
	return srv, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
}
