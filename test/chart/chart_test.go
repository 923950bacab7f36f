package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	prodARN = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"
	teamARN = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Team"
	govARN  = "arn:aws-us-gov:signer:us-gov-west-1:111122223333:/signing-profiles/Prod"
)

// TestExamplesRenderValid renders every documented example, as a cluster
// with Ratify and an established template would (mode provider: Gatekeeper's
// CA passed as an offline render passes it), and checks every object
// against the API server's schema, Gatekeeper's admission and the plugin's
// decoder.
func TestExamplesRenderValid(t *testing.T) {
	gk := gatekeeperPKI(t)
	for _, f := range exampleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			vals := readValues(t, f)
			provider := vals["mode"] == "provider"
			if provider {
				mergeValues(vals, map[string]any{"provider": map[string]any{"gatekeeper": map[string]any{"caBundle": string(gk.CAPEM)}}})
			}
			_, objs := mustInstall(t, vals, verifierAPI, constraintAPI)
			for _, p := range validateRelease(t, objs) {
				t.Error(p)
			}
			wantVerifiers, wantDeployments := 1, 0
			if provider {
				wantVerifiers, wantDeployments = 0, 1
			}
			if n := len(ofKind(objs, verifierKind)); n != wantVerifiers {
				t.Errorf("%d Verifiers, want %d", n, wantVerifiers)
			}
			if n := len(ofKind(objs, "Deployment")); n != wantDeployments {
				t.Errorf("%d provider Deployments, want %d", n, wantDeployments)
			}
			if n := len(ofKind(objs, "ConstraintTemplate")); n != 1 {
				t.Errorf("%d ConstraintTemplates, want 1", n)
			}
			if n := len(ofKind(objs, "AWSSignerVerifiedImages")); n == 0 {
				t.Error("no Constraint")
			}
			for _, r := range objs {
				if ns := r.obj.GetNamespace(); ns != "" && ns != releaseNamespace {
					t.Errorf("%s: in namespace %q, not the release namespace", r, ns)
				}
			}
		})
	}
}

// TestDefaultValues: the defaults trust nobody, so installing them is
// refused with a message saying what to set; with one profile they render
// the whole set.
func TestDefaultValues(t *testing.T) {
	_, err := install(t, nil, verifierAPI, constraintAPI)
	if err == nil || !strings.Contains(err.Error(), "no trusted signing profile: set trustedSigningProfiles") {
		t.Fatalf("install with the defaults: got %v, want the missing-profile message", err)
	}

	_, objs := mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]"), verifierAPI, constraintAPI)
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	var kinds []string
	for _, r := range objs {
		kinds = append(kinds, r.obj.GetKind()+"/"+r.obj.GetName())
	}
	want := []string{"ConfigMap/ratify-aws-signer-constraints", "AWSSignerVerifiedImages/aws-signer-verified-images",
		"ConstraintTemplate/awssignerverifiedimages", "NamespacedVerifier/verifier-awssigner",
		"ServiceAccount/ratify-aws-signer-constraints", "ClusterRole/ratify-aws-signer-constraints",
		"ClusterRoleBinding/ratify-aws-signer-constraints", "Job/ratify-aws-signer-constraints"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("objects %v, want %v", kinds, want)
	}
	c := ofKind(objs, "AWSSignerVerifiedImages")[0].obj
	spec, _, _ := unstructured.NestedMap(c.Object, "spec")
	wantSpec := map[string]any{
		"enforcementAction": "deny",
		"match": map[string]any{
			"kinds": []any{
				map[string]any{"apiGroups": []any{""}, "kinds": []any{"Pod"}},
				map[string]any{"apiGroups": []any{"apps"}, "kinds": []any{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}},
				map[string]any{"apiGroups": []any{"batch"}, "kinds": []any{"Job", "CronJob"}},
			},
			"excludedNamespaces": []any{"kube-system", "gatekeeper-system"},
		},
		"parameters": map[string]any{"provider": "ratify-provider", "ratifyNamespace": releaseNamespace, "exemptImages": []any{}, "requireRevocationCheck": false},
	}
	if !reflect.DeepEqual(spec, wantSpec) {
		t.Errorf("constraint spec\n%s\nwant\n%s", toYAML(spec), toYAML(wantSpec))
	}
	v := ofKind(objs, verifierKind)[0].obj
	if v.GetNamespace() != releaseNamespace {
		t.Errorf("NamespacedVerifier in namespace %q, want the release namespace %q (the Constraints' ratifyNamespace)", v.GetNamespace(), releaseNamespace)
	}
	for path, want := range map[string]string{"name": "awssigner", "version": "1.0.0", "artifactTypes": "application/vnd.cncf.notary.signature"} {
		if got, _, _ := unstructured.NestedString(v.Object, "spec", path); got != want {
			t.Errorf("Verifier spec.%s = %q, want %q", path, got, want)
		}
	}
	for _, absent := range []string{"type", "source", "address"} {
		if _, found, _ := unstructured.NestedFieldNoCopy(v.Object, "spec", absent); found {
			t.Errorf("Verifier spec.%s is set", absent)
		}
	}
}

// TestSinglePassInstall: the Constraints render whatever the cluster
// serves (so no render without the constraint CRD prunes them), into the
// ConfigMap the post-install/post-upgrade hook Job applies once Gatekeeper
// has ingested the template; install=manifest renders them as release
// objects, also without the capability.
func TestSinglePassInstall(t *testing.T) {
	vals := values(t, "trustedSigningProfiles: ["+prodARN+"]")
	for _, apis := range [][]string{{verifierAPI}, {verifierAPI, constraintAPI}} {
		rel, objs := mustInstall(t, vals, apis...)
		if n := len(ofKind(objs, "AWSSignerVerifiedImages")); n != 1 {
			t.Errorf("APIs %v: %d Constraints, want 1 whatever the cluster serves", apis, n)
		}
		if strings.Contains(rel.Manifest, "kind: AWSSignerVerifiedImages\nmetadata") {
			t.Errorf("APIs %v: a Constraint is a release object (a plain install would fail before Gatekeeper ingests the template)", apis)
		}
		for _, bad := range []string{"<this chart>", "NOT CREATED", "helm upgrade ratify-aws-signer"} {
			if strings.Contains(rel.Info.Notes, bad) {
				t.Errorf("NOTES contain %q:\n%s", bad, rel.Info.Notes)
			}
		}
		if !strings.Contains(rel.Info.Notes, "aws-signer-verified-images (deny): every namespace but kube-system, gatekeeper-system") {
			t.Errorf("NOTES do not list the Constraint:\n%s", rel.Info.Notes)
		}
		// The hook Job: waits for the template, then applies and prunes.
		var job *unstructured.Unstructured
		for _, h := range rel.Hooks {
			if h.Kind == "Job" {
				job = mustObject(t, h.Manifest)
				if !strings.Contains(h.Manifest, "post-install,post-upgrade") {
					t.Errorf("Job hook events: %v", h.Events)
				}
			}
		}
		if job == nil {
			t.Fatalf("APIs %v: no hook Job", apis)
		}
		init, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "initContainers")
		ctrs, _, _ := unstructured.NestedSlice(job.Object, "spec", "template", "spec", "containers")
		if len(init) != 1 || len(ctrs) != 1 {
			t.Fatalf("Job containers: %d init, %d", len(init), len(ctrs))
		}
		wait := strings.Join(stringSlice(init[0].(map[string]any)["args"]), " ")
		apply := strings.Join(stringSlice(ctrs[0].(map[string]any)["args"]), " ")
		for _, want := range []string{"wait", "--for=jsonpath={.status.created}=true", "constrainttemplate/awssignerverifiedimages", "--timeout=120s"} {
			if !strings.Contains(wait, want) {
				t.Errorf("wait container args %q lack %q", wait, want)
			}
		}
		for _, want := range []string{"apply", "--prune", "--selector=app.kubernetes.io/instance=ratify-aws-signer,ratify-aws-signer/part=constraint", "--filename=/constraints/constraints.yaml"} {
			if !strings.Contains(apply, want) {
				t.Errorf("apply container args %q lack %q", apply, want)
			}
		}
		for _, c := range ofKind(objs, "AWSSignerVerifiedImages") {
			if c.obj.GetLabels()["ratify-aws-signer/part"] != "constraint" || c.obj.GetLabels()["app.kubernetes.io/instance"] != "ratify-aws-signer" {
				t.Errorf("Constraint %s lacks the labels the Job prunes by: %v", c.obj.GetName(), c.obj.GetLabels())
			}
		}
	}

	// install=manifest: release objects, still without the capability.
	vals = values(t, "trustedSigningProfiles: ["+prodARN+"]\npolicies: {constraints: {install: manifest}}")
	rel, objs := mustInstall(t, vals, verifierAPI)
	if n := len(ofKind(objs, "AWSSignerVerifiedImages")); n != 1 || len(rel.Hooks) != 0 {
		t.Errorf("install=manifest: %d Constraints, %d hooks; want 1 and none", n, len(rel.Hooks))
	}
	if a := ofKind(objs, "AWSSignerVerifiedImages")[0].obj.GetAnnotations()["argocd.argoproj.io/sync-options"]; a != "SkipDryRunOnMissingResource=true" {
		t.Errorf("install=manifest: Constraint sync-options %q", a)
	}

	// Constraints off: none, no Job.
	vals = values(t, "trustedSigningProfiles: ["+prodARN+"]\npolicies: {constraints: {enabled: false}}")
	rel, objs = mustInstall(t, vals, verifierAPI, constraintAPI)
	if n := len(ofKind(objs, "AWSSignerVerifiedImages")); n != 0 || len(rel.Hooks) != 0 {
		t.Errorf("constraints disabled: %d Constraints, %d hooks", n, len(rel.Hooks))
	}
	// Templates off (installed some other way): the Constraint still renders.
	vals = values(t, "trustedSigningProfiles: ["+prodARN+"]\npolicies: {templates: {enabled: false}}")
	_, objs = mustInstall(t, vals, verifierAPI)
	if len(ofKind(objs, "ConstraintTemplate")) != 0 || len(ofKind(objs, "AWSSignerVerifiedImages")) != 1 {
		t.Errorf("templates disabled: %v", objs)
	}
}

func mustObject(t *testing.T, text string) *unstructured.Unstructured {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(text), &obj); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func stringSlice(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestCommonMetadataEverywhere: commonLabels and commonAnnotations reach
// every object the release creates, the ConstraintTemplate, the hooks and
// the Constraints the Job applies included; global is accepted.
func TestCommonMetadataEverywhere(t *testing.T) {
	vals := values(t, "trustedSigningProfiles: ["+prodARN+"]\nglobal: {imageRegistry: example.com}\ncommonLabels: {team: platform}\ncommonAnnotations: {argocd.argoproj.io/sync-wave: \"5\"}\npolicies: {constraints: {namespaceRestrictions: [{namespaces: [payments], allowedSigningProfiles: ["+prodARN+"]}]}}")
	_, objs := mustInstall(t, vals, verifierAPI)
	if len(objs) < 9 {
		t.Fatalf("only %d objects", len(objs))
	}
	for _, r := range objs {
		if r.obj.GetLabels()["team"] != "platform" || r.obj.GetLabels()["app.kubernetes.io/instance"] != "ratify-aws-signer" {
			t.Errorf("%v: labels %v", r, r.obj.GetLabels())
		}
		if r.obj.GetAnnotations()["argocd.argoproj.io/sync-wave"] != "5" {
			t.Errorf("%v: annotations %v", r, r.obj.GetAnnotations())
		}
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	// The template keeps its own annotations next to the common ones.
	ct := ofKind(objs, "ConstraintTemplate")[0].obj
	if ct.GetAnnotations()["metadata.gatekeeper.sh/title"] != "AWS Signer Verified Images" {
		t.Errorf("ConstraintTemplate annotations %v", ct.GetAnnotations())
	}
}

// TestUnsafeCombinationsRefused: values that would make the policy
// meaningless are refused with what to change.
func TestUnsafeCombinationsRefused(t *testing.T) {
	base := "trustedSigningProfiles: [" + prodARN + "]\n"
	for _, tc := range []struct{ vals, want string }{
		{`policies: {constraints: {exemptImages: ["*"]}}`, `policies.constraints.exemptImages: "*" exempts every image`},
		{`policies: {constraints: {namespaceRestrictions: [{namespaces: [a], allowedSigningProfiles: [` + prodARN + `], exemptImages: ["*"]}]}}`, `namespaceRestrictions[0].exemptImages: "*" exempts every image`},
		{`policies: {constraints: {exemptImages: ["registry.example.com/team/app:v1"]}}`, `names a tag; Ratify's mutation`},
		{"revocation: {enabled: false}\npolicies: {constraints: {requireRevocationCheck: true}}", "requireRevocationCheck is true but revocation.enabled is false"},
		{"verificationLevel: audit", "enforcementAction is deny but verificationLevel is audit"},
		{"verificationLevel: skip", "enforcementAction is deny but verificationLevel is skip"},
	} {
		_, err := install(t, values(t, base+tc.vals), verifierAPI)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.vals, err, tc.want)
		}
	}
	// What stays allowed: repositories, digests, prefixes, registry ports;
	// audit with warn; the explicit override.
	for _, ok := range []string{
		`policies: {constraints: {exemptImages: ["registry.example.com/team/app", "localhost:5000/app", "registry.example.com/base/*", "registry.example.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}}`,
		"verificationLevel: audit\npolicies: {constraints: {enforcementAction: warn}}",
		"verificationLevel: audit\npolicies: {constraints: {allowWeakLevelWithDeny: true}}",
	} {
		if _, err := install(t, values(t, base+ok), verifierAPI); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestClusterVerifierKind: verifier.kind=Verifier renders the cluster-wide
// Verifier and unscoped Constraints (the coexistence guard reads the
// cluster; offline it finds nothing, see the end-to-end test).
func TestClusterVerifierKind(t *testing.T) {
	vals := values(t, "trustedSigningProfiles: ["+prodARN+"]\nverifier: {kind: Verifier}")
	if _, err := install(t, vals, verifierAPI); err == nil || !strings.Contains(err.Error(), "does not serve "+clusterVerifierAPI) {
		t.Errorf("kind Verifier without its API: %v", err)
	}
	_, objs := mustInstall(t, vals, clusterVerifierAPI)
	v := ofKind(objs, "Verifier")
	if len(v) != 1 || v[0].obj.GetNamespace() != "" {
		t.Fatalf("kind Verifier: %v", objs)
	}
	params, _, _ := unstructured.NestedMap(ofKind(objs, "AWSSignerVerifiedImages")[0].obj.Object, "spec", "parameters")
	if _, ok := params["ratifyNamespace"]; ok {
		t.Errorf("cluster-wide Verifier with a scoped Constraint: %v", params)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

// TestVerifierNeedsRatify: without Ratify's CRDs the install is refused
// with what to do, unless the check is skipped for offline rendering.
func TestVerifierNeedsRatify(t *testing.T) {
	vals := values(t, "trustedSigningProfiles: ["+prodARN+"]")
	_, err := install(t, vals)
	if err == nil || !strings.Contains(err.Error(), "Ratify is not installed in this cluster: it does not serve config.ratify.deislabs.io/v1beta1/NamespacedVerifier") ||
		!strings.Contains(err.Error(), "verifier.skipCRDCheck=true") {
		t.Fatalf("install without Ratify: got %v", err)
	}
	vals["verifier"] = map[string]any{"skipCRDCheck": true}
	_, objs := mustInstall(t, vals)
	if len(ofKind(objs, verifierKind)) != 1 {
		t.Error("skipCRDCheck: no Verifier")
	}
	// No Verifier wanted: no Ratify needed.
	_, objs = mustInstall(t, values(t, "verifier: {enabled: false}"))
	if len(ofKind(objs, verifierKind)) != 0 || len(ofKind(objs, "ConstraintTemplate")) != 1 {
		t.Errorf("verifier disabled: %v", objs)
	}
}

// TestSimpleFormTrustPolicy: the document the chart writes from the simple
// form, case by case.
func TestSimpleFormTrustPolicy(t *testing.T) {
	const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	cases := []struct {
		name   string
		values string
		want   string // trustPolicyDoc, YAML
	}{
		{
			name:   "one profile",
			values: "trustedSigningProfiles: [" + prodARN + "]",
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: ["*"]
  signatureVerification: {level: strict}
  trustStores: ["signingAuthority:aws-signer-ts"]
  trustedIdentities: ["` + prodARN + `"]`,
		},
		{
			name: "GovCloud profile adds the GovCloud root; duplicates removed; scopes; level",
			values: `
trustedSigningProfiles: ["` + prodARN + `", "` + govARN + `", "` + govARN + `/abcdEFGH12"]
verificationLevel: permissive
registryScopes: [111122223333.dkr.ecr.us-west-2.amazonaws.com/app, "localhost:5000/team/web"]`,
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: [111122223333.dkr.ecr.us-west-2.amazonaws.com/app, "localhost:5000/team/web"]
  signatureVerification: {level: permissive}
  trustStores: ["signingAuthority:aws-signer-ts", "signingAuthority:aws-us-gov-signer-ts"]
  trustedIdentities: ["` + prodARN + `", "` + govARN + `", "` + govARN + `/abcdEFGH12"]`,
		},
		{
			name:   "revocation disabled",
			values: "trustedSigningProfiles: [" + prodARN + "]\nverificationLevel: audit\nrevocation: {enabled: false}",
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: ["*"]
  signatureVerification: {level: audit, override: {revocation: skip}}
  trustStores: ["signingAuthority:aws-signer-ts"]
  trustedIdentities: ["` + prodARN + `"]`,
		},
		{
			name:   "level skip: no stores, identities or overrides (Notation refuses them)",
			values: "verificationLevel: skip\nrevocation: {enabled: false}",
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: ["*"]
  signatureVerification: {level: skip}`,
		},
		{
			name:   "extra signingAuthority stores join the policy, others do not",
			values: "trustedSigningProfiles: [" + prodARN + "]\ntrustStores: {signingAuthority: {zeta: [x], alpha: [x]}, tsa: {ts: [x]}}",
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: ["*"]
  signatureVerification: {level: strict}
  trustStores: ["signingAuthority:aws-signer-ts", "signingAuthority:alpha", "signingAuthority:zeta"]
  trustedIdentities: ["` + prodARN + `"]`,
		},
		{
			name:   "a store replacing the embedded root is not listed twice",
			values: "trustedSigningProfiles: [" + prodARN + "]\ntrustStores: {signingAuthority: {aws-signer-ts: [x]}}",
			want: `
version: "1.0"
trustPolicies:
- name: aws-signer
  registryScopes: ["*"]
  signatureVerification: {level: strict}
  trustStores: ["signingAuthority:aws-signer-ts"]
  trustedIdentities: ["` + prodARN + `"]`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, strings.ReplaceAll(c.values, "[x]", "["+jsonString(pem)+"]"))
			vals["policies"] = map[string]any{"constraints": map[string]any{"enabled": false}}
			_, objs := mustInstall(t, vals, verifierAPI)
			got := verifierParams(t, objs)["trustPolicyDoc"]
			var want any
			if err := yaml.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("trustPolicyDoc\n%s\nwant\n%s", toYAML(got), toYAML(want))
			}
		})
	}
}

// TestParametersFromValues: the plugin settings reach spec.parameters, and
// empty ones are left to the plugin's defaults.
func TestParametersFromValues(t *testing.T) {
	_, objs := mustInstall(t, values(t, `
trustedSigningProfiles: [`+prodARN+`]
revocation: {timeout: 1500ms, cacheTTL: 0s, cacheDir: /var/cache/awssigner}
aws: {region: eu-west-1, endpoint: "https://signer.example.com"}`), verifierAPI)
	p := verifierParams(t, objs)
	delete(p, "trustPolicyDoc")
	want := map[string]any{
		"revocation": map[string]any{"timeout": "1500ms", "cacheTTL": "0s", "cacheDir": "/var/cache/awssigner"},
		"aws":        map[string]any{"region": "eu-west-1", "endpoint": "https://signer.example.com"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("parameters\n%s\nwant\n%s", toYAML(p), toYAML(want))
	}

	_, objs = mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]\nrevocation: {timeout: '', cacheTTL: '', cacheDir: ''}"), verifierAPI)
	p = verifierParams(t, objs)
	if _, ok := p["revocation"]; ok {
		t.Errorf("empty revocation settings rendered: %v", p["revocation"])
	}
	if _, ok := p["aws"]; ok {
		t.Errorf("empty aws settings rendered: %v", p["aws"])
	}
}

// TestChartChecks: the mistakes the schema cannot see are refused by the
// templates, each with a message saying what to change.
func TestChartChecks(t *testing.T) {
	doc := `trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: ["` + prodARN + `"]}]}`
	cases := []struct{ name, values, want string }{
		{"both forms", doc + "\ntrustedSigningProfiles: [" + prodARN + "]", "trustPolicyDoc and trustedSigningProfiles are both set"},
		{"level with the full form", doc + "\nverificationLevel: audit", "verificationLevel belongs to the simple form"},
		{"scopes with the full form", doc + "\nregistryScopes: [a.example.com/app]", "registryScopes belongs to the simple form"},
		{"revocation switch with the full form", doc + "\nrevocation: {enabled: false}", "set signatureVerification.override.revocation: skip"},
		{"wildcard scope with others", "trustedSigningProfiles: [" + prodARN + "]\nregistryScopes: ['*', a.example.com/app]", `registryScopes: "*" covers every repository`},
		{"restriction to an untrusted profile", "trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {namespaceRestrictions: [{namespaces: [team], allowedSigningProfiles: [" + teamARN + "]}]}}",
			"namespaceRestrictions[0].allowedSigningProfiles: " + teamARN + " is not in trustedSigningProfiles"},
		{"duplicate constraint names", "trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {namespaceRestrictions: [{namespaces: [team], allowedSigningProfiles: [" + prodARN + "]}, {namespaces: [team, other], allowedSigningProfiles: [" + prodARN + "]}]}}",
			`namespaceRestrictions[1]: Constraint name "aws-signer-verified-images-team" is already used`},
		{"restriction named like the cluster-wide constraint", "trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {namespaceRestrictions: [{name: aws-signer-verified-images, namespaces: [team], allowedSigningProfiles: [" + prodARN + "]}]}}",
			`Constraint name "aws-signer-verified-images" is already used`},
		{"wildcard namespace without a name", "trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {namespaceRestrictions: [{namespaces: ['team-*'], allowedSigningProfiles: [" + prodARN + "]}]}}",
			`namespaceRestrictions[0]: give it a name`},
		{"default name too long", "trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {namespaceRestrictions: [{namespaces: [" + strings.Repeat("n", 60) + "], allowedSigningProfiles: [" + prodARN + "]}]}}",
			`namespaceRestrictions[0]: give it a name (at most 63 characters)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := install(t, values(t, c.values), verifierAPI, constraintAPI)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant an error containing %q", err, c.want)
			}
		})
	}

	// A restriction to one version's profile is covered by the version.
	_, objs := mustInstall(t, values(t, "trustedSigningProfiles: ["+teamARN+"/abcdEFGH12]\npolicies: {constraints: {namespaceRestrictions: [{namespaces: [team], allowedSigningProfiles: ["+strings.ToLower(teamARN)+"]}]}}"), verifierAPI, constraintAPI)
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

// TestNamespaceRestrictions: each entry is a Constraint for its namespaces,
// inheriting the shared settings unless it overrides them.
func TestNamespaceRestrictions(t *testing.T) {
	_, objs := mustInstall(t, readValues(t, filepath.Join(examplesDir, "multi-team.yaml")), verifierAPI, constraintAPI)
	byName := map[string]*unstructured.Unstructured{}
	for _, r := range ofKind(objs, "AWSSignerVerifiedImages") {
		byName[r.obj.GetName()] = r.obj
	}
	if len(byName) != 3 {
		t.Fatalf("constraints %v, want 3", byName)
	}
	check := func(name string, path []string, want any) {
		t.Helper()
		c, ok := byName[name]
		if !ok {
			t.Errorf("no Constraint %s", name)
			return
		}
		got, _, _ := unstructured.NestedFieldCopy(c.Object, path...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s = %v, want %v", name, strings.Join(path, "."), got, want)
		}
	}
	pay := "aws-signer-verified-images-payments"
	check(pay, []string{"spec", "match", "namespaces"}, []any{"payments", "payments-batch"})
	check(pay, []string{"spec", "match", "excludedNamespaces"}, nil)
	check(pay, []string{"spec", "enforcementAction"}, "deny")
	check(pay, []string{"spec", "parameters", "allowedSigningProfiles"}, []any{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Payments"})
	check(pay, []string{"spec", "parameters", "exemptImages"}, []any{"111122223333.dkr.ecr.us-west-2.amazonaws.com/platform/pause"})
	check(pay, []string{"spec", "parameters", "requireRevocationCheck"}, true)
	check("shop-team-profile", []string{"spec", "match", "namespaces"}, []any{"shop-*"})
	check("shop-team-profile", []string{"spec", "enforcementAction"}, "warn")
	check("aws-signer-verified-images", []string{"spec", "match", "excludedNamespaces"}, []any{"kube-system", "gatekeeper-system", "kube-*"})
	check("aws-signer-verified-images", []string{"spec", "parameters", "allowedSigningProfiles"}, nil)

	// Per-entry overrides, including an empty exemption list and false.
	_, objs = mustInstall(t, values(t, `
trustedSigningProfiles: [`+prodARN+`]
policies:
  constraints:
    clusterWide: false
    exemptImages: ["registry.example.com/base/*"]
    requireRevocationCheck: true
    namespaceRestrictions:
      - {namespaces: [a], allowedSigningProfiles: [`+prodARN+`], exemptImages: [], requireRevocationCheck: false}`), verifierAPI, constraintAPI)
	cs := ofKind(objs, "AWSSignerVerifiedImages")
	if len(cs) != 1 || cs[0].obj.GetName() != "aws-signer-verified-images-a" {
		t.Fatalf("constraints %v", cs)
	}
	params, _, _ := unstructured.NestedMap(cs[0].obj.Object, "spec", "parameters")
	if !reflect.DeepEqual(params["exemptImages"], []any{}) || params["requireRevocationCheck"] != false {
		t.Errorf("overrides not applied: %v", params)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

// TestConstraintTemplateIsThePolicy: the chart installs exactly the object
// `kubectl apply -f policies/<name>/template.yaml` installs, byte for byte.
func TestConstraintTemplateIsThePolicy(t *testing.T) {
	rel, _ := mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]"), verifierAPI)
	manifests := map[string]string{}
	for _, m := range splitBySource(rel.Manifest) {
		manifests[m.source] = m.text
	}
	policies, _ := filepath.Glob(filepath.Join(policiesDir, "*", "template.yaml"))
	if len(policies) == 0 {
		t.Fatal("no policies/*/template.yaml")
	}
	for _, p := range policies {
		name := filepath.Base(filepath.Dir(p))
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := manifests["ratify-aws-signer/templates/constrainttemplate-"+name+".yaml"]
		if !ok {
			t.Errorf("the chart does not render policies/%s (run `make chart-policies`)", name)
			continue
		}
		// The same object but for the chart's labels in its metadata.
		var gotObj, wantObj map[string]any
		if err := yaml.Unmarshal([]byte(got), &gotObj); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(src, &wantObj); err != nil {
			t.Fatal(err)
		}
		labels, _, _ := unstructured.NestedStringMap(gotObj, "metadata", "labels")
		if labels["app.kubernetes.io/instance"] != "ratify-aws-signer" {
			t.Errorf("the chart's ConstraintTemplate lacks the chart's labels: %v", labels)
		}
		unstructured.RemoveNestedField(gotObj, "metadata", "labels")
		// The chart's copy ends where the template guard ends: the Rego's
		// final newline is not part of it.
		for _, o := range []map[string]any{gotObj, wantObj} {
			targets, _, _ := unstructured.NestedSlice(o, "spec", "targets")
			for _, tg := range targets {
				m := tg.(map[string]any)
				m["rego"] = strings.TrimSpace(m["rego"].(string))
			}
			unstructured.SetNestedSlice(o, targets, "spec", "targets")
		}
		if !reflect.DeepEqual(gotObj, wantObj) {
			t.Errorf("the chart renders policies/%s/template.yaml differently (run `make chart-policies`)", name)
		}
	}

	_, objs := mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]\npolicies: {templates: {enabled: false}}"), verifierAPI)
	if n := len(ofKind(objs, "ConstraintTemplate")); n != 0 {
		t.Errorf("templates disabled: %d ConstraintTemplates", n)
	}
}

// TestDynamicPluginSource: plugin.source becomes the Verifier's source, and
// NOTES name the feature flag Ratify needs.
func TestDynamicPluginSource(t *testing.T) {
	rel, objs := mustInstall(t, readValues(t, filepath.Join(examplesDir, "dynamic-plugin.yaml")), verifierAPI)
	v := ofKind(objs, verifierKind)[0].obj
	src, _, _ := unstructured.NestedMap(v.Object, "spec", "source")
	want := map[string]any{
		"artifact":     "111122223333.dkr.ecr.us-west-2.amazonaws.com/ratify-plugins/awssigner@sha256:0d1c8d2f6ae1b8c1b7e5a8f4d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978877fe",
		"authProvider": map[string]any{"name": "awsEcrBasic"},
	}
	if !reflect.DeepEqual(src, want) {
		t.Errorf("spec.source = %v, want %v", src, want)
	}
	if !strings.Contains(rel.Info.Notes, "featureFlags.RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=true") {
		t.Errorf("NOTES do not name the feature flag:\n%s", rel.Info.Notes)
	}

	// An address goes to spec.address; no source without an artifact.
	_, objs = mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]\nverifier: {address: /opt/ratify-plugins}\nplugin: {source: {authProvider: {name: awsEcrBasic}}}"), verifierAPI)
	v = ofKind(objs, verifierKind)[0].obj
	if a, _, _ := unstructured.NestedString(v.Object, "spec", "address"); a != "/opt/ratify-plugins" {
		t.Errorf("spec.address = %q", a)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(v.Object, "spec", "source"); found {
		t.Error("spec.source rendered without an artifact")
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

type sourced struct{ source, text string }

// splitBySource splits a manifest into its documents with their templates.
func splitBySource(manifest string) []sourced {
	var out []sourced
	for _, doc := range strings.Split(manifest, "\n---\n") {
		doc = strings.TrimPrefix(doc, "---\n")
		first, rest, _ := strings.Cut(doc, "\n")
		if s, ok := strings.CutPrefix(first, "# Source: "); ok {
			out = append(out, sourced{source: s, text: rest})
		}
	}
	return out
}

func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestFullFormCheckedAtInstall: the rules Notation and the plugin apply to
// a full trustPolicyDoc refuse the install, with the statement and what to
// change, instead of every admission later (config_invalid).
func TestFullFormCheckedAtInstall(t *testing.T) {
	stmt := func(name, scopes, rest string) string {
		return `{name: ` + name + `, registryScopes: ` + scopes + `, ` + rest + `}`
	}
	strict := `signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: [` + prodARN + `]`
	doc := func(stmts ...string) string {
		return `trustPolicyDoc: {version: "1.0", trustPolicies: [` + strings.Join(stmts, ", ") + `]}`
	}
	for _, tc := range []struct{ vals, want string }{
		{doc(stmt("a", `["*"]`, strict), stmt("a", `["r.example.com/x"]`, strict)), `the statement name "a" is used twice`},
		{doc(stmt("a", `["*", "r.example.com/x"]`, strict)), `registryScopes "*" covers every repository`},
		{doc(stmt("a", `["*"]`, strict), stmt("b", `["*"]`, strict)), `registry scope "*" is already in statement "a"`},
		{doc(stmt("a", `["r.example.com/x"]`, strict), stmt("b", `["r.example.com/x"]`, strict)), `registry scope "r.example.com/x" is already in statement "a"`},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: skip}, trustStores: ["signingAuthority:aws-signer-ts"]`)), "level skip verifies nothing"},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: strict}, trustedIdentities: [`+prodARN+`]`)), "level strict needs trustStores"},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: permissive}, trustStores: ["signingAuthority:aws-signer-ts"]`)), "level permissive needs trustedIdentities"},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: strict}, trustStores: ["signingAuthority:mine"], trustedIdentities: [`+prodARN+`]`)), `trust store "signingAuthority:mine" is neither embedded`},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: ["*"]`)), `trustedIdentities "*" would trust every AWS Signer profile`},
		{doc(stmt("a", `["*"]`, `signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: ["arn:aws:iam::111122223333:role/x"]`)), `is not a signing-profile ARN`},
	} {
		_, err := install(t, values(t, tc.vals+"\npolicies: {constraints: {enabled: false}}"), verifierAPI)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.vals, err, tc.want)
		}
	}
	// Allowed: a skip statement next to a strict one, an extra store that
	// is defined, x509.subject identities (which the plugin ignores).
	ok := doc(stmt("a", `["r.example.com/x"]`, `signatureVerification: {level: skip}`),
		stmt("b", `["*"]`, `signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts", "signingAuthority:mine"], trustedIdentities: [`+prodARN+`, "x509.subject: C=US, ST=WA, O=Example"]`)) +
		"\ntrustStores: {signingAuthority: {mine: [x]}}"
	ex := readValues(t, filepath.Join(examplesDir, "trust-policy-doc.yaml"))
	root := ex["trustStores"].(map[string]any)["signingAuthority"].(map[string]any)["example-root"].([]any)[0].(string)
	_, objs := mustInstall(t, values(t, strings.ReplaceAll(ok, "[x]", "["+jsonString(root)+"]")), verifierAPI)
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}
