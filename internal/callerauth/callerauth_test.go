package callerauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// apiServer answers every TokenReview with status (a small fake of the one
// API) and counts them.
func apiServer(t *testing.T, status func(spec tokenReviewSpec) tokenReviewStatus) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var rev tokenReview
		if r.URL.Path != ReviewPath || r.Header.Get("Authorization") != "Bearer self" || json.NewDecoder(r.Body).Decode(&rev) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		rev.Status = status(rev.Spec)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(rev)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func newAuth(t *testing.T, srv *httptest.Server, o Options) *Authenticator {
	t.Helper()
	dir := t.TempDir()
	o.CAFile, o.TokenFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	os.WriteFile(o.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	os.WriteFile(o.TokenFile, []byte("self\n"), 0o600)
	o.APIServer, o.Timeout, o.ReadFile = srv.URL, time.Second, os.ReadFile
	if o.Audiences == nil {
		o.Audiences = []string{"awssigner"}
	}
	if o.AllowedCallers == nil {
		o.AllowedCallers = []string{"system:serviceaccount:kyverno:kyverno-admission-controller"}
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func request(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/checkimages", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".sig"
}

func allowed(spec tokenReviewSpec) tokenReviewStatus {
	var st tokenReviewStatus
	st.Authenticated, st.User.Username, st.Audiences = true, "system:serviceaccount:kyverno:kyverno-admission-controller", spec.Audiences
	return st
}

// An admitted token is kept no longer than its own expiry (read from the
// JWT, only to shorten the cache time).
func TestCacheBoundedByTokenExpiry(t *testing.T) {
	srv, calls := apiServer(t, allowed)
	now := time.Now()
	a := newAuth(t, srv, Options{CacheTTL: time.Minute, CacheSize: 4, Now: func() time.Time { return now }})
	soon := jwt(now.Add(10 * time.Second))
	for _, step := range []time.Duration{0, 5 * time.Second, 11 * time.Second} {
		now = now.Add(step)
		if err := a.Authenticate(context.Background(), request(soon)); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("%d reviews, want 2 (the token's exp ends its cache entry before the TTL)", calls.Load())
	}
	// Bounded: more admitted tokens than CacheSize still work.
	for i := 0; i < 10; i++ {
		if err := a.Authenticate(context.Background(), request(fmt.Sprintf("t%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.cache) > 4 {
		t.Errorf("%d cached tokens, bound 4", len(a.cache))
	}
}

// An API server that is not audience-aware (status.audiences empty) does
// not admit: the audience cannot be confirmed.
func TestAudienceMustBeConfirmed(t *testing.T) {
	srv, _ := apiServer(t, func(spec tokenReviewSpec) tokenReviewStatus {
		st := allowed(spec)
		st.Audiences = nil
		return st
	})
	a := newAuth(t, srv, Options{})
	err := a.Authenticate(context.Background(), request("x"))
	var e *Error
	if !errorsAs(err, &e) || e.Status != 401 || e.Outcome != OutcomeWrongAudience {
		t.Fatalf("%v", err)
	}
}

// The CA file is read again at every review (a rotated one is used);
// files that cannot be used are errors naming their configuration key.
func TestFiles(t *testing.T) {
	srv, _ := apiServer(t, allowed)
	a := newAuth(t, srv, Options{})
	good, _ := os.ReadFile(a.o.CAFile)
	os.WriteFile(a.o.CAFile, []byte("rotated to nothing"), 0o600)
	var e *Error
	if err := a.Authenticate(context.Background(), request("y")); !errorsAs(err, &e) || e.Status != 503 || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("CA file not read again: %v", err)
	}
	os.WriteFile(a.o.CAFile, good, 0o600)
	if err := a.Authenticate(context.Background(), request("y")); err != nil {
		t.Errorf("CA file back: %v", err)
	}
	os.WriteFile(a.o.TokenFile, nil, 0o600)
	if _, err := New(a.o); err == nil || !strings.Contains(err.Error(), "server.kyverno.tokenReview.tokenFile") {
		t.Errorf("empty token file: %v", err)
	}
	o := a.o
	o.CAFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "server.kyverno.tokenReview.caFile") {
		t.Errorf("missing CA file: %v", err)
	}
}

func errorsAs(err error, e **Error) bool { return errors.As(err, e) }
