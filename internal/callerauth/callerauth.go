// Package callerauth admits the callers of awssigner serve's Kyverno
// listener: the request's "Authorization: Bearer <token>" is sent to the
// Kubernetes API server in a TokenReview (authentication.k8s.io/v1, over
// HTTPS, authenticated with serve's own service account token), and the
// caller is served only when the token is authenticated, carries one of
// the configured audiences and names an allowed user. Admitted tokens are
// remembered by their SHA-256 for a short, bounded time; refusals and
// failures are not remembered, and a TokenReview that cannot be made
// refuses (fail closed). It speaks the one API it needs with small JSON
// types of its own (no client-go: the binary is also the Ratify plugin,
// whose start-up must stay light).
package callerauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/redact"
)

// ReviewPath is where the Kubernetes API creates TokenReviews.
const ReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"

// Bounds of what is read and sent (not configuration).
const (
	// MaxTokenBytes bounds a bearer token (a service account JWT is about
	// 1 KiB).
	MaxTokenBytes = 16 << 10
	// maxReviewBytes bounds a TokenReview answer's body (a service
	// account's is about 1 KiB) and maxReviewHeaderBytes its headers.
	maxReviewBytes       = 64 << 10
	maxReviewHeaderBytes = 64 << 10
	// MaxConcurrentReviews bounds the TokenReviews in flight at once, so
	// callers with ever new tokens (only admitted ones are remembered)
	// cannot make serve open unbounded requests to the API server; a
	// caller waits for a slot within its budget.
	MaxConcurrentReviews = 16
)

// Outcomes of one authentication, as counted in the metrics.
const (
	OutcomeAllowed       = "allowed"
	OutcomeNoToken       = "noToken"
	OutcomeInvalidToken  = "invalidToken"
	OutcomeWrongAudience = "wrongAudience"
	OutcomeForbidden     = "forbidden"
	OutcomeUnavailable   = "unavailable"
)

// Error is a refused caller: the HTTP status to answer (401 no or invalid
// token, 403 caller not allowed, 503 the TokenReview could not be made),
// the outcome, and a message that says what was checked and what to do.
type Error struct {
	Status  int
	Outcome string
	Msg     string
}

func (e *Error) Error() string { return e.Msg }

// HTTPStatus is the status to answer.
func (e *Error) HTTPStatus() int { return e.Status }

func refuse(status int, outcome, format string, args ...any) *Error {
	return &Error{Status: status, Outcome: outcome, Msg: fmt.Sprintf(format, args...)}
}

// Options configure an Authenticator (server.kyverno).
type Options struct {
	// APIServer is the API server's URL ("https://host:port").
	APIServer string
	// CAFile is the CA of the API server's certificate; TokenFile serve's
	// own service account token (read at every review: the kubelet
	// rotates it).
	CAFile, TokenFile string
	// Audiences are sent in the review; the token must carry one.
	Audiences []string
	// AllowedCallers are the usernames served.
	AllowedCallers []string
	// CacheTTL is how long an admitted token is remembered (0: never);
	// CacheSize bounds the remembered tokens.
	CacheTTL  time.Duration
	CacheSize int
	// Timeout bounds one TokenReview call.
	Timeout time.Duration
	// ReadFile reads the CA and token files, bounded (required).
	ReadFile func(path string) ([]byte, error)
	// Observe is told each outcome, CacheLookup each lookup (metrics);
	// both may be nil.
	Observe     func(outcome string)
	CacheLookup func(hit bool)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Authenticator checks callers; safe for concurrent use.
type Authenticator struct {
	o      Options
	flight singleflight.Group
	slots  *semaphore.Weighted

	mu     sync.Mutex
	cache  map[[sha256.Size]byte]admitted
	caPEM  []byte
	client *http.Client
}

type admitted struct {
	username string
	expires  time.Time
}

// New checks that the CA and token files can be used and returns an
// Authenticator; an error names the file and the configuration key.
func New(o Options) (*Authenticator, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 1
	}
	if o.Timeout <= 0 || o.ReadFile == nil || len(o.Audiences) == 0 {
		return nil, errors.New("callerauth: Options need a Timeout, ReadFile and at least one audience")
	}
	a := &Authenticator{o: o, cache: map[[sha256.Size]byte]admitted{}, slots: semaphore.NewWeighted(MaxConcurrentReviews)}
	if _, err := a.httpClient(); err != nil {
		return nil, err
	}
	if _, err := a.ownToken(); err != nil {
		return nil, err
	}
	return a, nil
}

// Authenticate implements kyverno.Authenticator: nil when r's caller is
// served, else an *Error.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) error {
	err := a.authenticate(ctx, r)
	outcome := OutcomeAllowed
	if err != nil {
		outcome = err.Outcome
	}
	if a.o.Observe != nil {
		a.o.Observe(outcome)
	}
	if err != nil {
		return err
	}
	return nil
}

func (a *Authenticator) authenticate(ctx context.Context, r *http.Request) *Error {
	token, err := bearer(r.Header.Values("Authorization"))
	if err != nil {
		return err
	}
	key := sha256.Sum256([]byte(token))
	if a.cached(key) {
		return nil
	}
	ch := a.flight.DoChan(string(key[:]), func() (any, error) {
		// Merged for every caller with this token: bounded by Timeout,
		// whoever of them gives up first.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.Timeout)
		defer cancel()
		if err := a.slots.Acquire(cctx, 1); err != nil {
			return "", refuse(http.StatusServiceUnavailable, OutcomeUnavailable, "could not check the caller: %d TokenReviews were already in flight and none ended within %s (the Kubernetes API server is slow, or serve is sent many unknown tokens); try again", MaxConcurrentReviews, a.o.Timeout)
		}
		defer a.slots.Release(1)
		username, err := a.review(cctx, token)
		if err == nil {
			a.remember(key, token, username)
		}
		return username, err
	})
	select {
	case res := <-ch:
		if res.Err == nil {
			return nil
		}
		var e *Error
		if errors.As(res.Err, &e) {
			return e
		}
		return refuse(http.StatusServiceUnavailable, OutcomeUnavailable, "could not check the caller: %v", res.Err)
	case <-ctx.Done():
		return refuse(http.StatusServiceUnavailable, OutcomeUnavailable, "could not check the caller within the request budget: the Kubernetes API server did not answer the TokenReview in time")
	}
}

// bearer is the request's bearer token.
func bearer(values []string) (string, *Error) {
	const hint = "Kyverno sends one only when a projected service account token is mounted at KYVERNO_SCOPED_TOKEN_PATH (default /var/run/secrets/kyverno/apicall/token)"
	if len(values) == 0 {
		return "", refuse(http.StatusUnauthorized, OutcomeNoToken, "no bearer token: awssigner serve answers only Kyverno's service accounts, identified by an Authorization: Bearer header; %s", hint)
	}
	if len(values) > 1 {
		return "", refuse(http.StatusUnauthorized, OutcomeNoToken, "%d Authorization headers; send one bearer token", len(values))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", refuse(http.StatusUnauthorized, OutcomeNoToken, "the Authorization header is not \"Bearer <token>\"; %s", hint)
	}
	if len(token) > MaxTokenBytes {
		return "", refuse(http.StatusUnauthorized, OutcomeInvalidToken, "the bearer token is %d bytes, over the %d-byte limit", len(token), MaxTokenBytes)
	}
	if !isToken68(token) {
		return "", refuse(http.StatusUnauthorized, OutcomeInvalidToken, "the bearer token has characters outside RFC 6750's token syntax (letters, digits, - . _ ~ + / and trailing =), so it is no Kubernetes token; it was not sent for review")
	}
	return token, nil
}

// isToken68 tells whether s is RFC 6750's b64token (token68), the syntax
// of every Kubernetes token (a JWT, a bootstrap token). Anything else is
// refused without a review: it cannot be a Kubernetes token, and a
// review would hand the API server a different string (invalid UTF-8 is
// replaced when the review is encoded as JSON) from the one hashed for
// the cache.
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func (a *Authenticator) cached(key [sha256.Size]byte) bool {
	a.mu.Lock()
	e, ok := a.cache[key]
	if ok && !a.o.Now().Before(e.expires) {
		delete(a.cache, key)
		ok = false
	}
	a.mu.Unlock()
	if a.o.CacheLookup != nil && a.o.CacheTTL > 0 {
		a.o.CacheLookup(ok)
	}
	return ok
}

// remember keeps an admitted token for CacheTTL, never past the expiry
// its payload states (read unverified, only to shorten the time).
func (a *Authenticator) remember(key [sha256.Size]byte, token, username string) {
	if a.o.CacheTTL <= 0 {
		return
	}
	now := a.o.Now()
	expires := now.Add(a.o.CacheTTL)
	if exp, ok := jwtExpiry(token); ok && exp.Before(expires) {
		expires = exp
	}
	if !now.Before(expires) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.o.CacheSize {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.o.CacheSize {
			clear(a.cache)
		}
	}
	a.cache[key] = admitted{username: username, expires: expires}
}

// jwtExpiry is the "exp" claim of a JWT's payload, if it has one.
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	sec, err := claims.Exp.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// tokenReview is the part of authentication.k8s.io/v1 TokenReview used.
type tokenReview struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Spec       tokenReviewSpec   `json:"spec"`
	Status     tokenReviewStatus `json:"status,omitzero"`
}

type tokenReviewSpec struct {
	Token     string   `json:"token"`
	Audiences []string `json:"audiences"`
}

type tokenReviewStatus struct {
	Authenticated bool `json:"authenticated"`
	User          struct {
		Username string `json:"username"`
	} `json:"user"`
	Audiences []string `json:"audiences"`
	Error     string   `json:"error"`
}

// review asks the API server about token and decides; the username when
// served.
func (a *Authenticator) review(ctx context.Context, token string) (string, error) {
	unavailable := func(format string, args ...any) (string, error) {
		return "", refuse(http.StatusServiceUnavailable, OutcomeUnavailable, "could not check the caller: "+format, args...)
	}
	client, err := a.httpClient()
	if err != nil {
		return unavailable("%v", err)
	}
	own, err := a.ownToken()
	if err != nil {
		return unavailable("%v", err)
	}
	body, _ := json.Marshal(tokenReview{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview", Spec: tokenReviewSpec{Token: token, Audiences: a.o.Audiences}})
	url := strings.TrimSuffix(a.o.APIServer, "/") + ReviewPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return unavailable("TokenReview request to %s: %v", a.o.APIServer, err)
	}
	req.Header.Set("Authorization", "Bearer "+own)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return unavailable("the Kubernetes API server %s did not answer the TokenReview within %s", a.o.APIServer, a.o.Timeout)
		}
		return unavailable("TokenReview to the Kubernetes API server %s failed: %v", a.o.APIServer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReviewBytes+1))
	if err != nil {
		return unavailable("reading the TokenReview answer of %s: %v", a.o.APIServer, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return unavailable("the Kubernetes API server refused serve's own service account (HTTP %d) for creating a TokenReview; bind serve's ServiceAccount to the ClusterRole system:auth-delegator (server.kyverno.tokenReview.tokenFile %s)", resp.StatusCode, a.o.TokenFile)
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		return unavailable("the Kubernetes API server %s answered the TokenReview with HTTP %d", a.o.APIServer, resp.StatusCode)
	case len(raw) > maxReviewBytes:
		return unavailable("the TokenReview answer of %s is over %d bytes", a.o.APIServer, maxReviewBytes)
	}
	var rev tokenReview
	if err := json.Unmarshal(raw, &rev); err != nil || rev.Kind != "TokenReview" {
		return unavailable("the Kubernetes API server %s answered with something other than a TokenReview", a.o.APIServer)
	}
	if err := a.decide(rev.Status, func(remote string) string { return remoteText(remote, token, own) }); err != nil {
		return "", err
	}
	return rev.Status.User.Username, nil
}

// remoteText is text the API server sent, fit for a message and a log
// line: each token serve holds (of 8 bytes or more) replaced, as an API
// server, or the webhook authenticator behind it, may echo the token it
// was asked about (a token echoed without its scheme name is only found by
// value); control characters made spaces (one line); then redact.Text
// (other credentials removed, at most redact.MaxLen bytes).
func remoteText(s string, tokens ...string) string {
	for _, t := range tokens {
		if len(t) >= 8 { // shorter ones are no secret, and would garble the text
			s = strings.ReplaceAll(s, t, "[token]")
		}
	}
	return redact.Text(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?")))
}

// decide: served iff authenticated, with a configured audience, as an
// allowed user. Text of the API server's in a message goes through said.
func (a *Authenticator) decide(st tokenReviewStatus, said func(string) string) error {
	audiences := strings.Join(a.o.Audiences, ", ")
	projected := "give Kyverno's apiCall token (Helm value apiCallToken.audience, mounted at KYVERNO_SCOPED_TOKEN_PATH) one of the audiences " + audiences + ", or add its audience to server.kyverno.audiences"
	if !st.Authenticated {
		why := said(st.Error)
		if strings.Contains(why, "audience") {
			return refuse(http.StatusUnauthorized, OutcomeWrongAudience, "the bearer token is not valid for audience %s (the API server says: %s); %s", audiences, why, projected)
		}
		if why == "" {
			why = "not authenticated"
		}
		return refuse(http.StatusUnauthorized, OutcomeInvalidToken, "the bearer token is not valid (the API server says: %s); Kyverno's projected token may be expired or its service account deleted", why)
	}
	if !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.o.Audiences, aud) }) {
		return refuse(http.StatusUnauthorized, OutcomeWrongAudience, "the bearer token was authenticated for audiences %s, none of them %s (server.kyverno.audiences); %s",
			said(fmt.Sprintf("%q", st.Audiences)), audiences, projected)
	}
	if !slices.Contains(a.o.AllowedCallers, st.User.Username) {
		return refuse(http.StatusForbidden, OutcomeForbidden, "caller %s is not allowed: awssigner serve answers only %s (server.kyverno.allowedCallers)",
			said(fmt.Sprintf("%q", st.User.Username)), strings.Join(a.o.AllowedCallers, ", "))
	}
	return nil
}

// httpClient is the client trusting CAFile as it is now: read at every
// review (a small file), the client rebuilt when its content changed.
func (a *Authenticator) httpClient() (*http.Client, error) {
	pemBytes, err := a.o.ReadFile(a.o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("server.kyverno.tokenReview.caFile: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil && bytes.Equal(pemBytes, a.caPEM) {
		return a.client, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("server.kyverno.tokenReview.caFile %s holds no PEM certificate", a.o.CAFile)
	}
	if a.client != nil {
		a.client.CloseIdleConnections()
	}
	a.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: a.o.Timeout, MaxResponseHeaderBytes: maxReviewHeaderBytes, ForceAttemptHTTP2: true},
		// An API server never redirects a TokenReview; following one would
		// send serve's token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	a.caPEM = pemBytes
	return a.client, nil
}

// ownToken is serve's service account token, as the kubelet keeps it.
func (a *Authenticator) ownToken() (string, error) {
	b, err := a.o.ReadFile(a.o.TokenFile)
	if err != nil {
		return "", fmt.Errorf("server.kyverno.tokenReview.tokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("server.kyverno.tokenReview.tokenFile %s is empty", a.o.TokenFile)
	}
	return tok, nil
}
