// Package kyverno answers Kyverno's apiCall on POST /checkimages, with the
// request and response of kyverno-notation-aws (Nirmata's extension
// service, the Kyverno path of AWS's guide), so a policy switches by its
// service URL: Kyverno's images variable, imageReferences patterns and a
// trust policy document chosen by name in; {"verified", "message",
// "results"} out, the results being JSON patches that pin every verified
// image given by tag to its digest. A refusal or an image that could not be
// checked is HTTP 406 with one line per image (Kyverno denies with it).
//
// Every image goes through the provider's one validation path
// (provider.Provider.Check: merged checks, the shared concurrency bound,
// the outcome cache, the request budget), exactly as Gatekeeper's.
package kyverno

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
)

// Path is kyverno-notation-aws's endpoint.
const Path = "/checkimages"

// Endpoint is the endpoint label of the Kyverno listener's metrics.
const Endpoint = "kyverno"

// Authenticator decides whether a request's caller is served
// (internal/callerauth). A refusal's error has an HTTPStatus() int method
// (401, 403, 503); any other error is answered 503.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) error
}

// Backend is what a configuration generation provides.
type Backend struct {
	// Core holds the validators (trustPolicyDoc and trustPolicyDocs) and
	// the limits shared with Gatekeeper's endpoints (maxKeys,
	// maxBodyBytes).
	Core *provider.Backend
	// Timeout is the budget of one request (server.kyverno.timeout).
	Timeout time.Duration
	// Auth checks the caller; nil refuses every request (503).
	Auth Authenticator
}

// Options build a Handler.
type Options struct {
	// Provider runs every validation (provider.Provider.Check).
	Provider *provider.Provider
	// Observer is told of requests and images (metrics); may be nil.
	Observer provider.Observer
	Logger   *slog.Logger
}

// Handler serves Path; safe for concurrent use.
type Handler struct {
	p       *provider.Provider
	backend atomic.Pointer[Backend]
	obs     provider.Observer
	log     *slog.Logger
}

// New returns a Handler with no backend: it answers 503 until SetBackend.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{p: o.Provider, obs: o.Observer, log: o.Logger}
}

// SetBackend switches to a new configuration generation; requests already
// running finish with the one they started with.
func (h *Handler) SetBackend(b *Backend) { h.backend.Store(b) }

// Backend is the current configuration generation (nil before the first).
func (h *Handler) Backend() *Backend { return h.backend.Load() }

// Register adds Path to mux.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle(Path, h) }

// Response is the answer to a request whose selected images all verified.
type Response struct {
	Verified bool     `json:"verified"`
	Message  string   `json:"message"`
	Results  []Result `json:"results"`
}

// Result is one JSON patch (RFC 6902) for Kyverno's mutate.foreach.
type Result struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status, images := h.answer(w, r)
	if h.obs != nil {
		h.obs.Request(Endpoint, status, images, time.Since(start))
	}
}

// statusError is an answer other than 200: its status and one-line
// reason (text/plain).
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) *statusError {
	return &statusError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request) (int, int) {
	b := h.backend.Load()
	if b == nil {
		return h.fail(w, r, refuse(http.StatusServiceUnavailable, "awssigner serve has no valid configuration yet; see its log and /readyz"))
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.fail(w, r, refuse(http.StatusMethodNotAllowed, "method %s: Kyverno's apiCall POSTs the images to check (method: POST)", r.Method))
	}
	ctx, cancel := provider.WithBudget(r.Context(), b.Timeout)
	defer cancel()
	if err := h.authenticate(ctx, b, r); err != nil {
		return h.fail(w, r, err)
	}
	limits := b.Core.Limits
	body, err := readBody(ctx, w, r, limits.MaxBodyBytes)
	if err != nil {
		var big *http.MaxBytesError
		switch {
		case errors.As(err, &big):
			return h.fail(w, r, refuse(http.StatusRequestEntityTooLarge, "request body is over %d bytes (server.maxBodyBytes)", limits.MaxBodyBytes))
		case errors.Is(err, os.ErrDeadlineExceeded):
			return h.fail(w, r, refuse(http.StatusRequestTimeout, "the request body did not arrive within the request budget (server.kyverno.timeout %s)", b.Timeout))
		}
		return h.fail(w, r, refuse(http.StatusBadRequest, "could not read the request body: %v", err))
	}
	req, entries, err := decode(body, limits.MaxKeys)
	if err != nil {
		var big *tooLarge
		if errors.As(err, &big) {
			return h.fail(w, r, refuse(http.StatusRequestEntityTooLarge, "%s", big.msg))
		}
		return h.fail(w, r, refuse(http.StatusBadRequest, "%v", err))
	}
	if len(req.Attestations) > 0 {
		return h.fail(w, r, refuse(http.StatusNotAcceptable, "attestations are not supported by awssigner serve: it verifies AWS Signer signatures only; remove the attestations key from the apiCall's data (or check attestations with Kyverno's own verifyImages rules)"))
	}
	if req.Insecure {
		return h.fail(w, r, refuse(http.StatusNotAcceptable, "insecure is not taken from a request: how registries are reached is set in awssigner serve's configuration (server.registry.plainHTTP); remove insecure from the apiCall's data"))
	}
	if _, ok := b.Core.Select(req.TrustPolicy); !ok {
		return h.fail(w, r, refuse(http.StatusNotAcceptable, "trust policy %q is not configured (configured trustPolicyDocs: %s; an empty or absent trustPolicy selects trustPolicyDoc)",
			req.TrustPolicy, names(b.Core.Named)))
	}
	return h.check(ctx, w, r, b, req, entries)
}

// authenticate runs the backend's Authenticator; any failure refuses.
func (h *Handler) authenticate(ctx context.Context, b *Backend, r *http.Request) *statusError {
	if b.Auth == nil {
		return refuse(http.StatusServiceUnavailable, "caller authentication is not configured; no request is served")
	}
	err := b.Auth.Authenticate(ctx, r)
	if err == nil {
		return nil
	}
	status := http.StatusServiceUnavailable
	var s interface{ HTTPStatus() int }
	if errors.As(err, &s) {
		status = s.HTTPStatus()
	}
	return refuse(status, "%v", err)
}

// readBody reads r's body, at most max bytes, by ctx's deadline (the
// request budget; the server's ReadTimeout is longer): a caller that
// sends its body slowly is cut off when its budget ends.
func readBody(ctx context.Context, w http.ResponseWriter, r *http.Request, max int) ([]byte, error) {
	rc := http.NewResponseController(w)
	if deadline, ok := ctx.Deadline(); ok {
		if err := rc.SetReadDeadline(deadline); err == nil {
			defer rc.SetReadDeadline(time.Time{})
		}
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
}

// checked is one distinct image's answer.
type checked struct {
	digest string // the verified digest, "" unless verified
	msg    string // why not, "" when verified
}

// Bounds of an answer's text: Kyverno puts a 406 body in its denial, and
// a 200 message in the policy's; an image's line (every message of every
// signature of it), the 406 body and each list of the 200 message are cut
// at these lengths, saying how many images were left out.
const (
	maxLineBytes   = 4 << 10
	maxAnswerBytes = 64 << 10
	maxListBytes   = 16 << 10
)

// selection is what imageReferences and skipImageReferences make of an
// image.
type selection int

const (
	checkedImage selection = iota // selected: verified, pinned when by tag
	notSelected                   // matches no imageReferences pattern
	exempted                      // matches a skipImageReferences pattern
)

// check validates every selected image (each distinct one once, all at
// once, within the budget) and writes the answer.
func (h *Handler) check(ctx context.Context, w http.ResponseWriter, r *http.Request, b *Backend, req *Request, entries []entry) (int, int) {
	var selected, skipped, exempt []entry
	class := map[string]selection{} // by entry.ref: the same image in several places is matched once
	steps := MaxMatchSteps
	for _, e := range entries {
		c, ok := class[e.ref]
		if !ok {
			switch {
			case len(req.ImageReferences) > 0 && !matches(req.ImageReferences, e, &steps):
				c = notSelected
			case matches(req.SkipImageReferences, e, &steps):
				c = exempted
			}
			if steps < 0 {
				return h.fail(w, r, refuse(http.StatusBadRequest, "imageReferences and skipImageReferences (%d distinct patterns) take over %d steps to match against the request's %d images; use fewer patterns, or fewer * in them",
					len(req.ImageReferences)+len(req.SkipImageReferences), MaxMatchSteps, len(entries)))
			}
			class[e.ref] = c
		}
		switch c {
		case notSelected:
			skipped = append(skipped, e)
		case exempted:
			exempt = append(exempt, e)
		default:
			selected = append(selected, e)
		}
	}
	refs := map[string]string{} // image as Kyverno wrote it → reference checked
	var distinct []string
	for _, e := range selected {
		if _, ok := refs[e.ref]; !ok {
			refs[e.ref] = e.norm
			distinct = append(distinct, e.ref)
		}
	}
	answers := make([]checked, len(distinct))
	done := make(chan struct{}, len(distinct))
	for i, ref := range distinct {
		go func() {
			answers[i] = h.one(ctx, b, req.TrustPolicy, refs[ref])
			done <- struct{}{}
		}()
	}
	for range distinct {
		<-done
	}
	byRef := make(map[string]checked, len(distinct))
	var failed []string
	for i, ref := range distinct {
		byRef[ref] = answers[i]
		if answers[i].msg != "" {
			failed = append(failed, cut(ref+": "+answers[i].msg, maxLineBytes))
		}
	}
	if len(failed) > 0 {
		return h.fail(w, r, &statusError{status: http.StatusNotAcceptable,
			msg: bounded(failed, "\n", maxAnswerBytes, "… and %d more images not verified (the first %d are listed)")})
	}
	resp := Response{Verified: true, Results: []Result{}}
	for _, e := range selected {
		if e.image.Digest != "" {
			continue
		}
		resp.Results = append(resp.Results, Result{Op: "replace", Path: e.image.JSONPointer, Value: e.image.Repository() + "@" + byRef[e.ref].digest})
	}
	resp.Message = summary(distinct, skipped, exempt, req.TrustPolicy)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(resp)
	return http.StatusOK, len(distinct)
}

// one checks one image through the provider's shared path.
func (h *Handler) one(ctx context.Context, b *Backend, trustPolicy, ref string) checked {
	observe := func(outcome string) {
		if h.obs != nil {
			h.obs.Key(Endpoint, outcome)
		}
	}
	v, err := h.p.Check(ctx, b.Core, trustPolicy, ref)
	if err != nil {
		observe("error")
		return checked{msg: err.Error()}
	}
	outcome := provider.Outcome(v)
	observe(outcome)
	if digested, ok := v.Digested(); v.Succeeded && ok {
		return checked{digest: digestOf(digested)}
	}
	return checked{msg: refusal(v, ref, outcome)}
}

// refusal says why v did not pass: our reports' messages (what was
// checked, found, and what to do), or that there is no signature.
func refusal(v *ratifygo.Value, ref, outcome string) string {
	var msgs []string
	seen := map[string]bool{}
	for _, rep := range v.Reports() {
		if rep.Message != "" && !seen[rep.Message] {
			seen[rep.Message] = true
			msgs = append(msgs, rep.Message)
		}
	}
	subject := ""
	if d, ok := v.Digested(); ok {
		subject = " [digest " + digestOf(d) + "]"
	}
	switch {
	case len(msgs) > 0:
		return strings.Join(msgs, "; ") + subject
	case outcome == "unsigned":
		return fmt.Sprintf("no Notation signature found for %s%s: the image is not signed (or its signatures are in another repository); sign it with AWS Signer (awssigner sign %s --profile-arn ARN)", ref, subject, ref)
	}
	return fmt.Sprintf("%s is not verified (%s)%s: no signature of it passed the awssigner verifier", ref, outcome, subject)
}

// digestOf is the digest of "<repository>@<digest>".
func digestOf(digested string) string { return digested[strings.LastIndex(digested, "@")+1:] }

// matches tells whether a pattern matches e's image as Kyverno wrote it
// or in its normalized form (docker.io/library/… expanded), so a pattern
// written either way means what it says; within *steps (see match).
func matches(patterns []string, e entry, steps *int) bool {
	for _, p := range patterns {
		if match(p, e.ref, steps) || (e.norm != e.ref && match(p, e.norm, steps)) {
			return true
		}
		if *steps < 0 {
			return false
		}
	}
	return false
}

func summary(verified []string, skipped, exempt []entry, trustPolicy string) string {
	noun := "images"
	if len(verified) == 1 {
		noun = "image"
	}
	policy := "trustPolicyDoc"
	if trustPolicy != "" {
		policy = "trust policy " + trustPolicy
	}
	msg := fmt.Sprintf("%d %s verified with %s", len(verified), noun, policy)
	if len(verified) > 0 {
		msg += ": " + bounded(verified, ", ", maxListBytes, "… and %d more (the first %d are listed)")
	}
	for _, l := range []struct {
		what    string
		entries []entry
	}{{"not selected by imageReferences", skipped}, {"skipped by skipImageReferences", exempt}} {
		if len(l.entries) == 0 {
			continue
		}
		var s []string
		for _, e := range l.entries {
			s = append(s, e.ref)
		}
		msg += "; " + l.what + ": " + bounded(slices.Compact(slices.Sorted(slices.Values(s))), ", ", maxListBytes, "… and %d more (the first %d are listed)")
	}
	return msg
}

// bounded joins items with sep up to about max bytes; the items left out
// are counted with more (a format taking how many were left out and how
// many are listed).
func bounded(items []string, sep string, max int, more string) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 && b.Len()+len(sep)+len(it) > max {
			return b.String() + sep + fmt.Sprintf(more, len(items)-i, i)
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(it)
	}
	return b.String()
}

// cut bounds s to max bytes (at a character boundary), marking the cut.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + " …(cut)"
}

func names[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// fail writes a non-200 answer: text/plain, the reason as the body, which
// Kyverno puts in its denial ("failed to fetch data for APICall: HTTP 406
// Not Acceptable: <body>").
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, e *statusError) (int, int) {
	level := slog.LevelWarn
	if e.status == http.StatusNotAcceptable {
		level = slog.LevelInfo
	}
	h.log.Log(r.Context(), level, "kyverno request refused", "path", r.URL.Path, "status", e.status, "reason", e.msg)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="awssigner"`)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	io.WriteString(w, e.msg+"\n")
	return e.status, 0
}
