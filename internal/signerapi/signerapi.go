// Package signerapi builds AWS Signer API clients: the region comes from a
// signature's ARN unless overridden, an overridden endpoint is used as given
// (the SDK's operation host prefix disabled), credentials come from the SDK
// default chain, and one client per region is reused for the process.
package signerapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Partitions in which AWS Signer issues Notation signatures.
var partitions = map[string]bool{"aws": true, "aws-us-gov": true, "aws-cn": true}

// ProfileARN is a parsed signing-profile ARN, with or without version:
// arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>[/<version>].
type ProfileARN struct {
	Partition, Region, Account, Name, Version string
}

// ParseProfileARN parses a signing-profile ARN or profile-version ARN.
func ParseProfileARN(s string) (ProfileARN, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return ProfileARN{}, fmt.Errorf("%q is not an ARN: %w", s, err)
	}
	if a.Service != "signer" {
		return ProfileARN{}, fmt.Errorf("%q is not an AWS Signer ARN (service %q)", s, a.Service)
	}
	parts := strings.Split(a.Resource, "/")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "" || parts[1] != "signing-profiles" || parts[2] == "" || (len(parts) == 4 && parts[3] == "") {
		return ProfileARN{}, fmt.Errorf("%q is not a signing-profile ARN (want arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>[/<version>])", s)
	}
	p := ProfileARN{Partition: a.Partition, Region: a.Region, Account: a.AccountID, Name: parts[2]}
	if len(parts) == 4 {
		p.Version = parts[3]
	}
	return p, nil
}

// Unversioned returns the profile ARN without its version.
func (p ProfileARN) Unversioned() string {
	return fmt.Sprintf("arn:%s:signer:%s:%s:/signing-profiles/%s", p.Partition, p.Region, p.Account, p.Name)
}

// String returns the ARN, with its version when it has one.
func (p ProfileARN) String() string {
	if p.Version == "" {
		return p.Unversioned()
	}
	return p.Unversioned() + "/" + p.Version
}

// Options configure a Factory. Zero values mean the SDK's defaults.
type Options struct {
	// Region overrides the region taken from the signature's ARN.
	Region string
	// Endpoint overrides the SDK's endpoint resolution (which itself honours
	// AWS_ENDPOINT_URL_SIGNER and AWS_ENDPOINT_URL).
	Endpoint string
	// MaxAttempts bounds attempts per call, retries included (default 3).
	MaxAttempts int
	// MaxBackoff bounds the wait between attempts (default 300ms), so
	// retries fit in a verification's time budget.
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

// NewFactory returns a factory; nothing is loaded until a client is asked for.
func NewFactory(opts Options) *Factory {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 300 * time.Millisecond
	}
	return &Factory{opts: opts, clients: map[string]*signer.Client{}}
}

// RegionFor returns the region calls about the given ARN go to: the
// override when set, else the ARN's own region. The ARN's partition must be
// one where AWS Signer issues Notation signatures.
func (f *Factory) RegionFor(resourceARN string) (string, error) {
	a, err := arn.Parse(resourceARN)
	if err != nil {
		return "", fmt.Errorf("%q is not an ARN: %w", resourceARN, err)
	}
	if !partitions[a.Partition] {
		return "", fmt.Errorf("ARN %q is in partition %q; AWS Signer signatures come from aws, aws-us-gov or aws-cn", resourceARN, a.Partition)
	}
	if f.opts.Region != "" {
		return f.opts.Region, nil
	}
	if a.Region == "" {
		return "", fmt.Errorf("ARN %q names no region; set aws.region", resourceARN)
	}
	return a.Region, nil
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
		if o.BaseEndpoint != nil {
			// An overridden endpoint is the exact host to call.
			o.APIOptions = append(o.APIOptions, WithoutHostPrefix)
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = f.opts.MaxAttempts
			so.MaxBackoff = f.opts.MaxBackoff
		})
		o.RetryMaxAttempts = f.opts.MaxAttempts
	})
	f.clients[region] = c
	return c, nil
}

// WithoutHostPrefix is an SDK API option that stops an operation from
// prepending its host label (GetRevocationStatus's "data-") to the endpoint.
func WithoutHostPrefix(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awssigner/DisableEndpointHostPrefix",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
		}), middleware.Before)
}
