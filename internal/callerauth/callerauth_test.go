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
	o.APIServer, o.ReadFile = srv.URL, os.ReadFile
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
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

// A slow API server and callers with ever new tokens (never remembered:
// only admissions are) do not make serve open unbounded TokenReviews: at
// most MaxConcurrentReviews are in flight; the others wait for a slot.
func TestReviewsBounded(t *testing.T) {
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	srv, _ := apiServer(t, func(spec tokenReviewSpec) tokenReviewStatus {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return allowed(spec)
	})
	a := newAuth(t, srv, Options{Timeout: 20 * time.Second})
	const callers = 3 * MaxConcurrentReviews
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		go func() { errs <- a.Authenticate(context.Background(), request(fmt.Sprintf("token%d", i))) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < MaxConcurrentReviews && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for any review over the bound to arrive
	if n := most.Load(); n != MaxConcurrentReviews {
		t.Errorf("%d TokenReviews in flight at once, want %d (MaxConcurrentReviews)", n, MaxConcurrentReviews)
	}
	close(release)
	for i := 0; i < callers; i++ {
		if err := <-errs; err != nil {
			t.Errorf("a caller waiting for a slot: %v", err)
		}
	}
	if most.Load() > MaxConcurrentReviews {
		t.Errorf("%d TokenReviews in flight at once after the release, bound %d", most.Load(), MaxConcurrentReviews)
	}
}

// What the API server says goes into the 401/403 message (and the log)
// without the caller's token, on one line, bounded.
func TestAPIServerTextNotEchoed(t *testing.T) {
	token := jwt(time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name   string
		status func(tokenReviewSpec) tokenReviewStatus
		code   int
	}{
		{"error echoing the token", func(spec tokenReviewSpec) tokenReviewStatus {
			var st tokenReviewStatus
			st.Error = "token " + spec.Token + " is unknown\nsecond line " + strings.Repeat("x", 4096)
			return st
		}, 401},
		{"username echoing the token", func(spec tokenReviewSpec) tokenReviewStatus {
			st := allowed(spec)
			st.User.Username = "user-" + spec.Token + strings.Repeat("y", 4096)
			return st
		}, 403},
		{"audiences echoing the token", func(spec tokenReviewSpec) tokenReviewStatus {
			st := allowed(spec)
			st.Audiences = []string{spec.Token, strings.Repeat("z", 4096)}
			return st
		}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := apiServer(t, tc.status)
			a := newAuth(t, srv, Options{})
			err := a.Authenticate(context.Background(), request(token))
			var e *Error
			if !errorsAs(err, &e) || e.Status != tc.code {
				t.Fatalf("%v", err)
			}
			if msg := e.Error(); strings.Contains(msg, token) || strings.Contains(msg, "\n") || len(msg) > 2048 {
				t.Errorf("message (%d bytes) echoes the token, spans lines or is unbounded: %.300q", len(msg), msg)
			}
		})
	}
}

// A bearer value outside RFC 6750's token syntax is refused without a
// review.
func TestNotAToken(t *testing.T) {
	srv, calls := apiServer(t, allowed)
	a := newAuth(t, srv, Options{})
	for _, tok := range []string{"a b", "abc\xffdef", `abc"def`, "===", "abc=def", "x\u00e9y"} {
		r := httptest.NewRequest(http.MethodPost, "/checkimages", nil)
		r.Header["Authorization"] = []string{"Bearer " + tok}
		var e *Error
		if err := a.Authenticate(context.Background(), r); !errorsAs(err, &e) || e.Status != 401 || e.Outcome != OutcomeInvalidToken {
			t.Errorf("%q: %v", tok, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d TokenReviews for values that are no token", calls.Load())
	}
	for _, tok := range []string{"abc.def-ghi_jkl~mno+pqr/stu==", "abcdef.0123456789abcdef"} {
		if err := a.Authenticate(context.Background(), request(tok)); err != nil {
			t.Errorf("%q: %v", tok, err)
		}
	}
}

// An API server's answer is read within bounds: headers and body over
// 64 KiB refuse (503), they are not read whole.
func TestAnswerBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter, rev tokenReview)
		want  string
	}{
		{"headers", func(w http.ResponseWriter, rev tokenReview) {
			for i := 0; i < 100; i++ {
				w.Header().Add(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("h", 1024))
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(rev)
		}, "headers exceeded"},
		{"body", func(w http.ResponseWriter, rev tokenReview) {
			w.WriteHeader(http.StatusCreated)
			b, _ := json.Marshal(rev)
			w.Write(append(b[:len(b)-1], []byte(`,"pad":"`+strings.Repeat("b", 100<<10)+`"}`)...))
		}, "over 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var rev tokenReview
				json.NewDecoder(r.Body).Decode(&rev)
				rev.Status = allowed(rev.Spec)
				tc.write(w, rev)
			}))
			t.Cleanup(srv.Close)
			a := newAuth(t, srv, Options{})
			var e *Error
			if err := a.Authenticate(context.Background(), request("tok")); !errorsAs(err, &e) || e.Status != 503 || !strings.Contains(e.Msg, tc.want) {
				t.Errorf("%v", err)
			}
		})
	}
}
