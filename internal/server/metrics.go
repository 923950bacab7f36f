package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// metrics are the provider's Prometheus metrics, in a registry of their
// own (nothing registered at package initialisation).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	keys          *prometheus.CounterVec
	verifications *prometheus.CounterVec
	outcomeCache  *prometheus.CounterVec
	signerCalls   prometheus.Counter
	signerErrors  prometheus.Counter
	reloads       *prometheus.CounterVec
	callers       *prometheus.CounterVec
	tokenCache    *prometheus.CounterVec
	generation    prometheus.Gauge
	reloadOK      *prometheus.GaugeVec
}

func newMetrics() *metrics {
	const ns = "awssigner"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "provider_requests_total",
			Help: "External-data requests by endpoint (verify, mutate) and HTTP status."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "provider_request_duration_seconds",
			Help:    "Time to answer one external-data request.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}}, []string{"endpoint"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "provider_keys_total",
			Help: "Images answered, by endpoint and outcome: verified, unsigned, error, or the refusal reason."}, []string{"endpoint", "outcome"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "signature_verifications_total",
			Help: "Signatures verified (not reused from the outcome cache), by verdict and reason."}, []string{"verdict", "reason"}),
		outcomeCache: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "outcome_cache_lookups_total",
			Help: "Verification outcome cache lookups, by result (hit, miss)."}, []string{"result"}),
		signerCalls: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "signer_revocation_checks_total",
			Help: "GetRevocationStatus checks sent to AWS Signer (not answered by the revocation cache)."}),
		signerErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "signer_revocation_errors_total",
			Help: "GetRevocationStatus checks that failed (AWS Signer unreachable, refusing or too slow)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reloads_total",
			Help: "Reloads of the configuration file and of the TLS files, by what (config, tls) and result (success, failure)."}, []string{"what", "result"}),
		callers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "caller_auth_total",
			Help: "Callers of the Kyverno endpoint, by outcome: allowed, noToken, invalidToken, wrongAudience, forbidden, unavailable (the TokenReview could not be made)."}, []string{"outcome"}),
		tokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "caller_token_cache_lookups_total",
			Help: "Lookups of admitted bearer tokens (by SHA-256) before a TokenReview, by result (hit, miss)."}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_generation",
			Help: "Generation of the configuration in use (1 at start, +1 per successful reload)."}),
		reloadOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_reload_success",
			Help: "1 when the last load of the configuration file or the TLS files succeeded, 0 while a bad one is refused and the last good one kept."}, []string{"what"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.keys, m.verifications, m.outcomeCache, m.signerCalls, m.signerErrors,
		m.reloads, m.callers, m.tokenCache, m.generation, m.reloadOK, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Request implements provider.Observer.
func (m *metrics) Request(endpoint string, status, _ int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Key implements provider.Observer.
func (m *metrics) Key(endpoint, outcome string) {
	m.keys.WithLabelValues(endpoint, outcome).Inc()
}

// report counts one verification that ran.
func (m *metrics) report(r verification.Report) {
	m.verifications.WithLabelValues(r.Verdict, string(r.Reason)).Inc()
	if r.Result == nil || r.RevocationCached {
		return
	}
	switch r.RevocationStatus {
	case verification.RevocationNotRevoked, verification.RevocationRevoked:
		m.signerCalls.Inc()
	case verification.RevocationUnavailable:
		m.signerCalls.Inc()
		m.signerErrors.Inc()
	}
}

func (m *metrics) lookup(hit bool) { m.outcomeCache.WithLabelValues(hitOrMiss(hit)).Inc() }

func (m *metrics) tokenLookup(hit bool) { m.tokenCache.WithLabelValues(hitOrMiss(hit)).Inc() }

func (m *metrics) callerAuth(outcome string) { m.callers.WithLabelValues(outcome).Inc() }

func hitOrMiss(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}

func (m *metrics) reloaded(what string, err error) {
	if err != nil {
		m.reloads.WithLabelValues(what, "failure").Inc()
		m.reloadOK.WithLabelValues(what).Set(0)
		return
	}
	m.reloads.WithLabelValues(what, "success").Inc()
	m.reloadOK.WithLabelValues(what).Set(1)
}
