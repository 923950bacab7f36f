// Package compose builds a ready verifier from a resolved configuration
// and explicit choices that are not configuration (where revocation
// answers are kept, the AWS base configuration, the version to report).
// It is the only package that wires the SDK client factory, the revocation
// checker, its cache and the verification core together.
package compose

import (
	"crypto/fips140"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Cache says where revocation answers are kept.
type Cache int

// Where revocation answers are kept; there is no default.
const (
	// NoCache asks AWS Signer on every verification.
	NoCache Cache = iota + 1
	// MemoryCache keeps answers for the life of the process.
	MemoryCache
	// DiskCache keeps answers in revocation.cacheDir (or
	// config.DefaultCacheDir), shared by processes; when the directory
	// cannot be used, verification goes on without a cache and Warn says
	// why.
	DiskCache
)

// Options are the parts of a verifier that do not come from the
// configuration document.
type Options struct {
	// Cache is required. A configuration with cacheTTL 0s keeps nothing
	// whatever Cache says.
	Cache Cache
	// AWS replaces the SDK's default configuration loading (tests).
	AWS *aws.Config
	// Version is reported as the plugin version and in the User-Agent.
	Version string
	// Warn and Debug receive one line each about the cache (may be nil).
	Warn, Debug func(format string, args ...any)
}

// Verifier builds the verifier of c's trust policy document
// (trustPolicyDoc).
func Verifier(c *config.Config, o Options) (*verification.Verifier, error) {
	checker, err := o.checker(c)
	if err != nil {
		return nil, err
	}
	return newVerifier(c, c.TrustPolicy, checker, o)
}

// Verifiers builds the verifier of c's trust policy document under the
// name "" and one per named trust policy document (trustPolicyDocs), all
// sharing one AWS Signer client factory, revocation checker and cache.
func Verifiers(c *config.Config, o Options) (map[string]*verification.Verifier, error) {
	checker, err := o.checker(c)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*verification.Verifier, 1+len(c.TrustPolicies))
	if out[""], err = newVerifier(c, c.TrustPolicy, checker, o); err != nil {
		return nil, err
	}
	for name, doc := range c.TrustPolicies {
		if out[name], err = newVerifier(c, doc, checker, o); err != nil {
			return nil, fmt.Errorf("trustPolicyDocs.%s: %w", name, err)
		}
	}
	return out, nil
}

// checker is the revocation checker c describes: AWS Signer through the
// SDK, behind the chosen cache.
func (o Options) checker(c *config.Config) (revocation.Checker, error) {
	if c == nil {
		return nil, errors.New("compose: no configuration")
	}
	if err := checkFIPS(fipsBuild(), fips140.Enabled()); err != nil {
		return nil, err
	}
	if o.Cache < NoCache || o.Cache > DiskCache {
		return nil, fmt.Errorf("compose: Options.Cache %d is not NoCache, MemoryCache or DiskCache", o.Cache)
	}
	appID := "ratify-aws-signer"
	if o.Version != "" {
		appID += "_" + o.Version
	}
	clients, err := signerapi.NewFactory(signerapi.Options{
		Region: c.AWS.Region, Endpoint: c.AWS.Endpoint, UseFIPSEndpoint: c.AWS.UseFIPSEndpoint,
		MaxAttempts: c.Revocation.MaxAttempts, MaxBackoff: c.Revocation.MaxBackoff,
		Base: o.AWS, AppID: appID,
	})
	if err != nil {
		return nil, err
	}
	var checker revocation.Checker = &revocation.SignerChecker{Clients: clients, Budget: c.Revocation.Timeout}
	if cache := o.cache(c); cache != nil {
		checker = &revocation.Cached{Next: checker, Cache: cache, TTL: c.Revocation.CacheTTL}
	}
	return checker, nil
}

func newVerifier(c *config.Config, policy *trustpolicy.Document, checker revocation.Checker, o Options) (*verification.Verifier, error) {
	return verification.New(verification.Options{
		Policy:        policy,
		TrustStore:    c.TrustStore,
		Revocation:    checker,
		PluginVersion: o.Version,
		ClockSkew:     c.ClockSkew,
	})
}

// cache opens the chosen cache, or returns nil for none.
func (o Options) cache(c *config.Config) revocation.Cache {
	if c.Revocation.CacheTTL <= 0 {
		return nil
	}
	switch o.Cache {
	case MemoryCache:
		return revocation.NewMemoryCache(0)
	case DiskCache:
		dir, why := c.Revocation.CacheDir, "revocation.cacheDir"
		if dir == "" {
			dir, why = config.DefaultCacheDir()
		}
		dc, err := revocation.OpenDiskCache(dir, revocation.DiskCacheOptions{Warn: o.Warn})
		if err != nil {
			say(o.Warn, "revocation cache disabled: %v (set revocation.cacheDir to a writable directory of this user)", err)
			return nil
		}
		say(o.Debug, "revocation cache in %s (%s)", dir, why)
		return dc
	}
	return nil
}

func say(f func(string, ...any), format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}
