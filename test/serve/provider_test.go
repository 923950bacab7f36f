package serve

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// One request with a signed, an unsigned, an untrusted and an invalid
// image (and duplicates): one item per distinct key, each in Ratify v2's
// shape with our report as the detail.
func TestVerify(t *testing.T) {
	f := newFixture(t, "5m", nil)
	good, desc, job := f.signed("team/app", "good", "")
	unsigned := f.unsigned("team/app", "unsigned")
	otherARN, _, err := f.stack.Emulator.CreateProfile("Other", 12)
	fatalIf(t, err)
	other, _, _ := f.signed("team/app", "other", otherARN)
	byDigest := f.stack.Registry.Host + "/team/app@" + desc.Digest.String()
	items := f.query(provider.VerifyPath, good, unsigned, other, "Not A Reference", good, byDigest)
	if len(items) != 5 {
		t.Fatalf("%d items for 5 distinct keys", len(items))
	}
	for _, key := range []string{good, byDigest} {
		v, reps := items[key].value(t)
		if !v.Succeeded || len(reps) != 1 || reps[0].Verdict != verification.VerdictVerified || reps[0].SigningJobARN != job || reps[0].SigningProfileARN != f.stack.ProfileARN {
			t.Errorf("%s: %+v %+v", key, v, reps)
		}
		if want := f.stack.Registry.Host + "/team/app@" + desc.Digest.String(); v.ArtifactReports[0].Subject != want {
			t.Errorf("subject %s, want %s", v.ArtifactReports[0].Subject, want)
		}
	}
	if v, reps := items[unsigned].value(t); v.Succeeded || len(reps) != 0 || provider.Outcome(&v) != "unsigned" {
		t.Errorf("unsigned: %+v", v)
	}
	v, reps := items[other].value(t)
	if v.Succeeded || len(reps) != 1 || reps[0].Reason != verification.ReasonUntrustedIdentity || !strings.Contains(reps[0].Message, otherARN) {
		t.Errorf("other: %+v %+v", v, reps)
	}
	if items["Not A Reference"].err == "" || !strings.Contains(items["Not A Reference"].err, "not an image reference") {
		t.Errorf("invalid key: %+v", items["Not A Reference"])
	}
}

// Requests Gatekeeper never sends are refused with a system error that
// says what is wrong, never a panic or a hang.
func TestBadRequests(t *testing.T) {
	f := newFixture(t, "5m", map[string]any{"maxKeys": 3, "maxBodyBytes": 2048})
	for _, tc := range []struct {
		name   string
		method string
		body   []byte
		status int
		want   string
	}{
		{"GET", http.MethodGet, nil, http.StatusMethodNotAllowed, "POSTs a ProviderRequest"},
		{"not JSON", http.MethodPost, []byte("{"), http.StatusBadRequest, "not a JSON ProviderRequest"},
		{"wrong kind", http.MethodPost, []byte(`{"apiVersion":"v1","kind":"Pod","request":{"keys":["a"]}}`), http.StatusBadRequest, "want externaldata.gatekeeper.sh/v1beta1 ProviderRequest"},
		{"too many keys", http.MethodPost, requestBody("a/b:1", "a/b:2", "a/b:3", "a/b:4"), http.StatusRequestEntityTooLarge, "4 distinct keys, over the limit of 3 (server.maxKeys)"},
		{"oversize", http.MethodPost, requestBody(strings.Repeat("x", 4096)), http.StatusRequestEntityTooLarge, "over 2048 bytes (server.maxBodyBytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.base+provider.VerifyPath, bytes.NewReader(tc.body))
			resp, err := f.hc.Do(req)
			fatalIf(t, err)
			defer resp.Body.Close()
			var pr provider.Response
			fatalIf(t, json.NewDecoder(resp.Body).Decode(&pr))
			if resp.StatusCode != tc.status || !strings.Contains(pr.Response.SystemError, tc.want) || len(pr.Response.Items) != 0 {
				t.Errorf("HTTP %d %+v, want %d %q", resp.StatusCode, pr.Response, tc.status, tc.want)
			}
		})
	}
	// Duplicates count once: 4 keys, 3 distinct, within the limit.
	items := f.query(provider.VerifyPath, "a/b:1", "a/b:2", "a/b:1", "a/b:3")
	if len(items) != 3 {
		t.Errorf("%d items", len(items))
	}
	// Empty keys: an empty answer, no system error.
	if _, pr := f.post(provider.VerifyPath, requestBody()); len(pr.Response.Items) != 0 || pr.Response.SystemError != "" {
		t.Errorf("empty keys: %+v", pr.Response)
	}
}

// Only TLS 1.3 clients with a certificate from the configured CA are
// served.
func TestMTLSRefusals(t *testing.T) {
	f := newFixture(t, "5m", nil)
	post := func(cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Post(f.base+provider.VerifyPath, "application/json", bytes.NewReader(requestBody()))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	good, err := f.pki.ClientTLS(true)
	fatalIf(t, err)
	if err := post(good); err != nil {
		t.Fatalf("Gatekeeper's certificate refused: %v", err)
	}
	none, _ := f.pki.ClientTLS(false)
	if err := post(none); err == nil {
		t.Error("served a client without a certificate")
	}
	tls12, _ := f.pki.ClientTLS(true)
	tls12.MaxVersion = tls.VersionTLS12
	if err := post(tls12); err == nil {
		t.Error("served TLS 1.2")
	}
	// A certificate from another CA, presented to a client that trusts the
	// server.
	other, err := harness.NewPKI(filepath.Join(f.dir, "other"))
	fatalIf(t, err)
	pair, err := tls.LoadX509KeyPair(other.ClientCert, other.ClientKey)
	fatalIf(t, err)
	foreign, _ := f.pki.ClientTLS(false)
	foreign.Certificates = []tls.Certificate{pair}
	if err := post(foreign); err == nil {
		t.Error("served a client certificate of another CA")
	}
}

// A Signer that never answers gives that image a per-key error within the
// request budget; an image that needs no Signer call in the same request
// is answered normally.
func TestDeadlinePerKey(t *testing.T) {
	f := newFixture(t, "5m", map[string]any{"verifyTimeout": "800ms"})
	slow, _, _ := f.signed("team/app", "slow", "")
	unsigned := f.unsigned("team/app", "unsigned")
	f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Hang: true})
	start := time.Now()
	items := f.query(provider.VerifyPath, slow, unsigned)
	took := time.Since(start)
	// Not a timing assertion: without the budget the key would wait for
	// the whole revocation timeout (2s) and get a "could not check" value,
	// or hang; the item error below tells which happened.
	if took > 10*time.Second {
		t.Errorf("answered after %s, budget 800ms", took)
	}
	if !strings.Contains(items[slow].err, "within the request budget") {
		t.Errorf("slow image: %+v", items[slow])
	}
	if v, _ := items[unsigned].value(t); v.Succeeded {
		t.Errorf("unsigned verified")
	}
	t.Logf("answered in %s", took)
	f.stack.Emulator.ClearFaults()
	// Nothing about the timed-out check was kept: the next request verifies.
	if v, _ := f.query(provider.VerifyPath, slow)[slow].value(t); !v.Succeeded {
		t.Error("not verified once the Signer answers")
	}
}

// Outcomes are reused (no registry read of the signature, no Signer call)
// until the revocation answer they rest on expires; a revocation after a
// cached success is then seen.
func TestOutcomeCacheSeesRevocation(t *testing.T) {
	const ttl = 3 * time.Second
	f := newFixture(t, ttl.String(), nil)
	ref, _, job := f.signed("team/app", "v1", "")
	first := time.Now()
	for i := 0; i < 5; i++ {
		if v, _ := f.query(provider.VerifyPath, ref)[ref].value(t); !v.Succeeded {
			t.Fatalf("run %d not verified", i)
		}
	}
	if n := f.signerCalls(); n != 1 {
		t.Errorf("%d GetRevocationStatus calls for 5 admissions within the TTL, want 1", n)
	}
	if f.srv.Outcomes().Len() != 1 {
		t.Errorf("outcome cache holds %d entries", f.srv.Outcomes().Len())
	}
	fatalIf(t, f.stack.Emulator.RevokeJob(job))
	// Within the TTL the cached success stands (as with the revocation
	// cache alone); after it, the revocation is seen.
	time.Sleep(time.Until(first.Add(ttl + 100*time.Millisecond)))
	v, reps := f.query(provider.VerifyPath, ref)[ref].value(t)
	if v.Succeeded || len(reps) != 1 || reps[0].Reason != verification.ReasonRevoked || !strings.Contains(reps[0].Message, job) {
		t.Fatalf("after revocation: %+v %+v", v, reps)
	}
	if n := f.signerCalls(); n != 2 {
		t.Errorf("%d GetRevocationStatus calls, want 2", n)
	}
	// Revoked is final: kept, no more Signer calls.
	for i := 0; i < 3; i++ {
		f.query(provider.VerifyPath, ref)
	}
	if n := f.signerCalls(); n != 2 {
		t.Errorf("%d GetRevocationStatus calls after revoked, want 2", n)
	}
}

// With no revocation cache (cacheTTL 0s), a verified outcome is never
// reused: every admission asks AWS Signer.
func TestNoRevocationCacheNoOutcomeReuse(t *testing.T) {
	f := newFixture(t, "0s", nil)
	ref, _, _ := f.signed("team/app", "v1", "")
	for i := 0; i < 3; i++ {
		if v, _ := f.query(provider.VerifyPath, ref)[ref].value(t); !v.Succeeded {
			t.Fatal("not verified")
		}
	}
	if n := f.signerCalls(); n != 3 {
		t.Errorf("%d GetRevocationStatus calls, want 3", n)
	}
}

// 100 simultaneous admissions of one image: one GetRevocationStatus.
func TestConcurrentAdmissionsMerged(t *testing.T) {
	// A generous budget: on a loaded 2-core machine 100 TLS handshakes
	// alone can take seconds; this test is about the call count.
	f := newFixture(t, "5m", map[string]any{"verifyTimeout": "20s"})
	ref, _, _ := f.signed("team/app", "v1", "")
	f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Latency: 200 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, pr := f.post(provider.VerifyPath, requestBody(ref))
			if status != 200 || len(pr.Response.Items) != 1 || pr.Response.Items[0].Error != "" {
				errs <- pr.Response.SystemError + pr.Response.Items[0].Error
				return
			}
			b, _ := json.Marshal(pr.Response.Items[0].Value)
			if !strings.Contains(string(b), `"succeeded":true`) {
				errs <- string(b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := f.signerCalls(); n != 1 {
		t.Errorf("%d GetRevocationStatus calls for 100 simultaneous admissions, want 1", n)
	}
}

// Mutation: a verified tag becomes its digest reference; an unverified
// image is left alone with an error saying why; a digest stays.
func TestMutate(t *testing.T) {
	f := newFixture(t, "5m", nil)
	good, desc, _ := f.signed("team/app", "good", "")
	unsigned := f.unsigned("team/app", "unsigned")
	digested := f.stack.Registry.Host + "/team/app@" + desc.Digest.String()
	items := f.query(provider.MutatePath, good, unsigned, digested, "[prod]"+good)
	for _, k := range []string{good, digested, "[prod]" + good} {
		var s string
		if err := json.Unmarshal(items[k].raw, &s); err != nil || s != digested || items[k].err != "" {
			t.Errorf("%s → %s (%s)", k, items[k].raw, items[k].err)
		}
	}
	if it := items[unsigned]; it.err == "" || !strings.Contains(it.err, "not verified (unsigned)") || string(it.raw) != "null" {
		t.Errorf("unsigned: %s %q", it.raw, it.err)
	}
}

// A changed configuration is applied; a bad one is refused, the last good
// one keeps serving, and /readyz and /metrics say so; a rotated
// certificate is served to new connections without a restart.
func TestReload(t *testing.T) {
	f := newFixture(t, "5m", nil)
	otherARN, _, err := f.stack.Emulator.CreateProfile("Other", 12)
	fatalIf(t, err)
	ref, _, _ := f.signed("team/app", "other", otherARN)
	if v, _ := f.query(provider.VerifyPath, ref)[ref].value(t); v.Succeeded {
		t.Fatal("untrusted profile verified")
	}
	f.writeConfig(f.config("strict", []string{otherARN}, "5m", nil))
	f.srv.Reload()
	if f.srv.Generation() != 2 {
		t.Fatalf("generation %d after a good reload", f.srv.Generation())
	}
	if v, _ := f.query(provider.VerifyPath, ref)[ref].value(t); !v.Succeeded {
		t.Fatal("not verified after trusting its profile (outcome of the old configuration reused?)")
	}
	bad := f.config("strict", []string{otherARN}, "5m", nil)
	bad["revocation"] = map[string]any{"timeout": "forever"}
	f.writeConfig(bad)
	f.srv.Reload()
	if f.srv.Generation() != 2 {
		t.Fatalf("generation %d after a bad reload", f.srv.Generation())
	}
	if v, _ := f.query(provider.VerifyPath, ref)[ref].value(t); !v.Succeeded {
		t.Fatal("last good configuration not kept")
	}
	status, body := f.get(f.srv.HealthAddr(), "/readyz")
	if status != 200 || !strings.Contains(body, `"reloadError":"configuration`) || !strings.Contains(body, "revocation.timeout") {
		t.Errorf("/readyz %d %s", status, body)
	}
	_, metrics := f.get(f.srv.HealthAddr(), "/metrics")
	for _, want := range []string{`awssigner_last_reload_success{what="config"} 0`, `awssigner_reloads_total{result="failure",what="config"} 1`, "awssigner_config_generation 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(f.logs.String(), "configuration reload refused") {
		t.Error("refused reload not logged")
	}

	// Certificate rotation.
	serial := func() string {
		cfg, _ := f.pki.ClientTLS(true)
		conn, err := tls.Dial("tcp", f.srv.Addr(), cfg)
		fatalIf(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	ca, err := harness.NewCA(filepath.Join(f.dir, "pki2"))
	fatalIf(t, err)
	// New CA for both sides: rewrite the server certificate and the client
	// CA, and trust it on the client.
	fatalIf(t, ca.Issue(f.pki.ServerCert, f.pki.ServerKey, "127.0.0.1", x509.ExtKeyUsageServerAuth))
	fatalIf(t, ca.Issue(f.pki.ClientCert, f.pki.ClientKey, "gatekeeper", x509.ExtKeyUsageClientAuth))
	fatalIf(t, copyFile(ca.File, f.pki.CAFile))
	f.pki.CAPEM = ca.PEM
	f.srv.Reload()
	after := serial()
	if after == before {
		t.Error("rotated certificate not served")
	}
	// A broken key file is refused: the rotated certificate keeps serving.
	fatalIf(t, os.WriteFile(f.pki.ServerKey, []byte("not a key"), 0o600))
	f.srv.Reload()
	if again := serial(); again != after {
		t.Error("certificate changed on a refused reload")
	}
	if status, body := f.get(f.srv.HealthAddr(), "/readyz"); status != 200 || !strings.Contains(body, `"tlsError":"server.tls.certFile`) {
		t.Errorf("/readyz %d %s", status, body)
	}
	if _, m := f.get(f.srv.HealthAddr(), "/metrics"); !strings.Contains(m, `awssigner_last_reload_success{what="tls"} 0`) {
		t.Error("refused TLS reload not in the metrics")
	}
}

// /healthz, /readyz and /metrics on the health listener.
func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t, "5m", nil)
	ref, _, _ := f.signed("team/app", "v1", "")
	f.query(provider.VerifyPath, ref)
	f.query(provider.VerifyPath, ref)
	if s, b := f.get(f.srv.HealthAddr(), "/healthz"); s != 200 || b != "ok\n" {
		t.Errorf("/healthz %d %q", s, b)
	}
	if s, b := f.get(f.srv.HealthAddr(), "/readyz"); s != 200 || !strings.Contains(b, `"ready":true`) {
		t.Errorf("/readyz %d %q", s, b)
	}
	f.wantMetrics(`awssigner_provider_requests_total{code="200",endpoint="verify"} 2`,
		`awssigner_provider_keys_total{endpoint="verify",outcome="verified"} 2`,
		`awssigner_outcome_cache_lookups_total{result="hit"} 1`,
		`awssigner_outcome_cache_lookups_total{result="miss"} 1`,
		`awssigner_signer_revocation_checks_total 1`,
		`awssigner_signature_verifications_total{reason="",verdict="verified"} 1`,
		`awssigner_provider_request_duration_seconds_bucket`)
	if strings.Contains(f.logs.String(), "AKIDHARNESS") || strings.Contains(f.logs.String(), "secret") {
		t.Error("credentials in the log")
	}
}

// SIGTERM's path: Shutdown drains a request in flight.
func TestGracefulShutdown(t *testing.T) {
	f := newFixture(t, "5m", nil)
	ref, _, _ := f.signed("team/app", "v1", "")
	f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Latency: 500 * time.Millisecond})
	done := make(chan map[string]item)
	go func() { done <- f.query(provider.VerifyPath, ref) }()
	// Shut down once the request is in flight (AWS Signer has it).
	for wait := time.Now().Add(30 * time.Second); f.signerCalls() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatal("the request never reached AWS Signer")
		}
	}
	ctx := ctxT(t)
	fatalIf(t, f.srv.Shutdown(ctx))
	items := <-done
	if v, _ := items[ref].value(t); !v.Succeeded {
		t.Error("in-flight request not completed")
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// AWS Signer failing: 100 simultaneous admissions of one image are all
// refused (strict fails closed, "could not check") and make one check
// (its 3 attempts), not 100, so a struggling Signer is not stormed.
func TestConcurrentAdmissionsSignerDown(t *testing.T) {
	f := newFixture(t, "5m", map[string]any{"verifyTimeout": "20s"})
	ref, _, _ := f.signed("team/app", "v1", "")
	f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500, Latency: 100 * time.Millisecond})
	var wg sync.WaitGroup
	bad := make(chan string, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, pr := f.post(provider.VerifyPath, requestBody(ref))
			b, _ := json.Marshal(pr.Response.Items)
			if !strings.Contains(string(b), `\"verdict\":\"couldNotCheck\"`) || strings.Contains(string(b), `"succeeded":true`) {
				bad <- string(b)
			}
		}()
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("not refused as could not check: %.300s", b)
	}
	if n := f.signerCalls(); n > 3 {
		t.Errorf("%d GetRevocationStatus attempts for 100 simultaneous admissions, want one check (≤ 3 attempts)", n)
	}
}
