package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestServerDefaultsAndBounds(t *testing.T) {
	c, err := Decode([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server
	if s.Address != DefaultServerAddress || s.HealthAddress != DefaultHealthAddress || s.VerifyTimeout != DefaultVerifyTimeout ||
		s.MutateTimeout != DefaultMutateTimeout || s.MaxKeys != DefaultMaxKeys || s.MaxBodyBytes != DefaultMaxBodyBytes ||
		s.MaxConcurrency != DefaultMaxConcurrency || s.OutcomeTTL != DefaultOutcomeTTL || s.OutcomeCacheSize != DefaultOutcomeCacheSize {
		t.Fatalf("defaults not applied: %+v", s)
	}
	// The plugin's document needs no server section, serve needs TLS files.
	err = s.CheckServe()
	for _, p := range []string{"server.tls.certFile", "server.tls.keyFile", "server.tls.clientCAFile"} {
		if err == nil || !strings.Contains(err.Error(), p+": required") {
			t.Errorf("CheckServe: %v, want %s required", err, p)
		}
	}

	good := validYAML + `server:
  address: 127.0.0.1:7000
  tls: {certFile: /tls/tls.crt, keyFile: /tls/tls.key, clientCAFile: /ca/ca.crt}
  verifyTimeout: 4s
  maxKeys: 10
  outcomeCache: {ttl: 1m, size: 100}
  registry: {dockerConfigFiles: [/secrets/pull/.dockerconfigjson]}
`
	c, err = Decode([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.VerifyTimeout != 4*time.Second || c.Server.MaxKeys != 10 || c.Server.OutcomeTTL != time.Minute || c.Server.CheckServe() != nil ||
		c.Server.DockerConfigFiles[0] != "/secrets/pull/.dockerconfigjson" {
		t.Fatalf("%+v", c.Server)
	}

	bad := validYAML + `server:
  tls: {certFile: tls.crt}
  verifyTimeout: 1h
  maxKeys: 0
  outcomeCache: {size: -1}
  registry: {dockerConfigFiles: [config.json]}
`
	_, err = Decode([]byte(bad))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	for _, p := range []string{"server.tls.certFile: must be an absolute path", "server.verifyTimeout: must be between", "server.maxKeys: must be between 1 and",
		"server.outcomeCache.size: must be between", "server.registry.dockerConfigFiles[0]: must be an absolute path"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%v lacks %q", err, p)
		}
	}
	if _, err := Decode([]byte(validYAML + "server: {listen: x}\n")); err == nil || !strings.Contains(err.Error(), "server.listen: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestKyvernoSection(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	c, err := Decode([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Server.Kyverno
	if k.Enabled || k.Address != DefaultKyvernoAddress || k.Timeout != DefaultKyvernoTimeout || k.TokenCacheTTL != DefaultTokenCacheTTL ||
		strings.Join(k.AllowedCallers, ",") != strings.Join(DefaultKyvernoCallers(), ",") || strings.Join(k.Audiences, ",") != "awssigner,kyverno-svc.kyverno.io" ||
		k.APIServer != "https://10.96.0.1:443" || k.CAFile != ServiceAccountDir+"/ca.crt" || k.TokenFile != ServiceAccountDir+"/token" || !c.Server.GatekeeperEnabled {
		t.Fatalf("defaults not applied: %+v", c.Server)
	}

	// Kyverno only: no client CA needed.
	kyvernoOnly := validYAML + `server:
  tls: {certFile: /tls/tls.crt, keyFile: /tls/tls.key}
  gatekeeper: {enabled: false}
  kyverno:
    enabled: true
    address: 127.0.0.1:7002
    allowedCallers: [system:serviceaccount:policy:kyverno]
    audiences: [checker, awssigner]
    timeout: 4s
    tokenCacheTTL: 0s
    tokenReview: {apiServer: "https://127.0.0.1:6443", caFile: /k/ca.crt, tokenFile: /k/token}
`
	c, err = Decode([]byte(kyvernoOnly))
	if err != nil {
		t.Fatal(err)
	}
	k = c.Server.Kyverno
	if err := c.Server.CheckServe(); err != nil || c.Server.GatekeeperEnabled || !k.Enabled || k.Timeout != 4*time.Second || k.TokenCacheTTL != 0 ||
		k.APIServer != "https://127.0.0.1:6443" || k.AllowedCallers[0] != "system:serviceaccount:policy:kyverno" || len(k.Audiences) != 2 {
		t.Fatalf("CheckServe %v, %+v", err, c.Server)
	}

	// Outside a cluster the API server must be named; nothing enabled is
	// nothing to serve; one port per listener.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct{ server, want string }{
		{"  kyverno: {enabled: true}\n", "server.kyverno.tokenReview.apiServer: required outside a cluster"},
		{"  gatekeeper: {enabled: false}\n", "server.gatekeeper.enabled: false, and server.kyverno.enabled is false too"},
		{"  kyverno: {enabled: true, address: ':6001', tokenReview: {apiServer: 'https://k'}}\n", "server.kyverno.address: \":6001\" is already"},
		{"  gatekeeper: {enabled: false}\n  kyverno: {enabled: true, tokenReview: {apiServer: 'https://k'}}\n", "server.tls.certFile: required"},
	} {
		c, err := Decode([]byte(validYAML + "server:\n" + tc.server))
		if err != nil {
			t.Fatalf("%s: %v", tc.server, err)
		}
		if err := c.Server.CheckServe(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckServe %v, want %q", tc.server, err, tc.want)
		}
		if strings.Contains(tc.server, "gatekeeper: {enabled: false}") && c.Server.CheckServe() != nil && strings.Contains(c.Server.CheckServe().Error(), "clientCAFile") {
			t.Errorf("%s: client CA required with Gatekeeper off", tc.server)
		}
	}

	bad := validYAML + `server:
  kyverno:
    allowedCallers: []
    audiences: [""]
    timeout: 1h
    tokenCacheTTL: 1h
    tokenReview: {apiServer: "http://10.0.0.1", caFile: ca.crt, tokenFile: token}
`
	_, err = Decode([]byte(bad))
	for _, p := range []string{"server.kyverno.allowedCallers: must list at least one", "server.kyverno.audiences[0]: must not be empty",
		"server.kyverno.timeout: must be between", "server.kyverno.tokenCacheTTL: must be between 0s and 10m0s",
		"server.kyverno.tokenReview.apiServer: must be an https URL", "server.kyverno.tokenReview.caFile: must be an absolute path",
		"server.kyverno.tokenReview.tokenFile: must be an absolute path"} {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%v lacks %q", err, p)
		}
	}
	if _, err := Decode([]byte(validYAML + "server: {kyverno: {enable: true}}\n")); err == nil || !strings.Contains(err.Error(), "server.kyverno.enable: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
}
