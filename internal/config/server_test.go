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
