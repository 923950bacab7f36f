package gatekeeper

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/apis/externaldata/unversioned"
	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
)

// One provider setup per test binary: external_data is a process-global
// builtin bound to the last driver built with a provider cache.
var env struct {
	stack     *harness.Stack
	server    *harness.Server
	serve     *serve.Process
	client    *constraintclient.Client
	providers *externaldata.ProviderCache
	caBundle  string
	root      string
	otherARN  string
}

// sampleHost is the registry name the policy samples use; the tests serve
// it from a local registry.
const sampleHost = "registry.example.com"

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: setup:", err)
		code = 1
	}
	if env.server != nil {
		env.server.Stop()
	}
	if env.serve != nil {
		env.serve.Stop()
	}
	if env.stack != nil {
		env.stack.Close()
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	ctx := context.Background()
	root, err := harness.Root()
	if err != nil {
		return 1, err
	}
	env.root = root
	ratify, err := harness.RatifyBinary()
	if err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			return 1, err
		}
		fmt.Fprintln(os.Stderr, "skipping Gatekeeper engine tests:", err)
		return 0, nil
	}
	dir, err := os.MkdirTemp("", "awssigner-gk-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return 1, err
	}
	plugin, err := harness.PluginBinary(pluginDir)
	if err != nil {
		return 1, err
	}
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return 1, err
	}
	env.stack = s
	samples, err := s.PushSamples(ctx)
	if err != nil {
		return 1, err
	}
	env.otherARN = samples.OtherARN
	if err := pushBenchImages(ctx, s); err != nil {
		return 1, err
	}
	// Ratify trusts both profiles; the namespace constraint narrows to Team.
	cfg, err := s.RatifyConfig(pluginDir, "all", s.VerifierConfig("verifier-awssigner", "strict", []string{s.ProfileARN, env.otherARN}, nil))
	if err != nil {
		return 1, err
	}
	if env.server, err = harness.StartRatifyServe(ctx, ratify, dir, cfg); err != nil {
		return 1, err
	}
	if err := newClient(); err != nil {
		return 1, err
	}
	if err := startServe(ctx, plugin, dir); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// pushBenchImages pushes team/app:c0…c9, signed, for the 10-container
// benchmark.
func pushBenchImages(ctx context.Context, s *harness.Stack) error {
	for i := 0; i < 10; i++ {
		_, desc, err := s.PushImage(ctx, "team/app", fmt.Sprintf("c%d", i))
		if err != nil {
			return err
		}
		if _, _, err := s.Sign(ctx, "team/app", desc, ""); err != nil {
			return err
		}
	}
	return nil
}

// newClient builds Gatekeeper's engine as its main does: a Rego driver with
// the external-data provider cache, a response cache, client certificate
// authentication, and the Kubernetes validation target.
func newClient() error {
	env.providers = externaldata.NewCache()
	env.caBundle = base64.StdEncoding.EncodeToString(env.server.PKI.CAPEM)
	if err := upsertProvider(env.server.URL); err != nil {
		return err
	}
	cw, err := certwatcher.New(env.server.PKI.ClientCert, env.server.PKI.ClientKey)
	if err != nil {
		return err
	}
	drv, err := rego.New(
		rego.AddExternalDataProviderCache(env.providers),
		rego.AddExternalDataProviderResponseCache(externaldata.NewProviderResponseCache(context.Background(), 10*time.Second)),
		rego.EnableExternalDataClientAuth(),
		rego.AddExternalDataClientCertWatcher(cw),
	)
	if err != nil {
		return err
	}
	env.client, err = constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.Driver(drv),
		constraintclient.EnforcementPoints(util.WebhookEnforcementPoint, util.AuditEnforcementPoint),
	)
	if err != nil {
		return err
	}
	templates, _ := filepath.Glob(filepath.Join(env.root, "policies", "*", "template.yaml"))
	if len(templates) == 0 {
		return fmt.Errorf("no policies/*/template.yaml")
	}
	for _, p := range templates {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var ct templatesv1.ConstraintTemplate
		if err := yaml.Unmarshal(b, &ct); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		vl, err := ct.ToVersionless()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if _, err := env.client.AddTemplate(context.Background(), vl); err != nil {
			return fmt.Errorf("add template %s: %w", p, err)
		}
	}
	return nil
}

func upsertProvider(url string) error {
	return env.providers.Upsert(&unversioned.Provider{
		ObjectMeta: metav1.ObjectMeta{Name: "ratify-provider"},
		Spec:       unversioned.ProviderSpec{URL: url, Timeout: 5, CABundle: env.caBundle},
	})
}

// load reads a sample YAML with the sample registry mapped to the local one.
func load(t testing.TB, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(sampleHost+"/"), []byte(env.stack.Registry.Host+"/"))
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

func review(t testing.TB, obj *unstructured.Unstructured, ep string) []*types.Result {
	t.Helper()
	ns := obj.GetNamespace()
	if ns == "" {
		ns = "default"
		if obj.GetKind() != "Namespace" {
			obj.SetNamespace(ns)
		}
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	resp, err := env.client.Review(context.Background(), &target.AugmentedUnstructured{
		Object: *obj, Namespace: nsObj, Operation: admissionv1.Create, Source: mutationtypes.SourceTypeOriginal,
	}, reviews.EnforcementPoint(ep))
	if err != nil {
		t.Fatalf("review: %v", err)
	}
	return resp.Results()
}

func messages(rs []*types.Result) string {
	var m []string
	for _, r := range rs {
		m = append(m, r.EnforcementAction+": "+r.Msg)
	}
	sort.Strings(m)
	return strings.Join(m, "\n")
}

// withConstraint installs one constraint for the duration of a test.
func withConstraint(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	c := load(t, path)
	if _, err := env.client.AddConstraint(context.Background(), c); err != nil {
		t.Fatalf("add constraint %s: %v", path, err)
	}
	t.Cleanup(func() {
		if _, err := env.client.RemoveConstraint(context.Background(), c); err != nil {
			t.Errorf("remove constraint: %v", err)
		}
	})
	return c
}

// TestSamples reviews every sample object under its scenario's constraint:
// allowed objects give no result, disallowed ones give results with the
// constraint's enforcement action and a message naming the image.
func TestSamples(t *testing.T) {
	scenarios, _ := filepath.Glob(filepath.Join(env.root, "policies", "*", "samples", "*"))
	if len(scenarios) < 3 {
		t.Fatalf("want at least 3 sample scenarios, found %v", scenarios)
	}
	for _, dir := range scenarios {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(dir)))+"/"+filepath.Base(dir), func(t *testing.T) {
			c := withConstraint(t, filepath.Join(dir, "constraint.yaml"))
			action, _, _ := unstructured.NestedString(c.Object, "spec", "enforcementAction")
			if action == "" {
				action = "deny"
			}
			allowed, _ := filepath.Glob(filepath.Join(dir, "example_allowed*.yaml"))
			disallowed, _ := filepath.Glob(filepath.Join(dir, "example_disallowed*.yaml"))
			if len(allowed) == 0 || len(disallowed) == 0 {
				t.Fatalf("scenario needs allowed and disallowed examples")
			}
			for _, p := range allowed {
				if rs := review(t, load(t, p), util.WebhookEnforcementPoint); len(rs) != 0 {
					t.Errorf("%s: want no result, got:\n%s", filepath.Base(p), messages(rs))
				}
			}
			for _, p := range disallowed {
				obj := load(t, p)
				rs := review(t, obj, util.WebhookEnforcementPoint)
				if len(rs) == 0 {
					t.Errorf("%s: want a %s result, got none", filepath.Base(p), action)
					continue
				}
				for _, r := range rs {
					if r.EnforcementAction != action {
						t.Errorf("%s: action %q, want %q", filepath.Base(p), r.EnforcementAction, action)
					}
					if !strings.Contains(r.Msg, env.stack.Registry.Host+"/") {
						t.Errorf("%s: message does not name the image: %s", filepath.Base(p), r.Msg)
					}
				}
				t.Logf("%s:\n%s", filepath.Base(p), messages(rs))
			}
		})
	}
}

func pod(name string, containers map[string]string, init map[string]string) *unstructured.Unstructured {
	list := func(m map[string]string) []any {
		var out []any
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, map[string]any{"name": n, "image": env.stack.Registry.Host + "/" + m[n]})
		}
		return out
	}
	spec := map[string]any{"containers": list(containers)}
	if init != nil {
		spec["initContainers"] = list(init)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     spec,
	}}
}

func clusterWide(t *testing.T) {
	t.Helper()
	withConstraint(t, filepath.Join(env.root, "policies", "awssigner-verified-images", "samples", "cluster-wide", "constraint.yaml"))
}

// TestCases covers the named cases with explicit expectations on
// the messages.
func TestCases(t *testing.T) {
	t.Run("unsigned image", func(t *testing.T) {
		clusterWide(t)
		rs := review(t, pod("p", map[string]string{"app": "team/app:unsigned"}, nil), util.WebhookEnforcementPoint)
		if len(rs) != 1 || !strings.Contains(rs[0].Msg, "team/app:unsigned") || !strings.Contains(rs[0].Msg, `"app"`) {
			t.Fatalf("got:\n%s", messages(rs))
		}
	})
	t.Run("Ratify scope: keys sent as [namespace]image, answers mapped back", func(t *testing.T) {
		c := load(t, filepath.Join(env.root, "policies", "awssigner-verified-images", "samples", "cluster-wide", "constraint.yaml"))
		c.SetName("scoped")
		if err := unstructured.SetNestedField(c.Object, "gatekeeper-system", "spec", "parameters", "ratifyNamespace"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.client.AddConstraint(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		defer env.client.RemoveConstraint(context.Background(), c)
		if rs := review(t, pod("p", map[string]string{"app": "team/app:signed"}, nil), util.WebhookEnforcementPoint); len(rs) != 0 {
			t.Fatalf("signed image, scoped: got:\n%s", messages(rs))
		}
		rs := review(t, pod("p", map[string]string{"app": "team/app:unsigned"}, nil), util.WebhookEnforcementPoint)
		if len(rs) != 1 || !strings.Contains(rs[0].Msg, "it has no signature") {
			t.Fatalf("unsigned image, scoped: got:\n%s", messages(rs))
		}
		details, _ := rs[0].Metadata["details"].(map[string]any)
		if details["reason"] != "unsigned" || details["ratifyKey"] != "[gatekeeper-system]"+env.stack.Registry.Host+"/team/app:unsigned" {
			t.Errorf("details %v, want reason unsigned and the scoped key", details)
		}
	})
	t.Run("revoked signature", func(t *testing.T) {
		clusterWide(t)
		rs := review(t, pod("p", map[string]string{"app": "team/app:revoked"}, nil), util.WebhookEnforcementPoint)
		if len(rs) != 1 || !strings.Contains(rs[0].Msg, "revoked") || !strings.Contains(rs[0].Msg, "signing-jobs/") {
			t.Fatalf("got:\n%s", messages(rs))
		}
	})
	t.Run("another profile in a restricted namespace", func(t *testing.T) {
		withConstraint(t, filepath.Join(env.root, "policies", "awssigner-verified-images", "samples", "namespace-profile", "constraint.yaml"))
		p := pod("p", map[string]string{"app": "team/app:other"}, nil)
		p.SetNamespace("payments")
		rs := review(t, p, util.WebhookEnforcementPoint)
		if len(rs) != 1 || !strings.Contains(rs[0].Msg, env.otherARN) || !strings.Contains(rs[0].Msg, env.stack.ProfileARN) {
			t.Fatalf("got:\n%s", messages(rs))
		}
		// The same image outside the namespace is not this constraint's business.
		p.SetNamespace("default")
		if rs := review(t, p, util.WebhookEnforcementPoint); len(rs) != 0 {
			t.Fatalf("outside payments:\n%s", messages(rs))
		}
	})
	t.Run("exempt image", func(t *testing.T) {
		clusterWide(t)
		rs := review(t, pod("p", map[string]string{"app": "team/app:signed", "sidecar": "platform/sidecar:v1"}, nil), util.WebhookEnforcementPoint)
		if len(rs) != 0 {
			t.Fatalf("got:\n%s", messages(rs))
		}
	})
	t.Run("Deployment with a bad init container", func(t *testing.T) {
		clusterWide(t)
		p := pod("x", map[string]string{"app": "team/app:signed"}, map[string]string{"setup": "team/app:unsigned"})
		d := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web", "namespace": "default"},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}}, "spec": p.Object["spec"]},
			},
		}}
		rs := review(t, d, util.WebhookEnforcementPoint)
		if len(rs) != 1 || !strings.Contains(rs[0].Msg, "setup") || !strings.Contains(rs[0].Msg, "initContainers") {
			t.Fatalf("got:\n%s", messages(rs))
		}
	})
	t.Run("audit sees the same", func(t *testing.T) {
		clusterWide(t)
		rs := review(t, pod("p", map[string]string{"app": "team/app:unsigned"}, nil), util.AuditEnforcementPoint)
		if len(rs) != 1 {
			t.Fatalf("got:\n%s", messages(rs))
		}
	})
	t.Run("Ratify unreachable fails closed", func(t *testing.T) {
		clusterWide(t)
		dead, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if err := upsertProvider("https://" + dead + "/ratify/gatekeeper/v1/verify"); err != nil {
			t.Fatal(err)
		}
		defer upsertProvider(env.server.URL)
		// A tag the response cache has not seen, so the provider is asked.
		rs := review(t, pod("p", map[string]string{"app": "team/app:c9"}, nil), util.WebhookEnforcementPoint)
		if len(rs) != 1 || rs[0].EnforcementAction != "deny" || !strings.Contains(strings.ToLower(rs[0].Msg), "error") {
			t.Fatalf("got:\n%s", messages(rs))
		}
		t.Logf("unreachable Ratify: %s", rs[0].Msg)
	})
}

// BenchmarkReviewPod10Containers is Gatekeeper's review of a Pod with ten
// signed containers, the provider's answers already in Gatekeeper's
// response cache.
func BenchmarkReviewPod10Containers(b *testing.B) {
	c := load(b, filepath.Join(env.root, "policies", "awssigner-verified-images", "samples", "cluster-wide", "constraint.yaml"))
	if _, err := env.client.AddConstraint(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	defer env.client.RemoveConstraint(context.Background(), c)
	containers := map[string]string{}
	for i := 0; i < 10; i++ {
		containers[fmt.Sprintf("c%d", i)] = fmt.Sprintf("team/app:c%d", i)
	}
	p := pod("ten", containers, nil)
	if rs := review(b, p, util.WebhookEnforcementPoint); len(rs) != 0 {
		b.Fatalf("warm-up:\n%s", messages(rs))
	}
	b.ResetTimer()
	for b.Loop() {
		if rs := review(b, p, util.WebhookEnforcementPoint); len(rs) != 0 {
			b.Fatal(messages(rs))
		}
	}
}
