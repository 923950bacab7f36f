package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// The server section's defaults and bounds (awssigner serve, the Gatekeeper
// external-data provider). Like every other default, defined only here.
const (
	// DefaultServerAddress is where the provider serves HTTPS (Ratify v2's
	// provider port).
	DefaultServerAddress = ":6001"
	// DefaultHealthAddress serves /healthz, /readyz and /metrics over plain
	// HTTP, for the kubelet and Prometheus, which hold no client certificate.
	DefaultHealthAddress = ":9099"
	// DefaultVerifyTimeout is the budget of one /verify request: it answers
	// before a Provider timeout of 3 s (Gatekeeper's default validating
	// webhook timeout) with 0.5 s to spare for Gatekeeper.
	DefaultVerifyTimeout = 2500 * time.Millisecond
	// DefaultMutateTimeout is the budget of one /mutate request, under the
	// 2 s mutation Provider timeout Ratify's chart uses.
	DefaultMutateTimeout = 1500 * time.Millisecond
	// MaxRequestTimeout bounds both budgets (Gatekeeper's webhooks time out
	// at 30 s at most).
	MaxRequestTimeout = 29 * time.Second
	// DefaultMaxKeys bounds the keys of one request (images of one object).
	DefaultMaxKeys = 256
	// MaxMaxKeys bounds server.maxKeys.
	MaxMaxKeys = 4096
	// DefaultMaxBodyBytes bounds a request body.
	DefaultMaxBodyBytes = 256 << 10
	// MaxMaxBodyBytes bounds server.maxBodyBytes.
	MaxMaxBodyBytes = 8 << 20
	// DefaultMaxConcurrency bounds the verifications running at once across
	// all requests.
	DefaultMaxConcurrency = 32
	// MaxMaxConcurrency bounds server.maxConcurrency.
	MaxMaxConcurrency = 1024
	// DefaultOutcomeTTL is how long a verification outcome is reused
	// (never longer than the revocation answer it rests on).
	DefaultOutcomeTTL = 5 * time.Minute
	// DefaultOutcomeCacheSize bounds the outcome cache (entries).
	DefaultOutcomeCacheSize = 4096
	// MaxOutcomeCacheSize bounds server.outcomeCache.size.
	MaxOutcomeCacheSize = 1 << 20
	// ReloadInterval is how often serve looks for changed configuration,
	// certificate and key files (a ConfigMap or cert-manager Secret update
	// reaches a mounted volume within a minute anyway).
	ReloadInterval = 2 * time.Second
	// ShutdownGrace is how long serve drains in-flight requests on SIGTERM.
	ShutdownGrace = 10 * time.Second
)

// ServerDocument is the server section as written (awssigner serve only;
// the Ratify plugin and the command line ignore it).
type ServerDocument struct {
	Address       string `json:"address,omitempty"`
	HealthAddress string `json:"healthAddress,omitempty"`
	TLS           struct {
		CertFile     string `json:"certFile,omitempty"`
		KeyFile      string `json:"keyFile,omitempty"`
		ClientCAFile string `json:"clientCAFile,omitempty"`
	} `json:"tls"`
	VerifyTimeout  *Duration `json:"verifyTimeout,omitempty"`
	MutateTimeout  *Duration `json:"mutateTimeout,omitempty"`
	MaxKeys        *int      `json:"maxKeys,omitempty"`
	MaxBodyBytes   *int      `json:"maxBodyBytes,omitempty"`
	MaxConcurrency *int      `json:"maxConcurrency,omitempty"`
	OutcomeCache   struct {
		TTL  *Duration `json:"ttl,omitempty"`
		Size *int      `json:"size,omitempty"`
	} `json:"outcomeCache"`
	Registry struct {
		// PlainHTTP reaches registries over HTTP (local test registries).
		PlainHTTP bool `json:"plainHTTP,omitempty"`
		// DockerConfigFiles are Docker config.json files (a mounted
		// kubernetes.io/dockerconfigjson Secret's .dockerconfigjson).
		DockerConfigFiles []string `json:"dockerConfigFiles,omitempty"`
	} `json:"registry"`
}

// Server is the resolved server section.
type Server struct {
	Address, HealthAddress                string
	CertFile, KeyFile, ClientCAFile       string
	VerifyTimeout, MutateTimeout          time.Duration
	MaxKeys, MaxBodyBytes, MaxConcurrency int
	OutcomeTTL                            time.Duration
	OutcomeCacheSize                      int
	PlainHTTP                             bool
	DockerConfigFiles                     []string
}

// resolve applies the defaults and checks the bounds.
func (d *ServerDocument) resolve(errs *Errors) (s Server, warnings []string) {
	s = Server{Address: d.Address, HealthAddress: d.HealthAddress,
		CertFile: d.TLS.CertFile, KeyFile: d.TLS.KeyFile, ClientCAFile: d.TLS.ClientCAFile,
		PlainHTTP: d.Registry.PlainHTTP, DockerConfigFiles: d.Registry.DockerConfigFiles}
	if s.Address == "" {
		s.Address = DefaultServerAddress
	}
	if s.HealthAddress == "" {
		s.HealthAddress = DefaultHealthAddress
	}
	duration := func(path string, v *Duration, def, lo, hi time.Duration) time.Duration {
		if v == nil {
			return def
		}
		t := time.Duration(*v)
		if t < lo || t > hi {
			errs.add(path, "must be between %s and %s, got %s", lo, hi, t)
		}
		return t
	}
	number := func(path string, v *int, def, hi int) int {
		if v == nil {
			return def
		}
		if *v < 1 || *v > hi {
			errs.add(path, "must be between 1 and %d, got %d", hi, *v)
		}
		return *v
	}
	s.VerifyTimeout = duration("server.verifyTimeout", d.VerifyTimeout, DefaultVerifyTimeout, 100*time.Millisecond, MaxRequestTimeout)
	s.MutateTimeout = duration("server.mutateTimeout", d.MutateTimeout, DefaultMutateTimeout, 100*time.Millisecond, MaxRequestTimeout)
	s.OutcomeTTL = duration("server.outcomeCache.ttl", d.OutcomeCache.TTL, DefaultOutcomeTTL, 0, MaxCacheTTL)
	s.MaxKeys = number("server.maxKeys", d.MaxKeys, DefaultMaxKeys, MaxMaxKeys)
	s.MaxBodyBytes = number("server.maxBodyBytes", d.MaxBodyBytes, DefaultMaxBodyBytes, MaxMaxBodyBytes)
	s.MaxConcurrency = number("server.maxConcurrency", d.MaxConcurrency, DefaultMaxConcurrency, MaxMaxConcurrency)
	s.OutcomeCacheSize = number("server.outcomeCache.size", d.OutcomeCache.Size, DefaultOutcomeCacheSize, MaxOutcomeCacheSize)
	for path, f := range map[string]string{"server.tls.certFile": s.CertFile, "server.tls.keyFile": s.KeyFile, "server.tls.clientCAFile": s.ClientCAFile} {
		if f != "" && !filepath.IsAbs(f) {
			errs.add(path, "must be an absolute path, got %q", f)
		}
	}
	for i, f := range s.DockerConfigFiles {
		if !filepath.IsAbs(f) {
			errs.add(fmt.Sprintf("server.registry.dockerConfigFiles[%d]", i), "must be an absolute path, got %q", f)
		}
	}
	if s.OutcomeTTL == 0 {
		warnings = append(warnings, "server.outcomeCache.ttl is 0s: every admission verifies every signature again")
	}
	if s.PlainHTTP {
		warnings = append(warnings, "server.registry.plainHTTP is set: registries are reached without TLS")
	}
	return s, warnings
}

// CheckServe reports what awssigner serve needs beyond a valid document:
// the certificate, its key and the client CA (mTLS is not optional), each
// error with its path.
func (s Server) CheckServe() error {
	var errs Errors
	if s.CertFile == "" {
		errs.add("server.tls.certFile", "required: the provider's serving certificate (PEM), e.g. a cert-manager Secret's tls.crt")
	}
	if s.KeyFile == "" {
		errs.add("server.tls.keyFile", "required: the serving certificate's private key (PEM), e.g. tls.key")
	}
	if s.ClientCAFile == "" {
		errs.add("server.tls.clientCAFile", "required: the CA of Gatekeeper's client certificate (ca.crt of gatekeeper-webhook-server-cert); only clients it issued are served")
	}
	if len(errs) == 0 {
		return nil
	}
	return errs.err()
}
