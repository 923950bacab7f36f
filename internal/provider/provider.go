// Package provider is a Gatekeeper external-data provider
// (externaldata.gatekeeper.sh/v1beta1 ProviderRequest → ProviderResponse)
// for AWS Signer verification: /ratify/gatekeeper/v2/verify answers each
// image with Ratify v2's value shape, /ratify/gatekeeper/v2/mutate with the
// verified image's digest reference. One item per distinct key; bounded
// key count and body; every request answers within its budget, each key on
// its own (a slow image gives that key an error, not the others); bounded
// concurrency across requests; concurrent checks of one image merged.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
)

// Paths, as Ratify v2's provider serves them.
const (
	VerifyPath = "/ratify/gatekeeper/v2/verify"
	MutatePath = "/ratify/gatekeeper/v2/mutate"
)

// Wire constants of Gatekeeper's protocol.
const (
	APIVersion   = "externaldata.gatekeeper.sh/v1beta1"
	KindRequest  = "ProviderRequest"
	KindResponse = "ProviderResponse"
	apiGroup     = "externaldata.gatekeeper.sh/"
)

// answerMargin is kept from the budget to encode and send the answer.
const answerMargin = 50 * time.Millisecond

// Validator validates one image (ratifygo.Engine).
type Validator interface {
	Validate(ctx context.Context, ref string) (*ratifygo.Value, error)
}

// Limits bound one request; they come from the configuration.
type Limits struct {
	MaxKeys, MaxBodyBytes        int
	VerifyTimeout, MutateTimeout time.Duration
}

// Backend is what a configuration generation provides.
type Backend struct {
	// Validator checks images against the trust policy document
	// (trustPolicyDoc); Named against the named ones (trustPolicyDocs),
	// which the Kyverno endpoint selects per request.
	Validator  Validator
	Named      map[string]Validator
	Generation uint64
	Limits     Limits
}

// Select returns the validator of the trust policy document name ("" for
// trustPolicyDoc), and whether there is one.
func (b *Backend) Select(name string) (Validator, bool) {
	if name == "" {
		return b.Validator, b.Validator != nil
	}
	v, ok := b.Named[name]
	return v, ok
}

// Observer is told what happened (metrics); may be nil.
type Observer interface {
	// Request: one request to endpoint ("verify" or "mutate").
	Request(endpoint string, status int, keys int, d time.Duration)
	// Key: one key's outcome: "verified", "unsigned", "error", or the
	// refusal reason of its signatures (verification.Reason).
	Key(endpoint, outcome string)
}

// Options build a Provider.
type Options struct {
	// MaxConcurrency bounds the validations running at once.
	MaxConcurrency int
	Observer       Observer
	Logger         *slog.Logger
}

// Provider serves the two endpoints; safe for concurrent use.
type Provider struct {
	backend atomic.Pointer[Backend]
	sem     *semaphore.Weighted
	group   singleflight.Group
	obs     Observer
	log     *slog.Logger
}

// New returns a Provider with no backend: it answers with a system error
// until SetBackend is called.
func New(o Options) *Provider {
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{sem: semaphore.NewWeighted(int64(o.MaxConcurrency)), obs: o.Observer, log: o.Logger}
}

// SetBackend switches to a new configuration generation; requests already
// running finish with the one they started with.
func (p *Provider) SetBackend(b *Backend) { p.backend.Store(b) }

// Backend is the current configuration generation (nil before the first).
func (p *Provider) Backend() *Backend { return p.backend.Load() }

// Register adds the endpoints to mux.
func (p *Provider) Register(mux *http.ServeMux) {
	mux.HandleFunc(VerifyPath, func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, false) })
	mux.HandleFunc(MutatePath, func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, true) })
}

// Request is Gatekeeper's ProviderRequest.
type Request struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    struct {
		Keys []string `json:"keys"`
	} `json:"request"`
}

// Response is Gatekeeper's ProviderResponse.
type Response struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Response   ResponseBody `json:"response"`
}

// ResponseBody holds the items or a system error.
type ResponseBody struct {
	Idempotent  bool   `json:"idempotent"`
	Items       []Item `json:"items"`
	SystemError string `json:"systemError,omitempty"`
}

// Item is one key's answer: a value or an error.
type Item struct {
	Key   string `json:"key"`
	Value any    `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

func (p *Provider) serve(w http.ResponseWriter, r *http.Request, mutate bool) {
	start := time.Now()
	endpoint := "verify"
	if mutate {
		endpoint = "mutate"
	}
	status, keys := p.answer(w, r, mutate)
	if p.obs != nil {
		p.obs.Request(endpoint, status, keys, time.Since(start))
	}
}

// answer writes the response and returns its status and key count.
func (p *Provider) answer(w http.ResponseWriter, r *http.Request, mutate bool) (int, int) {
	fail := func(status int, format string, args ...any) (int, int) {
		msg := fmt.Sprintf(format, args...)
		p.log.Warn("request refused", "path", r.URL.Path, "status", status, "error", msg)
		write(w, status, Response{APIVersion: APIVersion, Kind: KindResponse, Response: ResponseBody{Idempotent: mutate, Items: []Item{}, SystemError: msg}})
		return status, 0
	}
	b := p.backend.Load()
	if b == nil {
		return fail(http.StatusServiceUnavailable, "the provider has no valid configuration yet; see its log and /readyz")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "method %s: Gatekeeper's external-data protocol POSTs a ProviderRequest", r.Method)
	}
	budget := b.Limits.VerifyTimeout
	if mutate {
		budget = b.Limits.MutateTimeout
	}
	ctx, cancel := WithBudget(r.Context(), budget)
	defer cancel()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(b.Limits.MaxBodyBytes)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fail(http.StatusRequestEntityTooLarge, "request body is over %d bytes (server.maxBodyBytes); send fewer keys per request", b.Limits.MaxBodyBytes)
		}
		return fail(http.StatusBadRequest, "could not read the request body: %v", err)
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(http.StatusBadRequest, "request is not a JSON ProviderRequest: %v", err)
	}
	if req.Kind != KindRequest || len(req.APIVersion) <= len(apiGroup) || req.APIVersion[:len(apiGroup)] != apiGroup {
		return fail(http.StatusBadRequest, "request has apiVersion %q and kind %q; want %s %s", req.APIVersion, req.Kind, APIVersion, KindRequest)
	}
	keys := dedupe(req.Request.Keys)
	if len(keys) > b.Limits.MaxKeys {
		return fail(http.StatusRequestEntityTooLarge, "request has %d distinct keys, over the limit of %d (server.maxKeys)", len(keys), b.Limits.MaxKeys)
	}
	items := make([]Item, len(keys))
	done := make(chan struct{}, len(keys))
	for i, key := range keys {
		go func() {
			items[i] = p.item(ctx, b, key, mutate)
			done <- struct{}{}
		}()
	}
	for range keys {
		<-done
	}
	write(w, http.StatusOK, Response{APIVersion: APIVersion, Kind: KindResponse, Response: ResponseBody{Idempotent: mutate, Items: items}})
	return http.StatusOK, len(keys)
}

// WithBudget is the context of a request with budget: a little is kept
// to encode and send the answer.
func WithBudget(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(budget-answerMargin, budget/2))
}

// item answers one key; it returns by ctx's deadline whatever the
// registry or AWS do.
func (p *Provider) item(ctx context.Context, b *Backend, key string, mutate bool) Item {
	endpoint := "verify"
	if mutate {
		endpoint = "mutate"
	}
	out := Item{Key: key}
	observe := func(outcome string) {
		if p.obs != nil {
			p.obs.Key(endpoint, outcome)
		}
	}
	ref, err := imageRef(key)
	if err != nil {
		out.Error = err.Error()
		observe("error")
		return out
	}
	v, err := p.Check(ctx, b, "", ref)
	if err != nil {
		out.Error = err.Error()
		observe("error")
		p.log.Info("image not checked", "endpoint", endpoint, "key", key, "error", out.Error)
		return out
	}
	outcome := Outcome(v)
	observe(outcome)
	p.log.Debug("image checked", "endpoint", endpoint, "key", key, "outcome", outcome)
	if !mutate {
		out.Value = v
		return out
	}
	digested, ok := v.Digested()
	if !v.Succeeded || !ok {
		out.Error = fmt.Sprintf("%s is not verified (%s), so its tag is not replaced by a digest; the validating policy decides about it", ref, outcome)
		return out
	}
	out.Value = digested
	return out
}

// Check validates ref against b's trust policy document trustPolicy (""
// for trustPolicyDoc) on the one path every endpoint takes: merged with
// any identical validation in flight, within ctx's deadline and a
// concurrency slot shared by all requests. A merged call that ran out of
// its first caller's budget is run again for a caller that still has
// time.
func (p *Provider) Check(ctx context.Context, b *Backend, trustPolicy, ref string) (*ratifygo.Value, error) {
	v, ok := b.Select(trustPolicy)
	if !ok {
		return nil, fmt.Errorf("could not check %s: no trust policy document named %q is configured", ref, trustPolicy)
	}
	key := strconv.FormatUint(b.Generation, 10) + " " + trustPolicy + " " + ref
	value, again, err := p.validateOnce(ctx, v, key, ref)
	if again {
		value, again, err = p.validateOnce(ctx, v, key, ref)
		if again {
			err = fmt.Errorf("could not check %s: two merged checks in a row ran out of their budgets; the admission controller should deny it and retry later", ref)
		}
	}
	return value, err
}

// merged is a merged validation's result and the deadline it ran to.
type merged struct {
	value    *ratifygo.Value
	deadline time.Time
}

func (p *Provider) validateOnce(ctx context.Context, validator Validator, key, ref string) (*ratifygo.Value, bool, error) {
	deadline, _ := ctx.Deadline()
	ch := p.group.DoChan(key, func() (any, error) {
		// The merged call belongs to no single request: it keeps the
		// first caller's deadline but not its cancellation.
		cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		if err := p.sem.Acquire(cctx, 1); err != nil {
			return merged{deadline: deadline}, &busyError{ref: ref, err: err}
		}
		defer p.sem.Release(1)
		v, err := validator.Validate(cctx, ref)
		return merged{value: v, deadline: deadline}, err
	})
	budget := func() error {
		return fmt.Errorf("could not check %s within the request budget (registry or AWS Signer too slow); the admission controller should deny it and retry later", ref)
	}
	select {
	case res := <-ch:
		m, _ := res.Val.(merged)
		failed := res.Err != nil || m.value == nil || !m.value.Succeeded
		if ctx.Err() != nil || (failed && !res.Shared && ratifygo.RanOut(deadline, time.Now())) {
			// Whatever came back was cut short by this request's own
			// deadline (the SDK gives up a little before it).
			return nil, false, budget()
		}
		if res.Shared && failed && ratifygo.RanOut(m.deadline, time.Now()) {
			// Another request's call that ran out of its budget.
			return nil, true, nil
		}
		if res.Err != nil {
			return nil, false, res.Err
		}
		return m.value, false, nil
	case <-ctx.Done():
		return nil, false, budget()
	}
}

// busyError: no concurrency slot freed within the budget.
type busyError struct {
	ref string
	err error
}

func (e *busyError) Error() string {
	return fmt.Sprintf("could not check %s: the provider is at its concurrency limit (server.maxConcurrency) and no slot freed within the request budget", e.ref)
}

func (e *busyError) Unwrap() error { return e.err }

// Outcome names a value's outcome: "verified", "unsigned" (no Notation
// signature), or the reason of the first refused signature of ours.
func Outcome(v *ratifygo.Value) string {
	if v.Succeeded {
		return "verified"
	}
	for _, r := range v.Reports() {
		if r.Reason != "" {
			return string(r.Reason)
		}
	}
	if len(v.ArtifactReports) == 0 {
		return "unsigned"
	}
	return "refused"
}

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func write(w http.ResponseWriter, status int, resp Response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(resp)
}
