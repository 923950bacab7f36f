// Package server runs awssigner serve: the Gatekeeper external-data
// provider (internal/provider) over HTTPS with TLS 1.3 and client
// certificates from the configured CA only; the configuration file, the
// certificate, its key and the client CA reloaded when they change (a bad
// configuration is refused and the last good one kept, visible in /readyz
// and the metrics); /healthz, /readyz and Prometheus /metrics on a plain
// HTTP listener of their own; JSON logs; graceful shutdown.
package server

import (
	"context"
	"crypto/sha256"
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
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryauth"
)

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
	// Address and HealthAddress override the configuration's (tests:
	// "127.0.0.1:0").
	Address, HealthAddress string
}

// Server is a running provider.
type Server struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	provider *provider.Provider
	tls      *tlsFiles
	ecr      *ecrauth.Source

	gen        atomic.Uint64
	configSum  [sha256.Size]byte
	mu         sync.Mutex
	current    *config.Config
	reloadErr  string
	tlsErr     string
	outcomes   atomic.Pointer[provider.Outcomes]
	httpSrv    *http.Server
	healthSrv  *http.Server
	listener   net.Listener
	healthList net.Listener
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
	if err := s.apply(cfg, sum); err != nil {
		return nil, err
	}
	s.tls = &tlsFiles{cert: cfg.Server.CertFile, key: cfg.Server.KeyFile, clientCA: cfg.Server.ClientCAFile}
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

// apply builds the verifier, the ratify-go engine and the provider
// backend of cfg and switches to them.
func (s *Server) apply(cfg *config.Config, sum [sha256.Size]byte) error {
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.MemoryCache, AWS: s.opts.AWS, Version: s.opts.Version,
		Warn: func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return fmt.Errorf("configuration %s: %w", s.opts.ConfigFile, err)
	}
	gen := s.gen.Load() + 1
	outcomes := provider.NewOutcomes(cfg.Server.OutcomeCacheSize)
	outcomes.OnLookup = s.metrics.lookup
	engine, err := ratifygo.New(ratifygo.Options{
		Name: cfg.Name, Verifier: v, Generation: gen,
		Outcomes: outcomes, OutcomeTTL: cfg.Server.OutcomeTTL, RevocationTTL: cfg.Revocation.CacheTTL,
		PlainHTTP:  cfg.Server.PlainHTTP,
		Credential: registryauth.Credential(registryauth.Options{DockerConfigFiles: cfg.Server.DockerConfigFiles, ECR: s.ecr}),
		UserAgent:  "ratify-aws-signer/" + s.opts.Version,
		Observe:    s.metrics.report,
	})
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		s.log.Warn("configuration warning", "warning", w)
	}
	s.mu.Lock()
	if old := s.current; old != nil && (old.Server.Address != cfg.Server.Address || old.Server.HealthAddress != cfg.Server.HealthAddress ||
		old.Server.CertFile != cfg.Server.CertFile || old.Server.KeyFile != cfg.Server.KeyFile || old.Server.ClientCAFile != cfg.Server.ClientCAFile ||
		old.Server.MaxConcurrency != cfg.Server.MaxConcurrency) {
		s.log.Warn("server addresses, TLS file paths and maxConcurrency take effect at the next restart; the running values are kept")
	}
	s.current, s.configSum, s.reloadErr = cfg, sum, ""
	s.mu.Unlock()
	s.gen.Store(gen)
	s.outcomes.Store(outcomes)
	s.provider.SetBackend(&provider.Backend{Validator: engine, Generation: gen, Limits: provider.Limits{
		MaxKeys: cfg.Server.MaxKeys, MaxBodyBytes: cfg.Server.MaxBodyBytes,
		VerifyTimeout: cfg.Server.VerifyTimeout, MutateTimeout: cfg.Server.MutateTimeout}})
	s.metrics.generation.Set(float64(gen))
	s.metrics.reloaded("config", nil)
	s.log.Info("configuration loaded", "file", s.opts.ConfigFile, "generation", gen, "trustPolicies", len(cfg.TrustPolicy.TrustPolicies))
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

// Start listens and serves; it returns once both listeners are bound.
func (s *Server) Start() error {
	s.mu.Lock()
	cfg := s.current
	s.mu.Unlock()
	addr, health := cfg.Server.Address, cfg.Server.HealthAddress
	if s.opts.Address != "" {
		addr = s.opts.Address
	}
	if s.opts.HealthAddress != "" {
		health = s.opts.HealthAddress
	}
	var err error
	if s.listener, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("listen on %s (server.address): %w", addr, err)
	}
	if s.healthList, err = net.Listen("tcp", health); err != nil {
		s.listener.Close()
		return fmt.Errorf("listen on %s (server.healthAddress): %w", health, err)
	}
	mux := http.NewServeMux()
	s.provider.Register(mux)
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.httpSrv = &http.Server{Handler: mux, TLSConfig: s.tls.config(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: errLog}
	hmux := http.NewServeMux()
	hmux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	hmux.HandleFunc("/readyz", s.readyz)
	hmux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.healthSrv = &http.Server{Handler: hmux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}
	s.done.Add(3)
	go func() {
		defer s.done.Done()
		if err := s.httpSrv.ServeTLS(s.listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("provider listener stopped", "error", err.Error())
		}
	}()
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
	s.log.Info("serving", "address", s.listener.Addr().String(), "health", s.healthList.Addr().String(),
		"verify", provider.VerifyPath, "mutate", provider.MutatePath, "version", s.opts.Version)
	return nil
}

// Addr is the provider's address; HealthAddr the health listener's.
func (s *Server) Addr() string       { return s.listener.Addr().String() }
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
	r := readiness{Ready: s.provider.Backend() != nil && s.tls.current.Load() != nil, Generation: s.gen.Load(), ReloadError: s.reloadErr, TLSError: s.tlsErr}
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
	err := s.httpSrv.Shutdown(ctx)
	if herr := s.healthSrv.Shutdown(ctx); err == nil {
		err = herr
	}
	s.done.Wait()
	return err
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
