// Package signeremu is an in-process stand-in for the AWS Signer service.
//
// It answers the subset of the Signer REST-JSON API (version 2017-08-25)
// that Notation signing and verification use — PutSigningProfile,
// GetSigningProfile, SignPayload, GetRevocationStatus, RevokeSignature and
// RevokeSigningProfile — with the same paths, JSON member names, timestamp
// encodings and error shapes as the real service, so the unmodified
// aws-sdk-go-v2 signer client can talk to it once its BaseEndpoint points
// here. Signatures are real Notation JWS envelopes made by a sigkit CA.
//
// Tests steer it through methods on Emulator (revocations, injected faults,
// request counters) or, from another process, through JSON endpoints under
// /_emulator/. The SigV4 signature is not checked; only the region in its
// credential scope is read, so one emulator can serve every region.
//
// Control endpoints (mutations answer 204, mistakes 400 {"error": "..."}):
//
//	GET    /_emulator/root.pem                 the CA root verifiers must trust
//	GET    /_emulator/stats                    {"counts": {"<op>": n}}
//	POST   /_emulator/stats/reset
//	GET    /_emulator/faults                   {"faults": {"<op>": FaultJSON}}
//	POST   /_emulator/faults                   FaultJSON, "op" required
//	DELETE /_emulator/faults[?op=<op>]
//	POST   /_emulator/revoke/job               {"jobArn": "..."} or {"jobId": "..."}
//	POST   /_emulator/revoke/profile-version   {"profileVersionArn": "...", "effectiveTime": RFC 3339 (default now)}
//	POST   /_emulator/revoke/certificate       PEM body, or {"pem": "..."} or {"hash": "<96 hex>"}
//	POST   /_emulator/profiles                 {"name", "region"?, "months"?} → {"arn", "profileVersionArn"}
//	GET    /_emulator/jobs                     {"jobs": [Job]}
//
// This is test-only code.
package signeremu

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// Names of the emulated operations, as used by SetFault, Count and Counts.
const (
	OpPutSigningProfile    = "PutSigningProfile"
	OpGetSigningProfile    = "GetSigningProfile"
	OpSignPayload          = "SignPayload"
	OpGetRevocationStatus  = "GetRevocationStatus"
	OpRevokeSignature      = "RevokeSignature"
	OpRevokeSigningProfile = "RevokeSigningProfile"

	// AllOps is the SetFault wildcard: the fault applies to every operation
	// that has no fault of its own.
	AllOps = "*"
)

// Fixed values of the Notation signing platform.
const (
	PlatformID          = "Notation-OCI-SHA384-ECDSA"
	PlatformDisplayName = "Notation for Container Registries"
	PayloadFormat       = "application/vnd.cncf.notary.payload.v1+json"
	// DefaultValidityMonths is the signature validity of a profile created
	// without one.
	DefaultValidityMonths = 135
	// MaxPayloadSize is the largest payload SignPayload accepts.
	MaxPayloadSize = 4096
)

// Error codes the emulator answers with (the X-Amzn-ErrorType header).
const (
	CodeAccessDenied         = "AccessDeniedException"
	CodeInternalServiceError = "InternalServiceErrorException"
	CodeTooManyRequests      = "TooManyRequestsException"
	CodeValidation           = "ValidationException"
	CodeResourceNotFound     = "ResourceNotFoundException"
	// CodeUnknownOperation answers a request that matches no operation.
	CodeUnknownOperation = "UnknownOperationException"
)

// Options configure an Emulator; the zero value is usable.
type Options struct {
	// CA signs the envelopes; nil creates a fresh one.
	CA *sigkit.CA
	// Region answers requests whose SigV4 credential scope names no region
	// (default us-west-2). Account owns every profile and job (default
	// 111122223333).
	Region, Account string
	// Now replaces time.Now (signing times, revocation times).
	Now func() time.Time
	// Addr is where Start listens (default 127.0.0.1:0); New ignores it.
	Addr string
	// Logf, when set, receives one line per API request.
	Logf func(format string, args ...any)
}

// Emulator is an AWS Signer emulator. It is an http.Handler; Start also
// serves it on a local port. All methods are safe for concurrent use.
type Emulator struct {
	ca      *sigkit.CA
	region  string
	account string
	now     func() time.Time
	logf    func(string, ...any)
	mux     *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{}
	active    atomic.Int64
	srv       *http.Server
	url       string

	mu              sync.Mutex
	profiles        map[string]*profile // key: region + "/" + name
	jobs            map[string]*Job     // key: job id
	jobOrder        []string
	revokedJobs     map[string]bool
	revokedVersions map[string]time.Time // profile-version ARN → effective time
	revokedCerts    map[string]bool      // hex SHA-384 of RawTBSCertificate
	faults          map[string]*Fault
	counts          map[string]int
}

// Job is a signing job the emulator performed.
type Job struct {
	ID                string    `json:"jobId"`
	ARN               string    `json:"jobArn"`
	ProfileVersionARN string    `json:"profileVersionArn"`
	Region            string    `json:"region"`
	SigningTime       time.Time `json:"signingTime"`
	Expiry            time.Time `json:"expiry"`
}

type validity struct {
	Value int    `json:"value"`
	Type  string `json:"type"`
}

func (v validity) after(t time.Time) time.Time {
	switch v.Type {
	case "DAYS":
		return t.AddDate(0, 0, v.Value)
	case "YEARS":
		return t.AddDate(v.Value, 0, 0)
	default:
		return t.AddDate(0, v.Value, 0)
	}
}

type revocationRecord struct {
	effectiveFrom time.Time
	revokedAt     time.Time
	revokedBy     string
}

type profile struct {
	name, region string
	versions     []string // oldest first; the last is current
	validity     validity
	revoked      *revocationRecord
}

func (p *profile) current() string { return p.versions[len(p.versions)-1] }

// New returns an emulator that is not listening; serve it with ServeHTTP.
func New(opts Options) (*Emulator, error) {
	if opts.CA == nil {
		ca, err := sigkit.NewCA("Signer Emulator")
		if err != nil {
			return nil, fmt.Errorf("signeremu: create CA: %w", err)
		}
		opts.CA = ca
	}
	if opts.Region == "" {
		opts.Region = "us-west-2"
	}
	if !regionRE.MatchString(opts.Region) {
		return nil, fmt.Errorf("signeremu: invalid region %q", opts.Region)
	}
	if opts.Account == "" {
		opts.Account = "111122223333"
	}
	if !accountRE.MatchString(opts.Account) {
		return nil, fmt.Errorf("signeremu: account %q is not 12 digits", opts.Account)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Emulator{
		ca:              opts.CA,
		region:          opts.Region,
		account:         opts.Account,
		now:             opts.Now,
		logf:            opts.Logf,
		closed:          make(chan struct{}),
		profiles:        map[string]*profile{},
		jobs:            map[string]*Job{},
		revokedJobs:     map[string]bool{},
		revokedVersions: map[string]time.Time{},
		revokedCerts:    map[string]bool{},
		faults:          map[string]*Fault{},
		counts:          map[string]int{},
	}
	e.routes()
	return e, nil
}

// Start returns an emulator serving on opts.Addr (default 127.0.0.1:0).
func Start(opts Options) (*Emulator, error) {
	e, err := New(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("signeremu: listen: %w", err)
	}
	e.url = "http://" + ln.Addr().String()
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// URL is the base URL of a started emulator ("" for one made by New).
func (e *Emulator) URL() string { return e.url }

// CA is the certificate authority that signs the envelopes; verifiers must
// trust its root.
func (e *Emulator) CA() *sigkit.CA { return e.ca }

// Region is the region used when a request names none.
func (e *Emulator) Region() string { return e.region }

// Account is the account that owns every profile and job.
func (e *Emulator) Account() string { return e.account }

// Close stops the server (if started) and releases every request held by a
// Hang or Latency fault. It returns promptly and may be called repeatedly.
func (e *Emulator) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.closed)
		if e.srv != nil {
			err = e.srv.Close()
		}
		// Give released handlers a moment to finish; never wait long.
		deadline := time.Now().Add(2 * time.Second)
		for e.active.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	})
	return err
}

// ServeHTTP answers one Signer API or /_emulator/ control request.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.active.Add(1)
	defer e.active.Add(-1)
	e.mux.ServeHTTP(w, r)
}

func (e *Emulator) routes() {
	m := http.NewServeMux()
	m.HandleFunc("PUT /signing-profiles/{profileName}", e.op(OpPutSigningProfile, e.putSigningProfile))
	m.HandleFunc("GET /signing-profiles/{profileName}", e.op(OpGetSigningProfile, e.getSigningProfile))
	m.HandleFunc("PUT /signing-profiles/{profileName}/revoke", e.op(OpRevokeSigningProfile, e.revokeSigningProfile))
	m.HandleFunc("POST /signing-jobs/with-payload", e.op(OpSignPayload, e.signPayload))
	m.HandleFunc("PUT /signing-jobs/{jobId}/revoke", e.op(OpRevokeSignature, e.revokeSignature))
	m.HandleFunc("GET /revocations", e.op(OpGetRevocationStatus, e.getRevocationStatus))
	e.controlRoutes(m)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		e.log("%s %s -> unknown route", r.Method, r.URL.Path)
		writeError(w, &apiError{http.StatusNotFound, CodeUnknownOperation,
			fmt.Sprintf("signer emulator: no operation for %s %s", r.Method, r.URL.Path)})
	})
	e.mux = m
}

// call is one API request: its region (from SigV4 or the default) and the
// partition that region belongs to.
type call struct {
	r         *http.Request
	region    string
	partition string
}

type opFunc func(c *call) (any, *apiError)

// op wraps an operation handler with counting, fault injection and the
// response encoding.
func (e *Emulator) op(name string, fn opFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := e.begin(name)
		if f != nil {
			if !e.applyFault(w, r, name, *f) {
				return
			}
		}
		region := regionFromAuth(r.Header.Get("Authorization"))
		if region == "" {
			region = e.region
		}
		c := &call{r: r, region: region, partition: partitionOf(region)}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		resp, aerr := fn(c)
		if aerr != nil {
			e.log("%s %s %s -> %d %s: %s", name, region, r.URL.Path, aerr.status, aerr.code, aerr.msg)
			writeError(w, aerr)
			return
		}
		e.log("%s %s %s -> 200", name, region, r.URL.Path)
		w.Header().Set("X-Amzn-RequestId", uuid.NewString())
		if resp == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// applyFault performs f for one request and reports whether the request
// should then be handled normally.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, name string, f Fault) bool {
	ctx := r.Context()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-e.closed:
			writeError(w, &apiError{http.StatusServiceUnavailable, CodeInternalServiceError, "signer emulator closed"})
			return false
		}
	}
	if f.Hang {
		e.log("%s %s -> hanging", name, r.URL.Path)
		select {
		case <-ctx.Done():
		case <-e.closed:
			writeError(w, &apiError{http.StatusServiceUnavailable, CodeInternalServiceError, "signer emulator closed"})
		}
		return false
	}
	status, code := f.Status, f.Code
	if status == 0 && code == "" {
		return true
	}
	if status == 0 {
		status = statusForCode(code)
	}
	if code == "" {
		code = codeForStatus(status)
	}
	e.log("%s %s -> injected %d %s", name, r.URL.Path, status, code)
	writeError(w, &apiError{status, code, f.Message})
	return false
}

func statusForCode(code string) int {
	switch code {
	case CodeAccessDenied:
		return http.StatusForbidden
	case CodeInternalServiceError:
		return http.StatusInternalServerError
	case CodeTooManyRequests:
		return http.StatusTooManyRequests
	case CodeResourceNotFound:
		return http.StatusNotFound
	default:
		return http.StatusBadRequest
	}
}

func codeForStatus(status int) string {
	switch {
	case status == http.StatusForbidden:
		return CodeAccessDenied
	case status == http.StatusTooManyRequests:
		return CodeTooManyRequests
	case status == http.StatusNotFound:
		return CodeResourceNotFound
	case status >= 500:
		return CodeInternalServiceError
	default:
		return CodeValidation
	}
}

func (e *Emulator) log(format string, args ...any) {
	if e.logf != nil {
		e.logf(format, args...)
	}
}

// apiError is an AWS error response.
type apiError struct {
	status int
	code   string
	msg    string
}

func (a *apiError) Error() string { return a.code + ": " + a.msg }

func validation(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeValidation, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, CodeResourceNotFound, fmt.Sprintf(format, args...)}
}

// writeError writes the awsRestjson1 error shape: the code in
// X-Amzn-ErrorType (which the SDK reads first) and the message in the body.
func writeError(w http.ResponseWriter, a *apiError) {
	w.Header().Set("X-Amzn-ErrorType", a.code)
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	writeJSON(w, a.status, map[string]string{"message": a.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"message":"signer emulator: encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var (
	regionRE      = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)+$`)
	accountRE     = regexp.MustCompile(`^[0-9]{12}$`)
	profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9_]{2,64}$`)
)

// regionFromAuth returns the region of a SigV4 Authorization header's
// credential scope (Credential=AKID/date/region/service/aws4_request), or
// "" when there is none.
func regionFromAuth(h string) string {
	i := strings.Index(h, "Credential=")
	if i < 0 {
		return ""
	}
	cred := h[i+len("Credential="):]
	if j := strings.IndexAny(cred, ", "); j >= 0 {
		cred = cred[:j]
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 5 || !regionRE.MatchString(parts[2]) {
		return ""
	}
	return parts[2]
}

// partitionOf returns the ARN partition a region belongs to.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	default:
		return "aws"
	}
}

func (e *Emulator) profileARN(region, name string) string {
	return fmt.Sprintf("arn:%s:signer:%s:%s:/signing-profiles/%s", partitionOf(region), region, e.account, name)
}

func (e *Emulator) jobARN(region, id string) string {
	return fmt.Sprintf("arn:%s:signer:%s:%s:/signing-jobs/%s", partitionOf(region), region, e.account, id)
}
