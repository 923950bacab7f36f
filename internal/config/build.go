package config

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// BuildOptions are the parts of a verifier that do not come from the
// configuration document.
type BuildOptions struct {
	// Cache keeps revocation answers (an in-memory cache when nil and the
	// configuration's cacheTTL is not 0).
	Cache revocation.Cache
	// AWS replaces the SDK's default configuration (tests).
	AWS *aws.Config
	// Version is reported as the plugin version and in the User-Agent.
	Version string
}

// New builds a verifier from a validated Config.
func New(c *Config, o BuildOptions) (*verification.Verifier, error) {
	if c == nil {
		return nil, ErrNoConfig
	}
	c.Defaults()
	store := c.store
	if store == nil { // a Config built in code, not decoded
		var err error
		if store, err = truststore.New(c.TrustStores); err != nil {
			return nil, &FieldError{Msg: err.Error()}
		}
	}
	appID := "ratify-aws-signer"
	if o.Version != "" {
		appID += "_" + o.Version
	}
	var checker revocation.Checker = &revocation.SignerChecker{
		Clients: signerapi.NewFactory(signerapi.Options{Region: c.AWS.Region, Endpoint: c.AWS.Endpoint, Base: o.AWS, AppID: appID}),
		Budget:  time.Duration(*c.Revocation.Timeout),
	}
	if ttl := time.Duration(*c.Revocation.CacheTTL); ttl > 0 {
		cache := o.Cache
		if cache == nil {
			cache = revocation.NewMemoryCache(0)
		}
		checker = &revocation.Cached{Next: checker, Cache: cache, TTL: ttl}
	}
	return verification.New(verification.Options{
		Policy:        c.TrustPolicyDoc,
		TrustStore:    store,
		Revocation:    checker,
		PluginVersion: o.Version,
	})
}
