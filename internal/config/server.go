package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
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

	// DefaultKyvernoAddress is where serve answers Kyverno's apiCall
	// (HTTPS, bearer tokens checked by TokenReview).
	DefaultKyvernoAddress = ":6002"
	// DefaultKyvernoTimeout is the budget of one /checkimages request,
	// under Kyverno's default webhook timeout (10 s) and Gatekeeper-like
	// 3 s budgets alike.
	DefaultKyvernoTimeout = 2500 * time.Millisecond
	// DefaultKyvernoAudience is the audience of a token made for serve
	// (Kyverno's Helm value apiCallToken.audience set to it).
	DefaultKyvernoAudience = "awssigner"
	// KyvernoChartAudience is the audience of the token Kyverno's Helm chart
	// mounts for every apiCall by default (apiCallToken.audience), so a
	// stock Kyverno is served without changing its values (which would
	// change the token every other apiCall service receives).
	KyvernoChartAudience = "kyverno-svc.kyverno.io"
	// DefaultTokenCacheTTL is how long an admitted caller's token is
	// remembered (by its SHA-256) before the next TokenReview.
	DefaultTokenCacheTTL = 30 * time.Second
	// MaxTokenCacheTTL bounds server.kyverno.tokenCacheTTL: a caller
	// whose token or service account is deleted is served at most this
	// long.
	MaxTokenCacheTTL = 10 * time.Minute
	// TokenCacheSize bounds the remembered tokens (not configurable).
	TokenCacheSize = 4096
	// TokenReviewTimeout bounds one TokenReview call to the API server,
	// inside the request's budget.
	TokenReviewTimeout = time.Second
	// ServiceAccountDir is where the kubelet mounts the pod's service
	// account token and the cluster CA.
	ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// DefaultKyvernoCallers are the users served on the Kyverno listener:
// Kyverno's admission and reports controllers as its Helm chart names
// them.
func DefaultKyvernoCallers() []string {
	return []string{"system:serviceaccount:kyverno:kyverno-admission-controller", "system:serviceaccount:kyverno:kyverno-reports-controller"}
}

// DefaultKyvernoAudiences are the token audiences accepted by default.
func DefaultKyvernoAudiences() []string {
	return []string{DefaultKyvernoAudience, KyvernoChartAudience}
}

// inClusterAPIServer is the API server's URL from the environment the
// kubelet gives every pod, or "" outside a cluster.
func inClusterAPIServer() string {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return ""
	}
	return "https://" + net.JoinHostPort(host, port)
}

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
	Gatekeeper struct {
		// Enabled serves Gatekeeper's mTLS listener (default true).
		Enabled *bool `json:"enabled,omitempty"`
	} `json:"gatekeeper"`
	Kyverno KyvernoDocument `json:"kyverno"`
}

// KyvernoDocument is server.kyverno as written: the /checkimages listener
// for Kyverno's apiCall.
type KyvernoDocument struct {
	Enabled        bool      `json:"enabled,omitempty"`
	Address        string    `json:"address,omitempty"`
	AllowedCallers []string  `json:"allowedCallers,omitempty"`
	Audiences      []string  `json:"audiences,omitempty"`
	Timeout        *Duration `json:"timeout,omitempty"`
	TokenReview    struct {
		APIServer string `json:"apiServer,omitempty"`
		CAFile    string `json:"caFile,omitempty"`
		TokenFile string `json:"tokenFile,omitempty"`
	} `json:"tokenReview"`
	TokenCacheTTL *Duration `json:"tokenCacheTTL,omitempty"`
}

// Kyverno is the resolved server.kyverno section.
type Kyverno struct {
	Enabled bool
	Address string
	// AllowedCallers are the Kubernetes usernames served; Audiences the
	// token audiences accepted (one must match).
	AllowedCallers, Audiences []string
	// Timeout is the budget of one /checkimages request.
	Timeout time.Duration
	// APIServer ("https://host:port"), CAFile and TokenFile are where and
	// how TokenReviews are sent; APIServer is "" outside a cluster when
	// not configured.
	APIServer, CAFile, TokenFile string
	TokenCacheTTL                time.Duration
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
	// GatekeeperEnabled serves the mTLS listener at Address.
	GatekeeperEnabled bool
	Kyverno           Kyverno
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
	s.GatekeeperEnabled = d.Gatekeeper.Enabled == nil || *d.Gatekeeper.Enabled
	s.Kyverno = d.Kyverno.resolve(errs, duration)
	if s.OutcomeTTL == 0 {
		warnings = append(warnings, "server.outcomeCache.ttl is 0s: every admission verifies every signature again")
	}
	if s.PlainHTTP {
		warnings = append(warnings, "server.registry.plainHTTP is set: registries are reached without TLS")
	}
	return s, warnings
}

func (d *KyvernoDocument) resolve(errs *Errors, duration func(string, *Duration, time.Duration, time.Duration, time.Duration) time.Duration) Kyverno {
	k := Kyverno{Enabled: d.Enabled, Address: d.Address, AllowedCallers: d.AllowedCallers, Audiences: d.Audiences,
		APIServer: d.TokenReview.APIServer, CAFile: d.TokenReview.CAFile, TokenFile: d.TokenReview.TokenFile}
	if k.Address == "" {
		k.Address = DefaultKyvernoAddress
	}
	if k.AllowedCallers == nil {
		k.AllowedCallers = DefaultKyvernoCallers()
	}
	if k.Audiences == nil {
		k.Audiences = DefaultKyvernoAudiences()
	}
	if k.CAFile == "" {
		k.CAFile = filepath.Join(ServiceAccountDir, "ca.crt")
	}
	if k.TokenFile == "" {
		k.TokenFile = filepath.Join(ServiceAccountDir, "token")
	}
	k.Timeout = duration("server.kyverno.timeout", d.Timeout, DefaultKyvernoTimeout, 100*time.Millisecond, MaxRequestTimeout)
	k.TokenCacheTTL = duration("server.kyverno.tokenCacheTTL", d.TokenCacheTTL, DefaultTokenCacheTTL, 0, MaxTokenCacheTTL)
	for _, l := range []struct {
		path string
		list []string
	}{{"server.kyverno.allowedCallers", k.AllowedCallers}, {"server.kyverno.audiences", k.Audiences}} {
		path, list := l.path, l.list
		if len(list) == 0 {
			errs.add(path, "must list at least one entry (leave it out for the default)")
		}
		for i, v := range list {
			if v == "" {
				errs.add(fmt.Sprintf("%s[%d]", path, i), "must not be empty")
			}
		}
	}
	if k.APIServer == "" {
		k.APIServer = inClusterAPIServer()
	} else if u, err := url.Parse(k.APIServer); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs.add("server.kyverno.tokenReview.apiServer", "must be an https URL of the Kubernetes API server such as https://kubernetes.default.svc, got %q", k.APIServer)
	}
	if !filepath.IsAbs(k.CAFile) {
		errs.add("server.kyverno.tokenReview.caFile", "must be an absolute path, got %q", k.CAFile)
	}
	if !filepath.IsAbs(k.TokenFile) {
		errs.add("server.kyverno.tokenReview.tokenFile", "must be an absolute path, got %q", k.TokenFile)
	}
	return k
}

// CheckServe reports what awssigner serve needs beyond a valid document:
// the certificate and its key; with Gatekeeper's listener the client CA
// (mTLS is not optional there); with Kyverno's, an API server for
// TokenReviews. Each error with its path.
func (s Server) CheckServe() error {
	var errs Errors
	if !s.GatekeeperEnabled && !s.Kyverno.Enabled {
		errs.add("server.gatekeeper.enabled", "false, and server.kyverno.enabled is false too: nothing to serve; enable one of them")
	}
	if s.CertFile == "" {
		errs.add("server.tls.certFile", "required: the provider's serving certificate (PEM), e.g. a cert-manager Secret's tls.crt")
	}
	if s.KeyFile == "" {
		errs.add("server.tls.keyFile", "required: the serving certificate's private key (PEM), e.g. tls.key")
	}
	if s.GatekeeperEnabled && s.ClientCAFile == "" {
		errs.add("server.tls.clientCAFile", "required: the CA of Gatekeeper's client certificate (ca.crt of gatekeeper-webhook-server-cert); only clients it issued are served (set server.gatekeeper.enabled: false for a Kyverno-only deployment)")
	}
	if k := s.Kyverno; k.Enabled {
		if k.APIServer == "" {
			errs.add("server.kyverno.tokenReview.apiServer", "required outside a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset): the API server that reviews Kyverno's bearer tokens")
		}
		if k.Address == s.HealthAddress || (s.GatekeeperEnabled && k.Address == s.Address) {
			errs.add("server.kyverno.address", "%q is already server.address or server.healthAddress; give the Kyverno listener a port of its own (default %s)", k.Address, DefaultKyvernoAddress)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs.err()
}
