// Package server runs awssigner serve: the Gatekeeper external-data
// provider (internal/provider) over HTTPS with TLS 1.3 and client
// certificates from the configured CA only; Kyverno's /checkimages
// (internal/kyverno) on a listener of its own (HTTPS, callers checked by
// bearer token), both on the one validation path; the configuration file, the
// certificate, its key and the client CA reloaded when they change (a bad
// configuration is refused and the last good one kept, visible in /readyz
// and the metrics); /healthz, /readyz and Prometheus /metrics on a plain
// HTTP listener of their own; JSON logs; graceful shutdown.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ecrauth"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryauth"
)

// writeTimeout bounds how long one answer may take to be written after its
// request was read: the longest request budget plus room to send, so a
// caller that reads its answer slowly cannot hold a handler for ever.
const writeTimeout = config.MaxRequestTimeout + 5*time.Second

// Options configure a Server; only ConfigFile is required.
type Options struct {
	// ConfigFile is the configuration (the plugin's document plus a
	// server section), JSON or YAML.
	ConfigFile string
	Version    string
	Logger     *slog.Logger
	// AWS replaces the SDK's default configuration loading (tests).
	AWS *aws.Config
	// ReloadInterval is how often files are checked for changes
	// (config.ReloadInterval when zero).
	ReloadInterval time.Duration
	// Address, HealthAddress and KyvernoAddress override the
	// configuration's (tests: "127.0.0.1:0").
	Address, HealthAddress, KyvernoAddress string
}

// Server is a running provider.
type Server struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	provider *provider.Provider
	kyverno  *kyverno.Handler
	tls      *tlsFiles
	ecr      *ecrauth.Source

	gen        atomic.Uint64
	configSum  [sha256.Size]byte
	mu         sync.Mutex
	current    *config.Config
	reloadErr  string
	tlsErr     string
	outcomes   atomic.Pointer[provider.Outcomes]
	httpSrv    *http.Server // nil when Gatekeeper's listener is off
	healthSrv  *http.Server
	kyvernoSrv *http.Server // nil when Kyverno's listener is off
	listener   net.Listener
	healthList net.Listener
	kyvernoLis net.Listener
	stop       chan struct{}
	stopOnce   sync.Once
	done       sync.WaitGroup
}

// New loads the configuration and the TLS files; any error is returned
// (the process does not start with a bad configuration).
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = config.ReloadInterval
	}
	s := &Server{opts: o, log: o.Logger, metrics: newMetrics(), ecr: ecrauth.New(ecrauth.Options{}), stop: make(chan struct{})}
	cfg, sum, err := s.readConfig()
	if err != nil {
		return nil, err
	}
	s.provider = provider.New(provider.Options{MaxConcurrency: cfg.Server.MaxConcurrency, Observer: s.metrics, Logger: s.log})
	s.kyverno = kyverno.New(kyverno.Options{Provider: s.provider, Observer: s.metrics, Logger: s.log})
	if err := s.apply(cfg, sum); err != nil {
		return nil, err
	}
	s.tls = &tlsFiles{cert: cfg.Server.CertFile, key: cfg.Server.KeyFile}
	if cfg.Server.GatekeeperEnabled {
		s.tls.clientCA = cfg.Server.ClientCAFile
	}
	if _, err := s.tls.load(); err != nil {
		return nil, err
	}
	s.metrics.reloaded("tls", nil)
	return s, nil
}

// readConfig reads and checks the configuration file.
func (s *Server) readConfig() (*config.Config, [sha256.Size]byte, error) {
	data, err := readBounded(s.opts.ConfigFile, config.MaxSize)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("read configuration: %w", err)
	}
	sum := sha256.Sum256(data)
	cfg, err := config.Decode(data)
	if err != nil {
		return nil, sum, fmt.Errorf("configuration %s: %w", s.opts.ConfigFile, err)
	}
	if err := cfg.Server.CheckServe(); err != nil {
		return nil, sum, fmt.Errorf("configuration %s: %w", s.opts.ConfigFile, err)
	}
	return cfg, sum, nil
}

// apply builds the verifiers (one per trust policy document), their
// ratify-go engines, the provider and Kyverno backends of cfg and
// switches to them.
func (s *Server) apply(cfg *config.Config, sum [sha256.Size]byte) error {
	verifiers, err := compose.Verifiers(cfg, compose.Options{Cache: compose.MemoryCache, AWS: s.opts.AWS, Version: s.opts.Version,
		Warn: func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return fmt.Errorf("configuration %s: %w", s.opts.ConfigFile, err)
	}
	auth, err := s.authenticator(cfg)
	if err != nil {
		return fmt.Errorf("configuration %s: %w", s.opts.ConfigFile, err)
	}
	gen := s.gen.Load() + 1
	outcomes := provider.NewOutcomes(cfg.Server.OutcomeCacheSize)
	outcomes.OnLookup = s.metrics.lookup
	engine, err := ratifygo.New(ratifygo.Options{
		Name: cfg.Name, Verifier: verifiers[""], Generation: gen,
		Outcomes: outcomes, OutcomeTTL: cfg.Server.OutcomeTTL, RevocationTTL: cfg.Revocation.CacheTTL,
		PlainHTTP:  cfg.Server.PlainHTTP,
		Credential: registryauth.Credential(registryauth.Options{DockerConfigFiles: cfg.Server.DockerConfigFiles, ECR: s.ecr}),
		UserAgent:  "ratify-aws-signer/" + s.opts.Version,
		Observe:    s.metrics.report,
	})
	if err != nil {
		return err
	}
	named := make(map[string]provider.Validator, len(cfg.TrustPolicies))
	for name := range cfg.TrustPolicies {
		named[name] = engine.Named(name, verifiers[name])
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("configuration warning", "warning", w)
	}
	s.mu.Lock()
	if old := s.current; old != nil && (old.Server.Address != cfg.Server.Address || old.Server.HealthAddress != cfg.Server.HealthAddress ||
		old.Server.CertFile != cfg.Server.CertFile || old.Server.KeyFile != cfg.Server.KeyFile || old.Server.ClientCAFile != cfg.Server.ClientCAFile ||
		old.Server.MaxConcurrency != cfg.Server.MaxConcurrency || old.Server.GatekeeperEnabled != cfg.Server.GatekeeperEnabled ||
		old.Server.Kyverno.Enabled != cfg.Server.Kyverno.Enabled || old.Server.Kyverno.Address != cfg.Server.Kyverno.Address) {
		s.log.Warn("server addresses, TLS file paths, maxConcurrency and which listeners are enabled take effect at the next restart; the running values are kept")
	}
	s.current, s.configSum, s.reloadErr = cfg, sum, ""
	s.mu.Unlock()
	s.gen.Store(gen)
	s.outcomes.Store(outcomes)
	core := &provider.Backend{Validator: engine, Named: named, Generation: gen, Limits: provider.Limits{
		MaxKeys: cfg.Server.MaxKeys, MaxBodyBytes: cfg.Server.MaxBodyBytes,
		VerifyTimeout: cfg.Server.VerifyTimeout, MutateTimeout: cfg.Server.MutateTimeout}}
	s.provider.SetBackend(core)
	s.kyverno.SetBackend(&kyverno.Backend{Core: core, Timeout: cfg.Server.Kyverno.Timeout, Auth: auth})
	s.metrics.generation.Set(float64(gen))
	s.metrics.reloaded("config", nil)
	s.log.Info("configuration loaded", "file", s.opts.ConfigFile, "generation", gen, "trustPolicies", len(cfg.TrustPolicy.TrustPolicies),
		"trustPolicyDocs", len(cfg.TrustPolicies))
	return nil
}

// Reload checks the files once: a changed configuration is applied, or
// refused with the last good one kept; changed TLS files likewise.
func (s *Server) Reload() {
	s.mu.Lock()
	prev := s.configSum
	s.mu.Unlock()
	cfg, sum, err := s.readConfig()
	if err == nil && sum != prev {
		err = s.apply(cfg, sum)
	}
	if err == nil && sum == prev {
		s.mu.Lock()
		if s.reloadErr != "" {
			s.reloadErr = ""
			s.metrics.reloadOK.WithLabelValues("config").Set(1)
			s.log.Info("configuration file is back to the configuration in use", "generation", s.gen.Load())
		}
		s.mu.Unlock()
	}
	if err != nil && sum != prev {
		s.mu.Lock()
		changed := s.reloadErr != err.Error()
		s.reloadErr = err.Error()
		s.mu.Unlock()
		if changed {
			s.metrics.reloaded("config", err)
			s.log.Error("configuration reload refused; the last good configuration stays in use", "error", err.Error(), "generation", s.gen.Load())
		}
	}
	changed, err := s.tls.load()
	s.mu.Lock()
	report := (err != nil && s.tlsErr != err.Error()) || (err == nil && s.tlsErr != "")
	if err != nil {
		s.tlsErr = err.Error()
	} else {
		s.tlsErr = ""
	}
	s.mu.Unlock()
	switch {
	case err != nil && report:
		s.metrics.reloaded("tls", err)
		s.log.Error("TLS files not reloaded; the last good certificate stays in use", "error", err.Error())
	case err == nil && (changed || report):
		s.metrics.reloaded("tls", nil)
		s.log.Info("TLS certificate, key and client CA reloaded")
	}
}

// Start listens and serves; it returns once every listener is bound:
// Gatekeeper's (mTLS) and Kyverno's when enabled, and the health listener.
func (s *Server) Start() error {
	s.mu.Lock()
	cfg := s.current
	s.mu.Unlock()
	addr, health, kyv := cfg.Server.Address, cfg.Server.HealthAddress, cfg.Server.Kyverno.Address
	if s.opts.Address != "" {
		addr = s.opts.Address
	}
	if s.opts.HealthAddress != "" {
		health = s.opts.HealthAddress
	}
	if s.opts.KyvernoAddress != "" {
		kyv = s.opts.KyvernoAddress
	}
	var listeners []net.Listener
	listen := func(addr, key string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s (%s): %w", addr, key, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}
	var err error
	if cfg.Server.GatekeeperEnabled {
		if s.listener, err = listen(addr, "server.address"); err != nil {
			return err
		}
	}
	if cfg.Server.Kyverno.Enabled {
		if s.kyvernoLis, err = listen(kyv, "server.kyverno.address"); err != nil {
			return err
		}
	}
	if s.healthList, err = listen(health, "server.healthAddress"); err != nil {
		return err
	}
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	// serveTLS serves register's endpoints on l with cfg, under the same
	// bounds for every listener, and returns the server.
	serveTLS := func(l net.Listener, cfg *tls.Config, what string, register func(*http.ServeMux)) *http.Server {
		mux := http.NewServeMux()
		register(mux)
		srv := &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: writeTimeout, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: errLog}
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error(what+" listener stopped", "error", err.Error())
			}
		}()
		return srv
	}
	if s.listener != nil {
		s.httpSrv = serveTLS(s.listener, s.tls.config(), "provider", s.provider.Register)
	}
	if s.kyvernoLis != nil {
		s.kyvernoSrv = serveTLS(s.kyvernoLis, s.tls.kyvernoConfig(), "kyverno", s.kyverno.Register)
	}
	hmux := http.NewServeMux()
	hmux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	hmux.HandleFunc("/readyz", s.readyz)
	hmux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.healthSrv = &http.Server{Handler: hmux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		if err := s.healthSrv.Serve(s.healthList); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("health listener stopped", "error", err.Error())
		}
	}()
	go func() {
		defer s.done.Done()
		t := time.NewTicker(s.opts.ReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.Reload()
			}
		}
	}()
	s.log.Info("serving", "address", s.Addr(), "kyverno", s.KyvernoAddr(), "health", s.healthList.Addr().String(),
		"verify", provider.VerifyPath, "mutate", provider.MutatePath, "checkimages", kyverno.Path, "version", s.opts.Version)
	return nil
}

// Addr is Gatekeeper's listener's address, KyvernoAddr Kyverno's ("" when
// off); HealthAddr the health listener's.
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// KyvernoAddr: see Addr.
func (s *Server) KyvernoAddr() string {
	if s.kyvernoLis == nil {
		return ""
	}
	return s.kyvernoLis.Addr().String()
}

// HealthAddr: see Addr.
func (s *Server) HealthAddr() string { return s.healthList.Addr().String() }

// Outcomes is the current generation's outcome cache.
func (s *Server) Outcomes() *provider.Outcomes { return s.outcomes.Load() }

// Generation is the configuration generation in use.
func (s *Server) Generation() uint64 { return s.gen.Load() }

// readiness is /readyz's answer.
type readiness struct {
	Ready      bool   `json:"ready"`
	Generation uint64 `json:"generation"`
	// ReloadError is why the configuration file on disk is refused (the
	// last good one serves); TLSError likewise for the TLS files.
	ReloadError string `json:"reloadError,omitempty"`
	TLSError    string `json:"tlsError,omitempty"`
}

// readyz is ready once a configuration, its trust stores and the TLS
// files are loaded (New refuses to start otherwise). A refused reload
// keeps it ready — the last good configuration serves, and every replica
// would refuse the same ConfigMap — and is shown in the body.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	r := readiness{Ready: s.provider.Backend() != nil && s.kyverno.Backend() != nil && s.tls.loaded(), Generation: s.gen.Load(), ReloadError: s.reloadErr, TLSError: s.tlsErr}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !r.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(r)
}

// Shutdown stops accepting connections and drains in-flight requests
// within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.stopOnce.Do(func() { close(s.stop); first = true })
	if !first {
		return nil
	}
	s.log.Info("shutting down: draining in-flight requests")
	var errs []error
	for _, srv := range []*http.Server{s.httpSrv, s.kyvernoSrv, s.healthSrv} {
		if srv != nil {
			errs = append(errs, srv.Shutdown(ctx))
		}
	}
	s.done.Wait()
	return errors.Join(errs...)
}

// Run is New, Start, and Shutdown (within config.ShutdownGrace) when ctx
// ends (SIGTERM).
func Run(ctx context.Context, o Options) error {
	s, err := New(o)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), config.ShutdownGrace)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}
