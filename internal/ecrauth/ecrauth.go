// Package ecrauth supplies registry credentials for Amazon ECR private
// registries to oras-go: it recognises ECR registry hosts
// (<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]), asks
// ecr:GetAuthorizationToken with the AWS SDK's default credentials, and keeps
// each registry's token in memory until shortly before it expires.
//
// Nothing is compiled or loaded at package initialisation: the host pattern
// and the AWS configuration are built on first use.
package ecrauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// DefaultRefreshMargin is how long before its expiry a token is replaced.
const DefaultRefreshMargin = 5 * time.Minute

// hostPattern matches ECR private registry host names (lower case, no port):
// account, optional -fips, region, optional .cn.
var (
	hostOnce sync.Once
	hostRE   *regexp.Regexp
)

func hostPattern() *regexp.Regexp {
	hostOnce.Do(func() {
		hostRE = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(-fips)?\.([a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(\.cn)?$`)
	})
	return hostRE
}

// Registry is a parsed ECR registry host.
type Registry struct {
	// Host is the host name as given, without port, in lower case.
	Host    string
	Account string
	Region  string
	FIPS    bool
}

// ParseHost recognises an ECR private registry host name ("host" or
// "host:port"). ok is false for every other host, including a ".cn" suffix
// outside the China regions or a China region without it.
func ParseHost(hostport string) (r Registry, ok bool) {
	host := strings.ToLower(strings.TrimSpace(hostport))
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	m := hostPattern().FindStringSubmatch(host)
	if m == nil {
		return Registry{}, false
	}
	china := m[4] != ""
	if china != strings.HasPrefix(m[3], "cn-") {
		return Registry{}, false
	}
	return Registry{Host: host, Account: m[1], Region: m[3], FIPS: m[2] != ""}, true
}

// IsECRHost reports whether hostport names an ECR private registry.
func IsECRHost(hostport string) bool {
	_, ok := ParseHost(hostport)
	return ok
}

// API is the part of the ECR client this package uses.
type API interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Options configure a Source. Zero values mean the defaults.
type Options struct {
	// NewClient returns the ECR client serving a registry (tests give a
	// fake). Default: an SDK client for the registry's region (FIPS endpoint
	// for -fips hosts) on the SDK's default configuration or AWS.
	NewClient func(ctx context.Context, r Registry) (API, error)
	// AWS replaces config.LoadDefaultConfig for the default NewClient.
	AWS *aws.Config
	// Now replaces time.Now (tests).
	Now func() time.Time
	// RefreshMargin is how long before expiry a token is fetched again
	// (default DefaultRefreshMargin).
	RefreshMargin time.Duration
}

// Source hands out ECR registry credentials, one GetAuthorizationToken call
// per registry for the lifetime of its token. Safe for concurrent use.
type Source struct {
	opts Options

	mu      sync.Mutex
	entries map[string]*entry

	clientsMu sync.Mutex
	clients   map[string]API
	loadOnce  sync.Once
	base      aws.Config
	loadErr   error
}

type entry struct {
	mu      sync.Mutex
	cred    auth.Credential
	expires time.Time
	valid   bool
}

// New returns a Source; nothing is loaded until a credential is asked for.
func New(opts Options) *Source {
	if opts.RefreshMargin <= 0 {
		opts.RefreshMargin = DefaultRefreshMargin
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Source{opts: opts, entries: map[string]*entry{}, clients: map[string]API{}}
	if s.opts.NewClient == nil {
		s.opts.NewClient = s.sdkClient
	}
	return s
}

// Credential is an oras-go auth.CredentialFunc: for an ECR host it returns
// the registry's cached token, fetching one when there is none or it is
// about to expire; for any other host it returns auth.EmptyCredential.
func (s *Source) Credential(ctx context.Context, hostport string) (auth.Credential, error) {
	reg, ok := ParseHost(hostport)
	if !ok {
		return auth.EmptyCredential, nil
	}
	s.mu.Lock()
	e := s.entries[reg.Host]
	if e == nil {
		e = &entry{}
		s.entries[reg.Host] = e
	}
	s.mu.Unlock()

	// One fetch per registry at a time; concurrent callers wait for it.
	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.opts.Now()
	if e.valid && now.Before(e.expires.Add(-s.opts.RefreshMargin)) {
		return e.cred, nil
	}
	cred, expires, err := s.fetch(ctx, reg)
	if err != nil {
		e.valid = false
		return auth.EmptyCredential, err
	}
	e.cred, e.expires, e.valid = cred, expires, !expires.IsZero()
	return cred, nil
}

// fetch asks ECR for reg's token; a zero expiry means "do not keep it".
func (s *Source) fetch(ctx context.Context, reg Registry) (auth.Credential, time.Time, error) {
	fail := func(format string, args ...any) (auth.Credential, time.Time, error) {
		return auth.EmptyCredential, time.Time{}, fmt.Errorf("Amazon ECR registry %s: "+format, append([]any{reg.Host}, args...)...)
	}
	client, err := s.opts.NewClient(ctx, reg)
	if err != nil {
		return fail("%v", err)
	}
	out, err := client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return fail("ecr:GetAuthorizationToken in %s failed: %v; the AWS identity of the SDK default credential chain (environment, ~/.aws, IRSA, Pod Identity, instance role) needs ecr:GetAuthorizationToken and pull access to the repository", reg.Region, err)
	}
	if out == nil || len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return fail("ecr:GetAuthorizationToken in %s returned no authorization data", reg.Region)
	}
	data := out.AuthorizationData[0]
	user, pass, err := DecodeToken(aws.ToString(data.AuthorizationToken))
	if err != nil {
		return fail("ecr:GetAuthorizationToken in %s: %v", reg.Region, err)
	}
	return auth.Credential{Username: user, Password: pass}, aws.ToTime(data.ExpiresAt), nil
}

// DecodeToken splits an ECR authorization token (base64 of "user:password")
// into its user name and password.
func DecodeToken(token string) (user, password string, err error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return "", "", errors.New("authorization token is not base64")
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || password == "" {
		return "", "", errors.New("authorization token is not \"<user>:<password>\"")
	}
	return user, password, nil
}

// sdkClient is the default NewClient: one SDK client per region and FIPS
// choice, on one AWS configuration loaded on first use.
func (s *Source) sdkClient(ctx context.Context, reg Registry) (API, error) {
	s.loadOnce.Do(func() {
		if s.opts.AWS != nil {
			s.base = s.opts.AWS.Copy()
			return
		}
		s.base, s.loadErr = awsconfig.LoadDefaultConfig(ctx)
	})
	if s.loadErr != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", s.loadErr)
	}
	key := reg.Region
	if reg.FIPS {
		key += "/fips"
	}
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	cfg := s.base.Copy()
	cfg.Region = reg.Region
	c := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if reg.FIPS {
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}
	})
	s.clients[key] = c
	return c, nil
}
