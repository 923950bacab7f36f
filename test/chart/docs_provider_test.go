package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// commandValues returns the values a helm command line gives: its -f files
// (relative to the repository root) and --set values, merged as Helm's CLI
// merges them.
func commandValues(t *testing.T, cmd string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range flagValues(cmd, "-f") {
		mergeValues(vals, readValues(t, filepath.Join(repoRoot, f)))
	}
	for _, s := range flagValues(cmd, "--set") {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("%s: --set %s: %v", cmd, s, err)
		}
	}
	return vals
}

// appVersion is Chart.yaml's appVersion.
func appVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.AppVersion
}

// TestEKSProviderWalkThrough: docs/eks-provider.md's walk-through has the
// number of commands it states, and what can be checked without AWS is:
// the IAM policy and the ServiceAccount, role and namespace the chart's
// install uses; Gatekeeper's chart with the walk-through's timeouts above
// the Providers' (from the pinned module); this chart's install (Gatekeeper's
// Secret in the cluster, as after command 7) with the image `make push`
// writes; one test image from the push to the Pods.
func TestEKSProviderWalkThrough(t *testing.T) {
	cmds, stated := walkCommandsOf(t, "eks-provider.md")
	if len(cmds) != stated {
		t.Errorf("the walk-through has %d commands, the page says %d:\n%s", len(cmds), stated, strings.Join(cmds, "\n"))
	}
	policy := commandWith(t, cmds, "aws iam create-policy")
	if !strings.Contains(policy, "docs/iam/ratify-awssigner-policy.json") {
		t.Errorf("create-policy does not use docs/iam/ratify-awssigner-policy.json: %s", policy)
	}
	policyName := flagValues(policy, "--policy-name")[0]

	ours := commandWith(t, cmds, "helm install ratify-aws-signer charts/ratify-aws-signer")
	ns := flagValues(ours, "-n")[0]
	if ns != releaseNamespace {
		t.Fatalf("the walk-through installs in %s; this test renders in %s", ns, releaseNamespace)
	}
	vals := commandValues(t, ours)
	gk := gatekeeperPKI(t)
	objs := mustRenderAgainst(t, newCluster(gatekeeperSecret(ns, gk.CAPEM)), vals, false)
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	dep := one(t, objs, "Deployment", "ratify-aws-signer")
	saName, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName")
	sa := one(t, objs, "ServiceAccount", saName)

	eks := commandWith(t, cmds, "eksctl create iamserviceaccount")
	for flag, want := range map[string]string{"--namespace": ns, "--name": saName, "--attach-policy-arn": "arn:aws:iam::111122223333:policy/" + policyName} {
		if got := flagValues(eks, flag); len(got) != 1 || got[0] != want {
			t.Errorf("eksctl create iamserviceaccount %s = %v, want %s", flag, got, want)
		}
	}
	if !strings.Contains(eks, "--role-only") {
		t.Error("eksctl create iamserviceaccount without --role-only would create the ServiceAccount the chart creates")
	}
	if a := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]; a != "arn:aws:iam::111122223333:role/"+flagValues(eks, "--role-name")[0] {
		t.Errorf("ServiceAccount %s role-arn %q, eksctl creates role %s", saName, a, flagValues(eks, "--role-name")[0])
	}

	// The image: what make push writes, at the chart's appVersion.
	push := commandWith(t, cmds, "make push")
	var registry, profileARN string
	for _, f := range strings.Fields(push) {
		if v, ok := strings.CutPrefix(f, "REGISTRY="); ok {
			registry = v
		}
		if v, ok := strings.CutPrefix(f, "PROFILE_ARN="); ok {
			profileARN = v
		}
	}
	ctrs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if img := ctrs[0].(map[string]any)["image"]; img != registry+"/awssigner:"+appVersion(t) {
		t.Errorf("the provider runs %v, `make push REGISTRY=%s` writes %s/awssigner:%s", img, registry, registry, appVersion(t))
	}
	if tp := vals["trustedSigningProfiles"].([]any); len(tp) != 1 || tp[0] != profileARN ||
		!strings.HasSuffix(profileARN, ":/signing-profiles/"+flagValues(commandWith(t, cmds, "aws signer put-signing-profile"), "--profile-name")[0]) {
		t.Errorf("the chart trusts %v; make push signs with %s", tp, profileARN)
	}
	if got := flagValues(commandWith(t, cmds, "bin/awssigner sign"), "--profile-arn"); len(got) != 1 || got[0] != profileARN {
		t.Errorf("awssigner sign --profile-arn %v, want %s", got, profileARN)
	}
	if !strings.Contains(commandWith(t, cmds, "kubectl rollout status"), "deployment/"+dep.GetName()+" -n "+ns) {
		t.Errorf("rollout status does not name the Deployment %s", dep.GetName())
	}

	// Gatekeeper's webhooks wait longer than the Providers.
	gkDir, err := moduleDir(gatekeeperModule)
	if err != nil {
		t.Fatal(err)
	}
	gkRel := renderWith(t, filepath.Join(gkDir, "charts", "gatekeeper"), "gatekeeper", commandWith(t, cmds, "helm install gatekeeper"))
	timeouts := map[string]float64{}
	for _, r := range objects(t, gkRel) {
		kind := r.obj.GetKind()
		if kind != "ValidatingWebhookConfiguration" && kind != "MutatingWebhookConfiguration" {
			continue
		}
		hooks, _, _ := unstructured.NestedSlice(r.obj.Object, "webhooks")
		for _, h := range hooks {
			if to, ok := h.(map[string]any)["timeoutSeconds"].(float64); ok && to > timeouts[kind] {
				timeouts[kind] = to
			}
		}
	}
	providerTimeout := func(name string) float64 {
		v, _, _ := unstructured.NestedFieldNoCopy(one(t, objs, "Provider", name).Object, "spec", "timeout")
		return v.(float64)
	}
	if timeouts["ValidatingWebhookConfiguration"] <= providerTimeout("awssigner-verify") || timeouts["MutatingWebhookConfiguration"] <= providerTimeout("awssigner-mutate") {
		t.Errorf("Gatekeeper's webhook timeouts %v do not exceed the Providers' (verify %v, mutate %v)", timeouts, providerTimeout("awssigner-verify"), providerTimeout("awssigner-mutate"))
	}

	image := strings.TrimPrefix(commandWith(t, cmds, "docker push "), "docker push ")
	for _, c := range cmds {
		if strings.HasPrefix(c, "kubectl run ") || strings.HasPrefix(c, "bin/awssigner sign ") {
			if !strings.Contains(c, " "+image) && !strings.Contains(c, "="+image) {
				t.Errorf("%q does not use the test image the walk-through pushes (%s)", c, image)
			}
		}
	}
}

// TestDocsChartCommands: every `helm install` / `helm upgrade` of this
// chart in the EKS and migration pages installs, in the order the page
// gives them (an upgrade with --reuse-values on top of the install before
// it), in a cluster with Gatekeeper's Secret and Ratify's CRDs, and every
// object passes the API server's validation.
func TestDocsChartCommands(t *testing.T) {
	gk := gatekeeperPKI(t)
	for _, page := range []string{"eks-provider.md", "migrate-from-aws-guide.md", "kubernetes.md"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", page))
		if err != nil {
			t.Fatal(err)
		}
		var current map[string]any
		n := 0
		for _, c := range shCommands(t, string(raw)) {
			install := strings.HasPrefix(c, "helm install ratify-aws-signer charts/ratify-aws-signer")
			upgrade := strings.HasPrefix(c, "helm upgrade ratify-aws-signer charts/ratify-aws-signer")
			if !install && !upgrade {
				continue
			}
			n++
			if ns := flagValues(c, "-n"); len(ns) != 1 || ns[0] != releaseNamespace {
				t.Errorf("%s: %q: namespace %v, the test renders in %s", page, c, ns, releaseNamespace)
			}
			vals := commandValues(t, c)
			if upgrade {
				if current == nil || !strings.Contains(c, "--reuse-values") {
					t.Errorf("%s: %q upgrades without an install before it or without --reuse-values", page, c)
					continue
				}
				merged := runtimeCopy(current)
				mergeValues(merged, vals)
				vals = merged
			}
			current = vals
			objs, err := renderAgainst(t, newCluster(gatekeeperSecret(releaseNamespace, gk.CAPEM)), vals, upgrade, verifierAPI)
			if err != nil {
				t.Errorf("%s: %q: %v", page, c, err)
				continue
			}
			for _, p := range validateRelease(t, objs) {
				t.Errorf("%s: %q: %s", page, c, p)
			}
		}
		if n == 0 {
			t.Errorf("%s has no helm command for the chart", page)
		}
	}
}

func runtimeCopy(m map[string]any) map[string]any {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil
	}
	return out
}
