package serve

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/callerauth"
)

// TokenReviewPath is where the Kubernetes API serves TokenReviews.
const TokenReviewPath = callerauth.ReviewPath

// TokenReviewer is a narrow fake of one Kubernetes API, TokenReview
// (authentication.k8s.io/v1), over HTTPS on loopback: it answers as
// kube-apiserver does for the tokens Issue made (authenticated with the
// audiences the token and the request share, else not authenticated with
// an error), refuses callers without the reviewer's own token (401, as an
// API server refuses an unknown service account), and counts reviews.
type TokenReviewer struct {
	// URL is "https://127.0.0.1:PORT"; CAFile the CA of its certificate;
	// TokenFile serve's own token, the one allowed to create TokenReviews.
	URL, CAFile, TokenFile string

	srv    *httptest.Server
	self   string
	mu     sync.Mutex
	tokens map[string]identity
	calls  atomic.Int64
	down   atomic.Int64 // HTTP status to answer every review with (0: none)
}

type identity struct {
	username  string
	audiences []string
}

// NewTokenReviewer starts one and writes its CA and serve's token under
// dir.
func NewTokenReviewer(dir string) (*TokenReviewer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	t := &TokenReviewer{tokens: map[string]identity{}, self: randomToken(), CAFile: filepath.Join(dir, "ca.crt"), TokenFile: filepath.Join(dir, "token")}
	t.srv = httptest.NewTLSServer(http.HandlerFunc(t.serve))
	t.URL = t.srv.URL
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: t.srv.Certificate().Raw})
	if err := os.WriteFile(t.CAFile, ca, 0o600); err != nil {
		t.Close()
		return nil, err
	}
	if err := os.WriteFile(t.TokenFile, []byte(t.self+"\n"), 0o600); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Issue returns a new token of username, valid for audiences (as
// `kubectl create token <sa> --audience …` makes).
func (t *TokenReviewer) Issue(username string, audiences ...string) string {
	tok := randomToken()
	t.mu.Lock()
	t.tokens[tok] = identity{username: username, audiences: audiences}
	t.mu.Unlock()
	return tok
}

// Revoke forgets a token (a deleted service account or secret).
func (t *TokenReviewer) Revoke(token string) {
	t.mu.Lock()
	delete(t.tokens, token)
	t.mu.Unlock()
}

// Calls is the number of TokenReviews answered or refused.
func (t *TokenReviewer) Calls() int { return int(t.calls.Load()) }

// Fail makes every review answer status (0: answer normally again), as an
// API server that is down behind a load balancer (503) or refuses serve's
// service account (403) does.
func (t *TokenReviewer) Fail(status int) { t.down.Store(int64(status)) }

// Close stops it.
func (t *TokenReviewer) Close() { t.srv.Close() }

// tokenReview is the part of authentication.k8s.io/v1 TokenReview used.
type tokenReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Token     string   `json:"token"`
		Audiences []string `json:"audiences,omitempty"`
	} `json:"spec"`
	Status struct {
		Authenticated bool `json:"authenticated"`
		User          *struct {
			Username string   `json:"username"`
			UID      string   `json:"uid"`
			Groups   []string `json:"groups"`
		} `json:"user,omitempty"`
		Audiences []string `json:"audiences,omitempty"`
		Error     string   `json:"error,omitempty"`
	} `json:"status"`
}

func (t *TokenReviewer) serve(w http.ResponseWriter, r *http.Request) {
	t.calls.Add(1)
	status := func(code int, reason string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"code":%d}`, reason, code)
	}
	if code := int(t.down.Load()); code != 0 {
		status(code, "the fake API server is told to fail")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+t.self {
		status(http.StatusUnauthorized, "Unauthorized")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != TokenReviewPath {
		status(http.StatusNotFound, "the fake API server serves POST "+TokenReviewPath+" only")
		return
	}
	var rev tokenReview
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rev); err != nil || rev.APIVersion != "authentication.k8s.io/v1" || rev.Kind != "TokenReview" {
		status(http.StatusBadRequest, fmt.Sprintf("not a TokenReview: %v", err))
		return
	}
	t.mu.Lock()
	id, ok := t.tokens[rev.Spec.Token]
	t.mu.Unlock()
	var shared []string
	for _, a := range rev.Spec.Audiences {
		if slices.Contains(id.audiences, a) {
			shared = append(shared, a)
		}
	}
	switch {
	case !ok:
		rev.Status.Error = "[invalid bearer token, service account token has been invalidated]"
	case len(shared) == 0:
		rev.Status.Error = fmt.Sprintf("[invalid bearer token, token audiences %q is invalid for the target audiences %q]", id.audiences, rev.Spec.Audiences)
	default:
		rev.Status.Authenticated = true
		rev.Status.User = &struct {
			Username string   `json:"username"`
			UID      string   `json:"uid"`
			Groups   []string `json:"groups"`
		}{Username: id.username, UID: "uid-" + id.username, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
		rev.Status.Audiences = shared
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(rev)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}
