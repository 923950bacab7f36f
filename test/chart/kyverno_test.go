package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
)

const kyvernoPolicyFile = "awssigner-verified-images.yaml"

// kyvernoURL is the /checkimages URL of the release's Service.
const kyvernoURL = "https://ratify-aws-signer.gatekeeper-system.svc:6002/checkimages"

// decodeInCluster decodes serve's configuration as serve does in a pod
// (KUBERNETES_SERVICE_HOST/PORT set, so TokenReviews go to the API server)
// and checks it can start.
func decodeInCluster(t *testing.T, objs []rendered) *config.Config {
	t.Helper()
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	raw, _, _ := unstructured.NestedString(one(t, objs, "ConfigMap", "ratify-aws-signer-config").Object, "data", "config.yaml")
	cfg, err := config.Decode([]byte(raw))
	if err != nil {
		t.Fatalf("serve refuses the chart's configuration: %v\n%s", err, raw)
	}
	if err := cfg.Server.CheckServe(); err != nil {
		t.Fatalf("serve would not start: %v\n%s", err, raw)
	}
	return cfg
}

// TestProviderKyverno: provider.kyverno.enabled adds serve's /checkimages
// listener (port 6002 on the Service, open to Kyverno's namespace only),
// the ServiceAccount's TokenReview right and its token, the ClusterPolicy,
// and the server.kyverno section naming Kyverno's controllers.
func TestProviderKyverno(t *testing.T) {
	gk := gatekeeperPKI(t)
	_, objs := mustInstall(t, providerValues(t, gk.CAPEM, "provider: {kyverno: {enabled: true}}"))
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	cfg := decodeInCluster(t, objs)
	k := cfg.Server.Kyverno
	if !k.Enabled || k.Address != ":6002" || !cfg.Server.GatekeeperEnabled ||
		!reflect.DeepEqual(k.AllowedCallers, []string{"system:serviceaccount:kyverno:kyverno-admission-controller", "system:serviceaccount:kyverno:kyverno-reports-controller"}) ||
		k.APIServer != "https://10.96.0.1:443" {
		t.Errorf("server.kyverno resolved to %+v", k)
	}
	// Audiences left to serve's default.
	if doc := serveDocument(t, objs); doc["server"].(map[string]any)["kyverno"].(map[string]any)["audiences"] != nil {
		t.Errorf("server.kyverno.audiences rendered without provider.kyverno.audiences: %v", doc["server"])
	}

	svc := typed[corev1.Service](t, one(t, objs, "Service", "ratify-aws-signer"))
	ports := map[string]string{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.TargetPort.String()
		if p.Name == "kyverno" && p.Port != 6002 {
			t.Errorf("kyverno port %d", p.Port)
		}
	}
	if !reflect.DeepEqual(ports, map[string]string{"https": "https", "kyverno": "kyverno", "metrics": "health"}) {
		t.Errorf("Service ports %v", ports)
	}
	dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))
	if a := dep.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || !*a {
		t.Error("no service account token in the pod: serve cannot ask for TokenReviews")
	}
	var cports []string
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		cports = append(cports, p.Name)
		if p.Name == "kyverno" && p.ContainerPort != 6002 {
			t.Errorf("container port kyverno %d", p.ContainerPort)
		}
	}
	if !slices.Contains(cports, "kyverno") {
		t.Errorf("container ports %v", cports)
	}

	np := typed[networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy", "ratify-aws-signer"))
	var kyvernoRule *networkingv1.NetworkPolicyIngressRule
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) == 1 && *r.Ports[0].Port == intstr.FromString("kyverno") {
			kyvernoRule = &np.Spec.Ingress[i]
		}
	}
	if kyvernoRule == nil || len(kyvernoRule.From) != 1 || kyvernoRule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kyverno" || len(np.Spec.Ingress) != 3 {
		t.Errorf("NetworkPolicy ingress %+v", np.Spec.Ingress)
	}

	crb := typed[rbacv1.ClusterRoleBinding](t, one(t, objs, "ClusterRoleBinding", "ratify-aws-signer-auth-delegator"))
	if crb.RoleRef.Name != "system:auth-delegator" || crb.RoleRef.Kind != "ClusterRole" || len(crb.Subjects) != 1 ||
		crb.Subjects[0] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "ratify-aws-signer", Namespace: releaseNamespace}) {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
	if n := len(ofKind(objs, "ClusterPolicy")); n != 1 {
		t.Errorf("%d ClusterPolicies", n)
	}

	// Another Kyverno namespace, callers and audiences, named trust policies.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, `
provider:
  kyverno:
    enabled: true
    namespace: policy-engine
    audiences: [awssigner, kyverno-svc.kyverno.io]
    timeout: 2s
    tokenCacheTTL: 1m
    trustPolicyDocs:
      team-b:
        version: "1.0"
        trustPolicies:
          - name: team-b
            registryScopes: ["*"]
            signatureVerification: {level: strict}
            trustStores: ["signingAuthority:aws-signer-ts"]
            trustedIdentities: ["`+teamARN+`"]`))
	cfg = decodeInCluster(t, objs)
	k = cfg.Server.Kyverno
	if !reflect.DeepEqual(k.AllowedCallers, []string{"system:serviceaccount:policy-engine:kyverno-admission-controller", "system:serviceaccount:policy-engine:kyverno-reports-controller"}) ||
		!reflect.DeepEqual(k.Audiences, []string{"awssigner", "kyverno-svc.kyverno.io"}) || k.Timeout.String() != "2s" || k.TokenCacheTTL.String() != "1m0s" {
		t.Errorf("server.kyverno resolved to %+v", k)
	}
	if _, ok := cfg.TrustPolicies["team-b"]; !ok {
		t.Errorf("named trust policies %v", cfg.TrustPolicies)
	}
	np = typed[networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy", "ratify-aws-signer"))
	if got := np.Spec.Ingress[1].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; got != "policy-engine" {
		t.Errorf("Kyverno's namespace in the NetworkPolicy: %q", got)
	}
	excluded := policyExclusions(t, one(t, objs, "ClusterPolicy", "awssigner-verified-images"))
	if !slices.Contains(excluded, "policy-engine") || slices.Contains(excluded, "kyverno") {
		t.Errorf("the policy excludes %v, not Kyverno's namespace policy-engine", excluded)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}

	// Kyverno off (the default): none of it.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM))
	if n := len(ofKind(objs, "ClusterPolicy")) + len(ofKind(objs, "ClusterRoleBinding")); n != 1 { // the constraints Job's binding
		t.Errorf("Kyverno objects rendered while disabled: %v", objs)
	}
	if a := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer")).Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("a service account token mounted without Kyverno")
	}

	// Exemptions reach serve from both rules.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {kyverno: {enabled: true, skipImageReferences: ['registry.example.com/platform/*', 'public.ecr.aws/eks/pause:?.?']}}"))
	rules, _, _ := unstructured.NestedSlice(one(t, objs, "ClusterPolicy", "awssigner-verified-images").Object, "spec", "rules")
	sent := 0
	for _, r := range rules {
		for _, e := range r.(map[string]any)["context"].([]any) {
			data, _, _ := unstructured.NestedSlice(e.(map[string]any), "apiCall", "data")
			for _, d := range data {
				if d := d.(map[string]any); d["key"] == "skipImageReferences" {
					sent++
					if !reflect.DeepEqual(d["value"], []any{"registry.example.com/platform/*", "public.ecr.aws/eks/pause:?.?"}) {
						t.Errorf("skipImageReferences sent as %v", d["value"])
					}
				}
			}
		}
	}
	if sent != 2 {
		t.Errorf("skipImageReferences in %d service calls, want both rules'", sent)
	}

	// The listener without the policy (installed some other way).
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {kyverno: {enabled: true, policy: {enabled: false}}}"))
	if len(ofKind(objs, "ClusterPolicy")) != 0 || len(ofKind(objs, "ClusterRoleBinding")) != 2 {
		t.Errorf("policy.enabled=false: %v", objs)
	}
}

// TestProviderKyvernoOnly: provider.gatekeeper.enabled=false serves Kyverno
// alone: no Gatekeeper object at all, no Gatekeeper CA needed.
func TestProviderKyvernoOnly(t *testing.T) {
	_, objs := mustInstall(t, providerValues(t, nil, "provider: {gatekeeper: {enabled: false}, kyverno: {enabled: true}}"))
	var kinds []string
	for _, r := range objs {
		if strings.HasPrefix(r.obj.GetAPIVersion(), "kyverno.io/") {
			continue // policies/kyverno's objects (TestKyvernoPolicyIsThePolicy)
		}
		kinds = append(kinds, r.obj.GetKind()+"/"+r.obj.GetName())
	}
	if len(ofKind(objs, "ClusterPolicy")) != 1 {
		t.Errorf("no ClusterPolicy: %v", objs)
	}
	want := []string{
		"NetworkPolicy/ratify-aws-signer", "PodDisruptionBudget/ratify-aws-signer", "ServiceAccount/ratify-aws-signer",
		"Secret/ratify-aws-signer-ca", "Secret/ratify-aws-signer-tls", "ConfigMap/ratify-aws-signer-config",
		"ClusterRoleBinding/ratify-aws-signer-auth-delegator", "Service/ratify-aws-signer", "Deployment/ratify-aws-signer",
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("objects\n%v\nwant\n%v", kinds, want)
	}
	cfg := decodeInCluster(t, objs)
	if cfg.Server.GatekeeperEnabled || cfg.Server.ClientCAFile != "" {
		t.Errorf("Gatekeeper still served: %+v", cfg.Server)
	}
	svc := typed[corev1.Service](t, one(t, objs, "Service", "ratify-aws-signer"))
	for _, p := range svc.Spec.Ports {
		if p.Name == "https" {
			t.Error("Service port 6001 without Gatekeeper")
		}
	}
	np := typed[networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy", "ratify-aws-signer"))
	if len(np.Spec.Ingress) != 2 || *np.Spec.Ingress[0].Ports[0].Port != intstr.FromString("kyverno") {
		t.Errorf("NetworkPolicy ingress %+v", np.Spec.Ingress)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}

	for _, c := range []struct{ vals, want string }{
		{"provider: {gatekeeper: {enabled: false}}", "provider.gatekeeper.enabled and provider.kyverno.enabled are both false"},
		{"provider: {kyverno: {trustPolicyDocs: {x: {version: '1.0', trustPolicies: [{name: x, registryScopes: ['*'], signatureVerification: {level: skip}}]}}}}", "provider.kyverno.trustPolicyDocs are selected by Kyverno's requests only"},
		{"provider: {kyverno: {enabled: true, trustPolicyDocs: {Team_B: {version: '1.0', trustPolicies: [{name: x, registryScopes: ['*'], signatureVerification: {level: skip}}]}}}}", "invalid propertyName 'Team_B'"},
		{"provider: {kyverno: {enabled: true, trustPolicyDocs: {b: {trustPolicies: [{name: x, registryScopes: ['*'], signatureVerification: {level: skip}}]}}}}", "missing property 'version'"},
		{"provider: {kyverno: {enabled: true, audience: [x]}}", "additional properties 'audience' not allowed"},
	} {
		_, err := install(t, providerValues(t, nil, c.vals))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.vals, err, c.want)
		}
	}
}

// policyExclusions returns the namespaces every rule excludes (they must
// agree).
func policyExclusions(t *testing.T, p *unstructured.Unstructured) []string {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(p.Object, "spec", "rules")
	var first []string
	for i, r := range rules {
		anyOf, _, _ := unstructured.NestedSlice(r.(map[string]any), "exclude", "any")
		ns, _, _ := unstructured.NestedStringSlice(anyOf[0].(map[string]any), "resources", "namespaces")
		if i == 0 {
			first = ns
		} else if !reflect.DeepEqual(ns, first) {
			t.Errorf("rule %d excludes %v, rule 0 %v", i, ns, first)
		}
	}
	return first
}

// TestKyvernoPolicyIsThePolicy: the chart installs every object of
// policies/kyverno/*.yaml as it is but for what must be filled in in the
// ClusterPolicy (every service call's URL and CA, serve's and Kyverno's
// namespaces in the exclusions) and the chart's labels; its copies in
// files/kyverno are current.
func TestKyvernoPolicyIsThePolicy(t *testing.T) {
	sources, _ := filepath.Glob(filepath.Join(policiesDir, "kyverno", "*.yaml"))
	if len(sources) == 0 {
		t.Fatal("no policies/kyverno/*.yaml")
	}
	var want []map[string]any
	for _, f := range sources {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := os.ReadFile(filepath.Join(chartDir, "files", "kyverno", filepath.Base(f)))
		if err != nil || !strings.HasSuffix(string(copied), "\n"+string(src)) {
			t.Errorf("files/kyverno/%s is not policies/kyverno/%s (run `make chart-policies`): %v", filepath.Base(f), filepath.Base(f), err)
		}
		var o map[string]any
		if err := yaml.Unmarshal(src, &o); err != nil {
			t.Fatal(err)
		}
		want = append(want, o)
	}

	gk := gatekeeperPKI(t)
	own := gatekeeperPKI(t) // a user's CA, for mode secret
	for _, c := range []struct {
		name string
		vals map[string]any
		ca   func(objs []rendered) string
	}{
		{"generated", providerValues(t, gk.CAPEM, "provider: {kyverno: {enabled: true}}"), func(objs []rendered) string {
			return string(secretPEM(t, objs, "ratify-aws-signer-ca", "tls.crt"))
		}},
		{"secret", providerValues(t, gk.CAPEM, "provider: {kyverno: {enabled: true}, tls: {mode: secret, caBundle: "+jsonString(string(own.CAPEM))+"}}"), func([]rendered) string {
			return string(own.CAPEM)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, objs := mustInstall(t, c.vals)
			ca := c.ca(objs)
			policies := 0
			for _, w := range want {
				kind, _, _ := unstructured.NestedString(w, "kind")
				name, _, _ := unstructured.NestedString(w, "metadata", "name")
				got := one(t, objs, kind, name).DeepCopy().Object
				labels, _, _ := unstructured.NestedStringMap(got, "metadata", "labels")
				if labels["app.kubernetes.io/instance"] != "ratify-aws-signer" {
					t.Errorf("%s %s labels %v", kind, name, labels)
				}
				unstructured.RemoveNestedField(got, "metadata", "labels")
				exp := runtime.DeepCopyJSON(w)
				if kind == "ClusterPolicy" {
					policies++
					fillPolicy(t, exp, ca)
				}
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("the chart's %s %s\n%s\nwant policies/kyverno's, filled in\n%s", kind, name, toYAML(got), toYAML(exp))
				}
			}
			if policies != 1 {
				t.Errorf("%d ClusterPolicies in policies/kyverno, want 1", policies)
			}
			if n := len(ofKind(objs, "ClusterPolicy")); n != policies {
				t.Errorf("the chart renders %d ClusterPolicies", n)
			}
		})
	}
}

// fillPolicy is what the chart fills into policies/kyverno's ClusterPolicy:
// the service URL and CA of every call, the release namespace for the
// "awssigner" placeholder.
func fillPolicy(t *testing.T, p map[string]any, ca string) {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(p, "spec", "rules")
	calls := 0
	for _, r := range rules {
		rule := r.(map[string]any)
		for _, e := range rule["context"].([]any) {
			svc, found, _ := unstructured.NestedMap(e.(map[string]any), "apiCall", "service")
			if !found {
				continue
			}
			calls++
			if svc["url"] != "https://awssigner.awssigner.svc:6002/checkimages" {
				t.Errorf("the policy's service URL placeholder changed: %v (the chart replaces any URL; see policies/kyverno/README.md)", svc["url"])
			}
			svc["url"], svc["caBundle"] = kyvernoURL, ca
			unstructured.SetNestedMap(e.(map[string]any), svc, "apiCall", "service")
		}
		anyOf := rule["exclude"].(map[string]any)["any"].([]any)
		ns := anyOf[0].(map[string]any)["resources"].(map[string]any)["namespaces"].([]any)
		for i, n := range ns {
			if n == "awssigner" {
				ns[i] = releaseNamespace
			}
		}
	}
	unstructured.SetNestedSlice(p, rules, "spec", "rules")
	if calls != 2 {
		t.Errorf("the policy makes %d service calls, want 2 (one per rule)", calls)
	}
}
