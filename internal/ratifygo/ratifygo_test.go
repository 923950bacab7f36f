package ratifygo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryhttp"
)

// A registry that redirects forever is given MaxRedirects redirects, not
// the whole deadline.
func TestRedirectLoopBounded(t *testing.T) {
	var hits atomic.Int64
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, r.URL.Path+"x", http.StatusTemporaryRedirect)
	}))
	defer reg.Close()
	e := plainEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.Validate(ctx, strings.TrimPrefix(reg.URL, "http://")+"/team/app:v1")
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Fatalf("error %v", err)
	}
	// The retry transport may try each hop again on a 5xx, never on a redirect.
	if n := hits.Load(); n > registryhttp.MaxRedirects+1 {
		t.Errorf("%d requests for one resolve", n)
	}
}

// A registry error that echoes the credentials it was sent does not reach
// the answer.
func TestRegistryErrorTextNotRepeated(t *testing.T) {
	const secret = "Basic c2VjcmV0OnBhc3N3b3Jk"
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			// The tag resolves; listing its referrers fails.
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("ab", 32))
			w.Header().Set("Content-Length", "100")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errors":[{"code":"DENIED","message":"you sent ` + secret + `"}]}`))
	}))
	defer reg.Close()
	e := plainEngine(t)
	_, err := e.Validate(context.Background(), strings.TrimPrefix(reg.URL, "http://")+"/team/app:v1")
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "referrers") {
		t.Fatalf("error %v", err)
	}
	t.Log(err)
}

// plainEngine is an Engine over plain HTTP with a strict policy trusting
// one profile and no revocation cache.
func plainEngine(t *testing.T) *Engine {
	t.Helper()
	cfg, err := config.Decode([]byte(`{"trustPolicyDoc": {"version": "1.0", "trustPolicies": [{"name": "p", "registryScopes": ["*"],
		"signatureVerification": {"level": "strict"}, "trustStores": ["signingAuthority:aws-signer-ts"],
		"trustedIdentities": ["arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.NoCache})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Verifier: v, PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
