package server

import (
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/callerauth"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
)

// authenticator is the Kyverno listener's caller check for cfg (nil when
// the listener is off: nothing is served there).
func (s *Server) authenticator(cfg *config.Config) (kyverno.Authenticator, error) {
	k := cfg.Server.Kyverno
	if !k.Enabled {
		return nil, nil
	}
	return callerauth.New(callerauth.Options{
		APIServer: k.APIServer, CAFile: k.CAFile, TokenFile: k.TokenFile,
		Audiences: k.Audiences, AllowedCallers: k.AllowedCallers,
		CacheTTL: k.TokenCacheTTL, CacheSize: config.TokenCacheSize, Timeout: config.TokenReviewTimeout,
		ReadFile:    func(path string) ([]byte, error) { return readBounded(path, maxPEMFile) },
		Observe:     s.metrics.callerAuth,
		CacheLookup: s.metrics.tokenLookup,
	})
}
