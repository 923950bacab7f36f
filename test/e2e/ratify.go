package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"helm.sh/helm/v3/pkg/release"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// RatifyProvider is the Gatekeeper Provider of `ratify serve`, the name
// Ratify's chart gives it and the ConstraintTemplate's default.
const RatifyProvider = "ratify-provider"

// Ratify is `ratify serve` v1.4.6 in Kubernetes (CRD) mode, HTTPS with
// mTLS, running the awssigner plugin: the Ratify path.
type Ratify struct {
	Proc *Proc
	// URL is its verify endpoint, the Provider's url.
	URL string
	// Certs holds its serving certificate (tls.crt, tls.key).
	Certs string
}

// StartRatify starts `ratify serve` with the cluster's kubeconfig (its
// controller metrics bind :8080, which cannot be moved) and applies
// Ratify's Store (oras, plain HTTP) and Policy (config policy) as its chart
// creates them, and the Gatekeeper Provider ratify-provider.
func (c *Cluster) StartRatify(ctx context.Context, stack *harness.Stack) (*Ratify, error) {
	c.step("ratify serve (CRD manager) with the awssigner plugin")
	r := &Ratify{Certs: filepath.Join(c.Dir, "pki", "ratify")}
	if err := c.CA.IssueDir(r.Certs, "ratify", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	home := filepath.Join(c.Dir, "ratify")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(home, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"logger":{"formatter":"text"},"executor":{"verificationRequestTimeout":4900,"mutationRequestTimeout":1950},"crl":{"cache":{"enabled":false}}}`), 0o600); err != nil {
		return nil, err
	}
	port, _ := harness.FreePort()
	health, _ := harness.FreePort()
	env := append(harness.Env(home), "KUBECONFIG="+c.CP.Kubeconfig, "RATIFY_NAMESPACE="+GatekeeperNamespace, "AWS_REGION="+stack.Emulator.Region())
	p, err := c.Procs.Start(c.LogDir, "ratify", env, c.Bins.Ratify, "serve",
		"--http", fmt.Sprintf("127.0.0.1:%d", port), "-c", cfg, "--enable-crd-manager",
		"--cert-dir", r.Certs, "--ca-cert-file", c.CA.File,
		"--cache-enabled=true", "--cache-ttl=1s", "--health-port", fmt.Sprintf("127.0.0.1:%d", health))
	if err != nil {
		return nil, err
	}
	r.Proc = p
	if err := waitHTTP(p, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", health), "", 30*time.Second); err != nil {
		return nil, err
	}
	r.URL = fmt.Sprintf("https://127.0.0.1:%d/ratify/gatekeeper/v1/verify", port)
	base, err := DecodeYAML([]byte(fmt.Sprintf(`
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata: {name: store-oras}
spec:
  name: oras
  version: 1.0.0
  parameters: {useHttp: true}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Policy
metadata: {name: ratify-policy}
spec:
  type: config-policy
  parameters:
    artifactVerificationPolicies: {default: all}
---
apiVersion: externaldata.gatekeeper.sh/v1beta1
kind: Provider
metadata: {name: %s}
spec:
  url: %s
  timeout: 5
  caBundle: %s
`, RatifyProvider, r.URL, c.CABundle)))
	if err != nil {
		return nil, err
	}
	return r, c.Kube.Apply(ctx, GatekeeperNamespace, base...)
}

// RatifyChartValues are the chart's values (Ratify mode) for the stack:
// the emulator's root as the aws-signer-ts store, its endpoint, a 1 s
// revocation cache in dir, the plugin in pluginDir, trusting profiles.
func RatifyChartValues(stack *harness.Stack, dir, pluginDir string, profiles ...string) map[string]any {
	ids := make([]any, len(profiles))
	for i, p := range profiles {
		ids[i] = p
	}
	v := ProviderValues(stack, nil)
	delete(v, "trustPolicyDoc")
	v["trustedSigningProfiles"] = ids
	v["revocation"] = map[string]any{"cacheTTL": "1s", "cacheDir": filepath.Join(dir, "revocation-cache")}
	v["verifier"] = map[string]any{"address": pluginDir}
	return v
}

// MetricsPortFree checks that :8080 is free: `ratify serve
// --enable-crd-manager` binds its controller metrics there, and no flag
// moves them.
func MetricsPortFree() error {
	l, err := net.Listen("tcp", ":8080")
	if err != nil {
		return fmt.Errorf("port 8080 is in use (%v): ratify serve --enable-crd-manager binds its metrics there and cannot be moved; free it", err)
	}
	return l.Close()
}

// InstallRatifyChart is one `helm install --wait` of the chart in Ratify
// mode as release name (its hook Job run by c.Jobs), then waits for the
// NamespacedVerifier and the Constraints named.
func (c *Cluster) InstallRatifyChart(ctx context.Context, name string, vals map[string]any, constraints ...string) (*release.Release, error) {
	c.step("helm install --wait (single pass)")
	rel, err := HelmInstall(ctx, c.CP, c.ChartDir(), name, GatekeeperNamespace, vals, func(string, ...any) {})
	if err != nil {
		for _, r := range c.Jobs.Runs() {
			err = fmt.Errorf("%w\njob %s ok=%v:\n%s", err, r.Name, r.OK, r.Output)
		}
		return nil, fmt.Errorf("helm install: %w (logs in %s)", err, c.LogDir)
	}
	if err := c.Kube.WaitField(ctx, GVRNSVerifier, GatekeeperNamespace, "verifier-awssigner", true, 30*time.Second, "status", "issuccess"); err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, filepath.Join(c.LogDir, "ratify.log"))
	}
	return rel, c.WaitEnforced(ctx, constraints...)
}

// ChartDir is this repository's chart.
func (c *Cluster) ChartDir() string { return filepath.Join(c.Root, "charts", "ratify-aws-signer") }
