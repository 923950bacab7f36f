// Package serve tests awssigner serve (internal/server, internal/provider,
// internal/ratifygo) with real parts: the go-containerregistry registry and
// the AWS Signer emulator on loopback, signatures made through the real SDK
// (SignPayload), Gatekeeper-shaped requests over HTTPS with mTLS, and the
// built binary as a process.
package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/server"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// fixture is a registry, the emulator, a PKI and a running provider.
type fixture struct {
	t     testing.TB
	stack *harness.Stack
	pki   *harness.PKI
	dir   string
	file  string // the configuration file
	srv   *server.Server
	base  string // https://127.0.0.1:PORT (Gatekeeper's listener)
	hc    *http.Client
	logs  *harness.SyncBuffer
	opts  fixtureOptions

	// With fixtureOptions.kyverno: the fake TokenReview API, a token of
	// Kyverno's admission controller, the /checkimages URL and a client
	// as Kyverno's (no client certificate).
	reviewer   *TokenReviewer
	token      string
	checkURL   string
	kc         *http.Client
	kyvernoCfg map[string]any
}

// fixtureOptions add to newFixture's provider.
type fixtureOptions struct {
	// kyverno enables the Kyverno listener, callers reviewed by a fake
	// TokenReview API; noGatekeeper turns the mTLS listener off.
	kyverno, noGatekeeper bool
	// docs are more top-level configuration keys (trustPolicyDocs).
	docs map[string]any
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newFixture starts a stack and a provider with the stack's policy
// (strict, the stack's profile trusted) and server settings merged from
// serverExtra; revocation answers are kept for revocationTTL.
func newFixture(t *testing.T, revocationTTL string, serverExtra map[string]any) *fixture {
	t.Helper()
	return newFixtureWith(t, revocationTTL, serverExtra, fixtureOptions{})
}

// newFixtureWith is newFixture with options.
func newFixtureWith(t testing.TB, revocationTTL string, serverExtra map[string]any, o fixtureOptions) *fixture {
	t.Helper()
	dir := t.TempDir()
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	pki, err := harness.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, stack: stack, pki: pki, dir: dir, file: filepath.Join(dir, "config.json"), logs: &harness.SyncBuffer{}, opts: o}
	if o.kyverno {
		if f.reviewer, err = NewTokenReviewer(filepath.Join(dir, "tokenreview")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.reviewer.Close)
		f.token = f.reviewer.Issue(config.DefaultKyvernoCallers()[0], config.DefaultKyvernoAudience)
		f.kyvernoCfg = map[string]any{"enabled": true,
			"tokenReview": map[string]any{"apiServer": f.reviewer.URL, "caFile": f.reviewer.CAFile, "tokenFile": f.reviewer.TokenFile}}
	}
	f.writeConfig(f.config("strict", nil, revocationTTL, serverExtra))
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.srv, err = server.New(server.Options{ConfigFile: f.file, Version: "0.1.0-test", Logger: log, AWS: &stack.AWS,
		ReloadInterval: time.Hour, Address: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", KyvernoAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("provider log:\n%s", f.logs.String())
		}
	})
	f.base = "https://" + f.srv.Addr()
	tlsCfg, err := pki.ClientTLS(true)
	if err != nil {
		t.Fatal(err)
	}
	f.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 200, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
	t.Cleanup(f.hc.CloseIdleConnections)
	if o.kyverno {
		f.checkURL = "https://" + f.srv.KyvernoAddr() + kyverno.Path
		kcfg, err := pki.ClientTLS(false)
		if err != nil {
			t.Fatal(err)
		}
		f.kc = &http.Client{Transport: &http.Transport{TLSClientConfig: kcfg, MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}
		t.Cleanup(f.kc.CloseIdleConnections)
	}
	return f
}

// config is the provider's configuration document.
func (f *fixture) config(level string, identities []string, revocationTTL string, serverExtra map[string]any) map[string]any {
	srv := map[string]any{
		"tls":      map[string]any{"certFile": f.pki.ServerCert, "keyFile": f.pki.ServerKey, "clientCAFile": f.pki.CAFile},
		"registry": map[string]any{"plainHTTP": true},
	}
	if f.opts.noGatekeeper {
		srv["gatekeeper"] = map[string]any{"enabled": false}
		delete(srv["tls"].(map[string]any), "clientCAFile")
	}
	if f.kyvernoCfg != nil {
		k := map[string]any{}
		for key, v := range f.kyvernoCfg {
			k[key] = v
		}
		srv["kyverno"] = k
	}
	mergeServer(srv, serverExtra)
	c := f.stack.VerifierConfig("awssigner", level, identities, map[string]any{
		"revocation": map[string]any{"timeout": "2s", "cacheTTL": revocationTTL},
		"server":     srv,
	})
	for k, v := range f.opts.docs {
		c[k] = v
	}
	delete(c, "artifactTypes")
	return c
}

func (f *fixture) writeConfig(c map[string]any) {
	f.t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		f.t.Fatal(err)
	}
	tmp := f.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		f.t.Fatal(err)
	}
}

// signed pushes repo:tag and signs it with profileARN (the stack's when
// empty); it returns the tag reference, the descriptor and the job ARN.
func (f *fixture) signed(repo, tag, profileARN string) (string, ocispec.Descriptor, string) {
	f.t.Helper()
	ctx := ctxT(f.t)
	ref, desc, err := f.stack.PushImage(ctx, repo, tag)
	if err != nil {
		f.t.Fatal(err)
	}
	_, job, err := f.stack.Sign(ctx, repo, desc, profileARN)
	if err != nil {
		f.t.Fatal(err)
	}
	return ref, desc, job
}

func (f *fixture) unsigned(repo, tag string) string {
	f.t.Helper()
	ref, _, err := f.stack.PushImage(ctxT(f.t), repo, tag)
	if err != nil {
		f.t.Fatal(err)
	}
	return ref
}

// post sends body to path and decodes the ProviderResponse.
func (f *fixture) post(path string, body []byte) (int, provider.Response) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.base+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var pr provider.Response
	if err := json.Unmarshal(raw, &pr); err != nil {
		f.t.Fatalf("HTTP %d, not a ProviderResponse: %v\n%s", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, pr
}

func requestBody(keys ...string) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": provider.APIVersion, "kind": provider.KindRequest, "request": map[string]any{"keys": keys}})
	return b
}

// query sends keys to path and returns the items by key (failing on a
// system error or a missing or duplicate item).
func (f *fixture) query(path string, keys ...string) map[string]item {
	f.t.Helper()
	status, pr := f.post(path, requestBody(keys...))
	if status != http.StatusOK || pr.Response.SystemError != "" {
		f.t.Fatalf("HTTP %d, system error %q", status, pr.Response.SystemError)
	}
	if pr.APIVersion != provider.APIVersion || pr.Kind != provider.KindResponse || pr.Response.Idempotent != (path == provider.MutatePath) {
		f.t.Fatalf("envelope %s %s idempotent %v", pr.APIVersion, pr.Kind, pr.Response.Idempotent)
	}
	out := map[string]item{}
	for _, it := range pr.Response.Items {
		if _, dup := out[it.Key]; dup {
			f.t.Fatalf("key %s answered twice", it.Key)
		}
		raw, _ := json.Marshal(it.Value)
		out[it.Key] = item{raw: raw, err: it.Error}
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			f.t.Fatalf("key %s not answered: %+v", k, pr.Response.Items)
		}
	}
	return out
}

type item struct {
	raw json.RawMessage
	err string
}

// value decodes a verify item (Ratify v2's shape) and our reports in it.
func (it item) value(t *testing.T) (ratifygo.Value, []verification.Report) {
	t.Helper()
	if it.err != "" {
		t.Fatalf("item error: %s", it.err)
	}
	var v ratifygo.Value
	if err := json.Unmarshal(it.raw, &v); err != nil {
		t.Fatalf("value %s: %v", it.raw, err)
	}
	var reports []verification.Report
	for _, r := range v.ArtifactReports {
		for _, res := range r.Results {
			if res.VerifierName != ratifygo.DefaultVerifierName {
				t.Errorf("verifierName %q", res.VerifierName)
			}
			var rep verification.Report
			if err := json.Unmarshal([]byte(res.Detail), &rep); err != nil {
				t.Fatalf("detail %q: %v", res.Detail, err)
			}
			if (rep.Verdict == verification.VerdictVerified) != (res.ErrorReason == "") {
				t.Errorf("verdict %s with errorReason %q", rep.Verdict, res.ErrorReason)
			}
			reports = append(reports, rep)
		}
	}
	return v, reports
}

func (f *fixture) signerCalls() int { return f.stack.Emulator.Count(signeremu.OpGetRevocationStatus) }

func (f *fixture) get(addr, path string) (int, string) {
	f.t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wantMetrics fails for each line of wants missing from /metrics.
func (f *fixture) wantMetrics(wants ...string) {
	f.t.Helper()
	_, m := f.get(f.srv.HealthAddr(), "/metrics")
	for _, want := range wants {
		if !strings.Contains(m, want) {
			f.t.Errorf("metrics lack %s", want)
		}
	}
}

func fatalIf(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
