// Package revocation asks AWS Signer whether a signature was revoked
// (GetRevocationStatus): the certificate-hash construction AWS specifies, a
// time budget that covers retries, and a cache that keeps "not revoked" for
// a TTL, "revoked" for good and errors never.
package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/redact"
)

// Request is what GetRevocationStatus is asked about one signature.
type Request struct {
	ProfileVersionARN string
	JobARN            string
	SigningTime       time.Time
	// CertificateHashes are built by CertificateHashes.
	CertificateHashes []string
}

// Answer is what AWS Signer said.
type Answer struct {
	// Revoked lists the revoked entities echoed back: ARNs or certificate
	// hash entries. Empty means not revoked.
	Revoked []string
	// Cached tells that the answer came from the cache.
	Cached bool
	// Region is where the question went.
	Region string
}

// IsRevoked reports whether anything was revoked.
func (a Answer) IsRevoked() bool { return len(a.Revoked) > 0 }

// Reason renders the answer as AWS's plugin does: revoked ARNs by name,
// revoked certificates as a count-less sentence.
func (a Answer) Reason() string {
	if !a.IsRevoked() {
		return "Signature is not revoked."
	}
	var arns []string
	certs := false
	for _, e := range a.Revoked {
		if strings.HasPrefix(e, "arn") {
			arns = append(arns, e)
		} else {
			certs = true
		}
	}
	var parts []string
	if len(arns) > 0 {
		parts = append(parts, fmt.Sprintf("Resource(s) %s have been revoked.", strings.Join(arns, ", ")))
	}
	if certs {
		parts = append(parts, "Certificate(s) have been revoked.")
	}
	return strings.Join(parts, " ")
}

// Checker answers revocation questions.
type Checker interface {
	Check(ctx context.Context, req Request) (Answer, error)
}

// CertificateHashes builds AWS Signer's certificate hash entries from a
// chain given leaf first (DER): for each certificate, the lowercase hex
// SHA-384 of its TBS bytes followed by its parent's; the last certificate is
// its own parent.
func CertificateHashes(chain [][]byte) ([]string, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	h := make([]string, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain: %w", i, err)
		}
		sum := sha512.Sum384(c.RawTBSCertificate)
		h[i] = hex.EncodeToString(sum[:])
	}
	out := make([]string, len(h))
	for i := range h {
		parent := h[i]
		if i+1 < len(h) {
			parent = h[i+1]
		}
		out[i] = h[i] + parent
	}
	return out, nil
}

// UnavailableError is a check that could not be made: AWS did not answer in
// the budget, refused, or no client could be built.
type UnavailableError struct {
	Region string
	Err    error
}

func (e *UnavailableError) Error() string {
	// AWS's message is kept (it says which permission is missing), with
	// anything credential-like an endpoint could echo removed.
	msg := fmt.Sprintf("GetRevocationStatus call failed with error: %s", redact.Text(e.Err.Error()))
	if e.Region != "" {
		msg = fmt.Sprintf("GetRevocationStatus in %s failed: %s", e.Region, redact.Text(e.Err.Error()))
	}
	return msg + hint(e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// hint says what a person can do about a Signer error.
func hint(err error) string {
	var apiErr smithy.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return " (AWS Signer did not answer within the revocation time budget; raise revocation.timeout or check network egress to the Signer endpoint)"
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException":
		return " (grant signer:GetRevocationStatus to the verifier's AWS identity; AWS gives no detail here, CloudTrail does)"
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "TooManyRequestsException":
		return " (AWS Signer is throttling; the revocation cache reduces calls)"
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationException":
		return " (a cross-partition signature, or a region override in another partition, gives this)"
	}
	return ""
}

// Clients hands out Signer clients per region (signerapi.Factory).
type Clients interface {
	// RegionFor is the region calls about an ARN go to.
	RegionFor(resourceARN string) (string, error)
	// Client is the client for a region.
	Client(ctx context.Context, region string) (*signer.Client, error)
}

// SignerChecker asks AWS Signer, region chosen per signature.
type SignerChecker struct {
	Clients Clients
	// Budget bounds the whole check, retries included; required.
	Budget time.Duration
}

// Check calls GetRevocationStatus within the budget. Every failure is an
// *UnavailableError.
func (s *SignerChecker) Check(ctx context.Context, req Request) (Answer, error) {
	if s.Clients == nil {
		return Answer{}, &UnavailableError{Err: errors.New("no AWS Signer client is configured")}
	}
	region, err := s.Clients.RegionFor(req.ProfileVersionARN)
	if err != nil {
		return Answer{}, &UnavailableError{Err: err}
	}
	if s.Budget <= 0 {
		return Answer{}, &UnavailableError{Err: errors.New("no revocation time budget is configured")}
	}
	ctx, cancel := context.WithTimeout(ctx, s.Budget)
	defer cancel()
	client, err := s.Clients.Client(ctx, region)
	if err != nil {
		return Answer{}, &UnavailableError{Region: region, Err: err}
	}
	out, err := client.GetRevocationStatus(ctx, &signer.GetRevocationStatusInput{
		CertificateHashes:  req.CertificateHashes,
		JobArn:             aws.String(req.JobARN),
		PlatformId:         aws.String(awssigner.PlatformID),
		ProfileVersionArn:  aws.String(req.ProfileVersionARN),
		SignatureTimestamp: aws.Time(req.SigningTime),
	})
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %v", ctx.Err(), err)
		}
		return Answer{}, &UnavailableError{Region: region, Err: err}
	}
	return Answer{Revoked: out.RevokedEntities, Region: region}, nil
}

// Cache stores answers by key. Implementations must be safe for concurrent
// use; Get reports a miss for expired entries.
type Cache interface {
	Get(key string) (Answer, bool)
	Put(key string, a Answer, ttl time.Duration)
}

// Cached wraps a Checker with a Cache: "not revoked" is kept for TTL,
// "revoked" with no end (revocation cannot be undone), errors never. Cache
// and a positive TTL are required: without a cache, use Next itself.
type Cached struct {
	Next  Checker
	Cache Cache
	TTL   time.Duration
}

// Forever is the TTL the cache is given for revoked answers.
const Forever time.Duration = 1<<63 - 1

// Check answers from the cache or asks Next.
func (c *Cached) Check(ctx context.Context, req Request) (Answer, error) {
	if c.Cache == nil || c.TTL <= 0 {
		return Answer{}, &UnavailableError{Err: errors.New("revocation cache misconfigured: no cache or no TTL")}
	}
	key := Key(req)
	if a, ok := c.Cache.Get(key); ok {
		a.Cached = true
		return a, nil
	}
	a, err := c.Next.Check(ctx, req)
	if err != nil {
		return a, err
	}
	ttl := c.TTL
	if a.IsRevoked() {
		ttl = Forever
	}
	c.Cache.Put(key, a, ttl)
	return a, nil
}

// Key identifies a question by everything its answer depends on.
func Key(req Request) string {
	hashes := append([]string(nil), req.CertificateHashes...)
	sort.Strings(hashes)
	h := sha256.New()
	for _, part := range append([]string{awssigner.PlatformID, req.ProfileVersionARN, req.JobARN, req.SigningTime.UTC().Format(time.RFC3339Nano)}, hashes...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
