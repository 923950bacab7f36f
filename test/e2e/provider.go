package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// The provider path's Gatekeeper Providers (the chart's names in provider
// mode).
const (
	VerifyProvider = "awssigner-verify"
	MutateProvider = "awssigner-mutate"
)

// Serve is `awssigner serve` as a process on loopback: its serving
// certificate from the cluster's CA, Gatekeeper's CA (the same CA) as its
// client CA, its configuration in a file it reloads every 2 s.
type Serve struct {
	Binary, Dir, ConfigFile string
	// Addr and Health are 127.0.0.1:PORT of the provider (HTTPS) and of
	// /healthz, /readyz and /metrics; URL is https://Addr.
	Addr, Health, URL string
	Proc              *Proc
	c                 *Cluster
	certs             string
	starts            int
}

// NewServe prepares serve under the cluster's directory: ports and a
// certificate; WriteConfig then Start run it.
func (c *Cluster) NewServe(binary string) (*Serve, error) {
	s := &Serve{Binary: binary, Dir: filepath.Join(c.Dir, "awssigner-serve"), c: c}
	s.ConfigFile = filepath.Join(s.Dir, "config.json")
	s.certs = filepath.Join(s.Dir, "tls")
	if err := c.CA.IssueDir(s.certs, "awssigner", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	var err error
	if s.Addr, err = harness.FreeAddr(); err != nil {
		return nil, err
	}
	if s.Health, err = harness.FreeAddr(); err != nil {
		return nil, err
	}
	s.URL = "https://" + s.Addr
	return s, nil
}

// WriteConfig writes cfg (a configuration document, as the chart's
// ConfigMap holds it) as serve's file, atomically, its server section's
// addresses and files replaced by loopback ones and the test registry's
// plain HTTP allowed; its other server keys are kept.
func (s *Serve) WriteConfig(cfg map[string]any) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	srv, _ := c["server"].(map[string]any)
	if srv == nil {
		srv = map[string]any{}
	}
	srv["address"] = s.Addr
	srv["healthAddress"] = s.Health
	srv["tls"] = map[string]any{"certFile": filepath.Join(s.certs, "tls.crt"), "keyFile": filepath.Join(s.certs, "tls.key"), "clientCAFile": s.c.CA.File}
	reg, _ := srv["registry"].(map[string]any)
	if reg == nil {
		reg = map[string]any{}
	}
	reg["plainHTTP"] = true
	delete(reg, "dockerConfigFiles")
	srv["registry"] = reg
	c["server"] = srv
	if b, err = json.MarshalIndent(c, "", "  "); err != nil {
		return err
	}
	tmp := s.ConfigFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.ConfigFile)
}

// Start runs serve with its file and waits until /readyz answers.
func (s *Serve) Start(ctx context.Context) error {
	s.starts++
	name := "awssigner-serve"
	if s.starts > 1 {
		name = fmt.Sprintf("awssigner-serve-%d", s.starts)
	}
	p, err := s.c.Procs.Start(s.c.LogDir, name, harness.Env(s.Dir), s.Binary, "serve", "--config", s.ConfigFile)
	if err != nil {
		return err
	}
	s.Proc = p
	return waitHTTP(p, http.DefaultClient, "http://"+s.Health+"/readyz", "", 30*time.Second)
}

// Stop stops serve (SIGTERM: it drains requests in flight).
func (s *Serve) Stop() { s.Proc.Stop(15 * time.Second) }

// Metric returns the sum of a metric's samples whose labels contain every
// label given ("name=\"value\""), from /metrics.
func (s *Serve) Metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + s.Health + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// WaitReload waits until serve has loaded a configuration generation
// after gen (awssigner_config_generation), failing when it reports the
// file refused (awssigner_last_reload_success{what="config"} 0).
func (s *Serve) WaitReload(gen float64, timeout time.Duration) error {
	return Poll(timeout, "awssigner serve reloads its configuration", func() (bool, error) {
		g, err := s.Metric("awssigner_config_generation")
		if err != nil {
			return false, err
		}
		if g > gen {
			return true, nil
		}
		ok, err := s.Metric("awssigner_last_reload_success", `what="config"`)
		if err == nil && ok == 0 {
			return false, Fatal{fmt.Errorf("serve refused the new configuration; see %s", s.Proc.Log)}
		}
		return false, nil
	})
}

// ProviderPathOptions configure StartProviderPath.
type ProviderPathOptions struct {
	// Binary is awssigner (serve is its subcommand).
	Binary string
	// Values are the chart's values in provider mode (the shared keys and
	// policies.*); the e2e's own (mode, provider.url, TLS) are set here.
	Values map[string]any
	// Namespaces are the path's namespaces: its Assigns and Constraints
	// are limited to them, so the Ratify path's namespaces next to them
	// keep their own Constraints and no mutation.
	Namespaces []string
}

// ProviderPath is Gatekeeper → awssigner serve, no Ratify: serve as a
// process, the Providers, Assigns and Constraints of the provider mode.
type ProviderPath struct {
	Serve       *Serve
	Objects     []*unstructured.Unstructured
	Constraints []string
	c           *Cluster
	o           ProviderPathOptions
}

// StartProviderPath renders the provider-mode objects for o.Values,
// starts serve with their configuration, applies the objects and waits
// until Gatekeeper enforces the Constraints.
func (c *Cluster) StartProviderPath(ctx context.Context, o ProviderPathOptions) (*ProviderPath, error) {
	c.step("awssigner serve (provider path) and its Providers, Assigns, Constraints")
	s, err := c.NewServe(o.Binary)
	if err != nil {
		return nil, err
	}
	p := &ProviderPath{Serve: s, c: c, o: o}
	objs, cfg, err := p.render(o.Values)
	if err != nil {
		return nil, err
	}
	if err := s.WriteConfig(cfg); err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	for _, obj := range objs {
		if obj.GetKind() == "AWSSignerVerifiedImages" {
			p.Constraints = append(p.Constraints, obj.GetName())
		}
	}
	p.Objects = objs
	if err := c.Kube.Apply(ctx, GatekeeperNamespace, objs...); err != nil {
		return nil, err
	}
	for _, obj := range objs {
		if obj.GetKind() == "Assign" {
			if err := c.Kube.WaitField(ctx, GVRAssign, "", obj.GetName(), true, 30*time.Second, "status", "byPod", "0", "enforced"); err != nil {
				return nil, fmt.Errorf("%w (see %s)", err, c.Gatekeeper.Log)
			}
		}
	}
	return p, c.WaitEnforced(ctx, p.Constraints...)
}

// Reconfigure renders vals as StartProviderPath did and writes serve's
// new configuration file (what a ConfigMap update does to the mounted
// file), then waits until serve has reloaded it: no restart.
func (p *ProviderPath) Reconfigure(vals map[string]any) error {
	gen, err := p.Serve.Metric("awssigner_config_generation")
	if err != nil {
		return err
	}
	_, cfg, err := p.render(vals)
	if err != nil {
		return err
	}
	if err := p.Serve.WriteConfig(cfg); err != nil {
		return err
	}
	return p.Serve.WaitReload(gen, 15*time.Second)
}

// render returns the provider path's cluster objects and serve's
// configuration for vals.
//
// Until the chart's provider mode exists these are the objects it is
// specified to render (CONTRACT section C): Providers awssigner-verify
// (timeout 3) and awssigner-mutate (timeout 2) with the CA bundle, Assigns
// with externalData (ValueAtLocation, failurePolicy Ignore) for the
// container lists of Pods and Deployments, and Constraints naming
// awssigner-verify; the ConstraintTemplate is the one the Ratify-mode
// release installed.
func (p *ProviderPath) render(vals map[string]any) ([]*unstructured.Unstructured, map[string]any, error) {
	cfg := map[string]any{}
	for _, k := range []string{"trustPolicyDoc", "trustStores", "revocation", "aws"} {
		if v, ok := vals[k]; ok {
			cfg[k] = v
		}
	}
	if rev, ok := cfg["revocation"].(map[string]any); ok {
		r := map[string]any{}
		for k, v := range rev {
			if k != "enabled" && k != "cacheDir" {
				r[k] = v
			}
		}
		cfg["revocation"] = r
	}
	ns, _ := json.Marshal(p.o.Namespaces)
	var b strings.Builder
	for _, pr := range []struct {
		name, path string
		timeout    int
	}{{VerifyProvider, provider.VerifyPath, 3}, {MutateProvider, provider.MutatePath, 2}} {
		fmt.Fprintf(&b, `---
apiVersion: externaldata.gatekeeper.sh/v1beta1
kind: Provider
metadata: {name: %s}
spec: {url: %q, timeout: %d, caBundle: %s}
`, pr.name, p.Serve.URL+pr.path, pr.timeout, p.c.CABundle)
	}
	for _, a := range []struct {
		name, group, kind, location string
	}{
		{"awssigner-pod-containers", "", "Pod", "spec.containers[name:*].image"},
		{"awssigner-pod-initcontainers", "", "Pod", "spec.initContainers[name:*].image"},
		{"awssigner-deployment-containers", "apps", "Deployment", "spec.template.spec.containers[name:*].image"},
	} {
		fmt.Fprintf(&b, `---
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata: {name: %s}
spec:
  applyTo: [{groups: [%q], kinds: [%s], versions: [v1]}]
  match:
    scope: Namespaced
    kinds: [{apiGroups: [%q], kinds: [%s]}]
    namespaces: %s
  location: %q
  parameters:
    assign:
      externalData: {provider: %s, dataSource: ValueAtLocation, failurePolicy: Ignore}
`, a.name, a.group, a.kind, a.group, a.kind, ns, a.location, MutateProvider)
	}
	kinds := `[{apiGroups: [""], kinds: [Pod]}, {apiGroups: [apps], kinds: [Deployment, ReplicaSet, StatefulSet, DaemonSet]}, {apiGroups: [batch], kinds: [Job, CronJob]}]`
	fmt.Fprintf(&b, `---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: awssigner-provider}
spec:
  enforcementAction: deny
  match: {kinds: %s, namespaces: %s}
  parameters: {provider: %s}
`, kinds, ns, VerifyProvider)
	pol, _ := vals["policies"].(map[string]any)
	cons, _ := pol["constraints"].(map[string]any)
	rs, _ := cons["namespaceRestrictions"].([]any)
	for _, r := range rs {
		m := r.(map[string]any)
		nss, _ := json.Marshal(m["namespaces"])
		profiles, _ := json.Marshal(m["allowedSigningProfiles"])
		var first []string
		json.Unmarshal(nss, &first)
		fmt.Fprintf(&b, `---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: awssigner-provider-%s}
spec:
  enforcementAction: deny
  match: {kinds: %s, namespaces: %s}
  parameters: {provider: %s, allowedSigningProfiles: %s}
`, first[0], kinds, nss, VerifyProvider, profiles)
	}
	objs, err := DecodeYAML([]byte(b.String()))
	return objs, cfg, err
}
