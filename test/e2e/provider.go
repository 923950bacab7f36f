package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// The provider path's Gatekeeper Providers (the chart's names in provider
// mode).
const (
	VerifyProvider = "awssigner-verify"
	MutateProvider = "awssigner-mutate"
)

// ProviderConstraint is the provider path's cluster-wide Constraint
// (limited to the path's namespaces) unless the values name it.
const ProviderConstraint = "aws-signer-verified-images-provider"

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

// Reloads returns how many configuration reloads serve made and refused
// (awssigner_reloads_total{what="config"}).
func (s *Serve) Reloads() (ok, refused float64, err error) {
	if ok, err = s.Metric("awssigner_reloads_total", `what="config"`, `result="success"`); err != nil {
		return 0, 0, err
	}
	refused, err = s.Metric("awssigner_reloads_total", `what="config"`, `result="failure"`)
	return ok, refused, err
}

// WaitReload waits until serve has reloaded its configuration file more
// than ok times (want true) or refused it more than refused times (want
// false), failing at once on the other outcome.
func (s *Serve) WaitReload(ok, refused float64, want bool, timeout time.Duration) error {
	return Poll(timeout, "awssigner serve reloads its configuration", func() (bool, error) {
		o, r, err := s.Reloads()
		if err != nil {
			return false, err
		}
		switch {
		case o > ok && !want:
			return false, Fatal{fmt.Errorf("serve accepted the configuration, want it refused; see %s", s.Proc.Log)}
		case r > refused && want:
			return false, Fatal{fmt.Errorf("serve refused the new configuration; see %s", s.Proc.Log)}
		}
		return (want && o > ok) || (!want && r > refused), nil
	})
}

// TrustPolicyDoc is a Notation trust policy document trusting ids: level
// strict for every repository, and permissive for the repositories
// ("<registry>/<repository>") given.
func TrustPolicyDoc(ids []string, permissive ...string) map[string]any {
	l := make([]any, len(ids))
	for i, id := range ids {
		l[i] = id
	}
	policy := func(name, level string, scopes ...any) map[string]any {
		return map[string]any{"name": name, "registryScopes": scopes, "signatureVerification": map[string]any{"level": level},
			"trustStores": []any{"signingAuthority:aws-signer-ts"}, "trustedIdentities": l}
	}
	policies := []any{policy("strict", "strict", "*")}
	if len(permissive) > 0 {
		scopes := make([]any, len(permissive))
		for i, r := range permissive {
			scopes[i] = r
		}
		policies = append(policies, policy("permissive", "permissive", scopes...))
	}
	return map[string]any{"version": "1.0", "trustPolicies": policies}
}

// ProviderValues are the chart's values for the provider path on the
// stack: doc as trustPolicyDoc, the emulator's root as the aws-signer-ts
// store and its endpoint, revocation answers kept 1 s.
func ProviderValues(stack *harness.Stack, doc map[string]any) map[string]any {
	return map[string]any{
		"trustPolicyDoc": doc,
		"trustStores":    map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []any{string(stack.Emulator.CA().RootPEM())}}},
		"aws":            map[string]any{"endpoint": stack.Emulator.URL(), "region": stack.Emulator.Region()},
		"revocation":     map[string]any{"cacheTTL": "1s"},
	}
}

// ProviderPathOptions configure StartProviderPath.
type ProviderPathOptions struct {
	// Binary is awssigner (serve is its subcommand).
	Binary string
	// Values are the chart's values in provider mode (the shared keys and
	// policies.*); the e2e's own (mode, provider.url, TLS) are set here.
	Values map[string]any
	// Namespaces are the path's namespaces: every other namespace of the
	// cluster is excluded from its Constraints and Assigns (chart values
	// policies.constraints.excludedNamespaces and
	// provider.mutation.excludedNamespaces), so the Ratify path's
	// namespaces next to them keep their own Constraints and no mutation.
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
	objs, cfg, err := p.render(ctx, o.Values)
	if err != nil {
		return nil, err
	}
	if err := s.WriteConfig(cfg); err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	// Constraints once Gatekeeper has made their kind from the template.
	var constraints, others []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "AWSSignerVerifiedImages" {
			p.Constraints = append(p.Constraints, obj.GetName())
			constraints = append(constraints, obj)
		} else {
			others = append(others, obj)
		}
	}
	p.Objects = objs
	if err := c.Kube.Apply(ctx, GatekeeperNamespace, others...); err != nil {
		return nil, err
	}
	if err := c.Kube.WaitField(ctx, GVRTemplate, "", "awssignerverifiedimages", true, 60*time.Second, "status", "created"); err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, c.Gatekeeper.Log)
	}
	if err := c.Kube.Apply(ctx, GatekeeperNamespace, constraints...); err != nil {
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
func (p *ProviderPath) Reconfigure(ctx context.Context, vals map[string]any) error {
	ok, refused, err := p.Serve.Reloads()
	if err != nil {
		return err
	}
	_, cfg, err := p.render(ctx, vals)
	if err != nil {
		return err
	}
	if err := p.Serve.WriteConfig(cfg); err != nil {
		return err
	}
	return p.Serve.WaitReload(ok, refused, true, 15*time.Second)
}

// render renders the chart in provider mode for vals (a release
// "ratify-aws-signer-provider" in Gatekeeper's namespace): provider.url
// names serve's loopback address, provider.tls.mode secret with the
// cluster's CA (serve's certificate is issued by it), the same CA as
// Gatekeeper's (provider.gatekeeper.caBundle), registries over plain HTTP,
// Constraints as manifests, and every namespace of the cluster but the
// path's excluded from its Constraints and Assigns. It returns the objects
// Gatekeeper needs (Providers, Assigns, Constraints, and the
// ConstraintTemplate unless the cluster has it) and serve's configuration
// (the rendered ConfigMap's config.yaml).
func (p *ProviderPath) render(ctx context.Context, vals map[string]any) ([]*unstructured.Unstructured, map[string]any, error) {
	nss, err := p.c.Kube.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	var excluded []any
	for _, ns := range nss.Items {
		if !slices.Contains(p.o.Namespaces, ns.Name) {
			excluded = append(excluded, ns.Name)
		}
	}
	if !slices.Contains(excluded, any("kube-system")) {
		excluded = append(excluded, "kube-system")
	}
	// The cluster-wide Constraint's default name is the Ratify-mode
	// release's; side by side, this one needs another.
	v := Merge(Merge(map[string]any{"policies": map[string]any{"constraints": map[string]any{"name": ProviderConstraint}}}, vals), map[string]any{
		"mode": "provider",
		"provider": map[string]any{
			"url":        p.Serve.URL,
			"tls":        map[string]any{"mode": "secret", "caBundle": string(p.c.CA.PEM)},
			"gatekeeper": map[string]any{"caBundle": string(p.c.CA.PEM)},
			"registry":   map[string]any{"plainHTTP": true},
			"mutation":   map[string]any{"excludedNamespaces": excluded},
		},
		"policies": map[string]any{"constraints": map[string]any{"install": "manifest", "excludedNamespaces": excluded}},
	})
	objs, err := RenderChart(p.c.ChartDir(), GatekeeperNamespace, "ratify-aws-signer-provider", v)
	if err != nil {
		return nil, nil, fmt.Errorf("render the chart in provider mode: %w", err)
	}
	var out []*unstructured.Unstructured
	var cfg map[string]any
	for _, o := range objs {
		switch o.GetKind() {
		case "Provider", "Assign", "AWSSignerVerifiedImages":
			out = append(out, o)
		case "ConstraintTemplate":
			// The Ratify path's release may have installed it: the two
			// modes must render the same template, and only one release
			// can own it.
			have, err := p.c.Kube.Get(ctx, GVRTemplate, "", o.GetName())
			if err != nil {
				out = append(out, o)
				continue
			}
			if d := notWithin(o.Object["spec"], have.Object["spec"], "spec"); d != "" {
				return nil, nil, fmt.Errorf("the ConstraintTemplate %s rendered in provider mode is not the one in the cluster: %s", o.GetName(), d)
			}
		case "ConfigMap":
			data, _, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			if data == "" {
				continue
			}
			if cfg != nil {
				return nil, nil, errors.New("the provider-mode render has two ConfigMaps with config.yaml")
			}
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				return nil, nil, fmt.Errorf("ConfigMap %s config.yaml: %w", o.GetName(), err)
			}
		}
	}
	if cfg == nil {
		return nil, nil, errors.New("the provider-mode render has no ConfigMap with serve's config.yaml")
	}
	return out, cfg, nil
}

// notWithin returns "" when every field set in a is set to the same value
// in b (b may have more: the API server's defaults), else the path of the
// first field that is not and its two values.
func notWithin(a, b any, path string) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T in the cluster", path, b)
		}
		keys := slices.Sorted(maps.Keys(x))
		for _, k := range keys {
			if d := notWithin(x[k], y[k], path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return fmt.Sprintf("%s: %d entries rendered, the cluster's has %v", path, len(x), b)
		}
		for i := range x {
			if d := notWithin(x[i], y[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	default:
		// Strings up to surrounding white space (a YAML block's last line
		// break).
		as, bs := strings.TrimSpace(fmt.Sprint(a)), strings.TrimSpace(fmt.Sprint(b))
		if as == bs {
			return ""
		}
		i := 0
		for i < len(as) && i < len(bs) && as[i] == bs[i] {
			i++
		}
		return fmt.Sprintf("%s: rendered …%s…, the cluster's …%s…", path, as[max(0, i-60):min(len(as), i+60)], bs[max(0, i-60):min(len(bs), i+60)])
	}
}
