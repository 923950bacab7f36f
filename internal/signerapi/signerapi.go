// Package signerapi builds AWS Signer API clients and nothing else: the
// region comes from a signature's ARN unless overridden (awssigner.RegionFor),
// an overridden endpoint is used as given (the SDK's operation host prefix
// disabled), FIPS endpoints on request, credentials from the SDK default
// chain, and one client per region reused for the process.
package signerapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
)

// Options configure a Factory. Zero values mean the SDK's defaults.
type Options struct {
	// Region overrides the region taken from the signature's ARN.
	Region string
	// Endpoint overrides the SDK's endpoint resolution (which itself honours
	// AWS_ENDPOINT_URL_SIGNER and AWS_ENDPOINT_URL).
	Endpoint string
	// UseFIPSEndpoint selects AWS Signer's FIPS endpoints.
	UseFIPSEndpoint bool
	// MaxAttempts bounds attempts per call, retries included; required
	// (config.Defaults holds the product's value).
	MaxAttempts int
	// MaxBackoff bounds the wait between attempts, so retries fit in a
	// verification's time budget; required.
	MaxBackoff time.Duration
	// Base replaces config.LoadDefaultConfig (tests, or callers that
	// already hold a configuration).
	Base *aws.Config
	// AppID is added to the User-Agent header.
	AppID string
}

// Factory hands out one Signer client per region, built on first use.
type Factory struct {
	opts Options

	loadOnce sync.Once
	base     aws.Config
	loadErr  error

	mu      sync.Mutex
	clients map[string]*signer.Client
}

// NewFactory returns a factory; nothing is loaded until a client is asked
// for. MaxAttempts and MaxBackoff must be set.
func NewFactory(opts Options) (*Factory, error) {
	if opts.MaxAttempts <= 0 || opts.MaxBackoff <= 0 {
		return nil, fmt.Errorf("signerapi: MaxAttempts (%d) and MaxBackoff (%s) must be positive", opts.MaxAttempts, opts.MaxBackoff)
	}
	return &Factory{opts: opts, clients: map[string]*signer.Client{}}, nil
}

// RegionFor returns the region calls about resourceARN go to (see
// awssigner.RegionFor), with this factory's override.
func (f *Factory) RegionFor(resourceARN string) (string, error) {
	return awssigner.RegionFor(resourceARN, f.opts.Region)
}

// Client returns the process's client for region.
func (f *Factory) Client(ctx context.Context, region string) (*signer.Client, error) {
	f.loadOnce.Do(func() {
		if f.opts.Base != nil {
			f.base = f.opts.Base.Copy()
			return
		}
		f.base, f.loadErr = config.LoadDefaultConfig(ctx)
	})
	if f.loadErr != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", f.loadErr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[region]; ok {
		return c, nil
	}
	cfg := f.base.Copy()
	cfg.Region = region
	if f.opts.AppID != "" {
		cfg.AppID = f.opts.AppID
	}
	c := signer.NewFromConfig(cfg, func(o *signer.Options) {
		if f.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(f.opts.Endpoint)
		}
		if f.opts.UseFIPSEndpoint {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}
		if o.BaseEndpoint != nil {
			// An overridden endpoint is the exact host to call.
			o.APIOptions = append(o.APIOptions, WithoutHostPrefix)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = f.opts.MaxAttempts
			so.MaxBackoff = f.opts.MaxBackoff
		})
		o.RetryMaxAttempts = f.opts.MaxAttempts
		o.HTTPClient = boundedClient{next: noRedirects(o.HTTPClient)}
	})
	f.clients[region] = c
	return c, nil
}

// MaxResponseSize bounds an AWS Signer response body: GetRevocationStatus
// answers are a few hundred bytes, so an endpoint that streams more is
// misbehaving and is cut off rather than decoded into memory.
const MaxResponseSize = 1 << 20

// noRedirects makes the SDK's own client refuse redirects: AWS Signer never
// redirects, and a redirect loop would otherwise be followed for the whole
// revocation budget (the hostile suite counted 4,000 requests in 2 s). A
// client given in Base that is not the SDK's is used as it is.
func noRedirects(c interface {
	Do(*http.Request) (*http.Response, error)
}) interface {
	Do(*http.Request) (*http.Response, error)
} {
	bc, ok := c.(*awshttp.BuildableClient)
	if c != nil && !ok {
		return c
	}
	if bc == nil {
		bc = awshttp.NewBuildableClient()
	}
	return &http.Client{Transport: bc.GetTransport(), Timeout: bc.GetTimeout(), CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// boundedClient limits every response body to MaxResponseSize.
type boundedClient struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
}

func (c boundedClient) Do(r *http.Request) (*http.Response, error) {
	next := c.next
	if next == nil {
		next = awshttp.NewBuildableClient()
	}
	resp, err := next.Do(r)
	if err == nil && resp.Body != nil {
		resp.Body = &boundedBody{rc: resp.Body, left: MaxResponseSize}
	}
	return resp, err
}

type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("AWS Signer response is over %d bytes; not read further", MaxResponseSize)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// WithoutHostPrefix is an SDK API option that stops an operation from
// prepending its host label (GetRevocationStatus's "data-") to the endpoint.
func WithoutHostPrefix(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awssigner/DisableEndpointHostPrefix",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
		}), middleware.Before)
}
