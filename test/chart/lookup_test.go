package chart

import (
	"encoding/base64"
	"path"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

// cluster is what Helm's lookup reads during a render: client-go's fake
// dynamic client holding Secrets (the only kind the chart looks up in mode
// provider).
type cluster struct {
	client *dynamicfake.FakeDynamicClient
}

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

func newCluster(objs ...*unstructured.Unstructured) cluster {
	rs := make([]runtime.Object, len(objs))
	for i, o := range objs {
		rs[i] = o
	}
	return cluster{dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{secretsGVR: "SecretList"}, rs...)}
}

// GetClientFor is Helm's engine.ClientProvider.
func (c cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	return c.client.Resource(gv.WithResource(strings.ToLower(kind) + "s")), true, nil
}

// renderAgainst renders the chart as `helm install` (or `helm upgrade`)
// does in a cluster whose objects lookup finds, and returns the objects of
// every template (hooks included).
func renderAgainst(t *testing.T, c cluster, vals map[string]any, upgrade bool, apis ...string) ([]rendered, error) {
	t.Helper()
	ch := loadChart(t)
	merged, err := chartutil.CoalesceValues(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	if err := chartutil.ValidateAgainstSchema(ch, merged); err != nil {
		t.Fatal(err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, apis...)
	rv, err := chartutil.ToRenderValues(ch, merged, chartutil.ReleaseOptions{Name: "ratify-aws-signer", Namespace: releaseNamespace, IsInstall: !upgrade, IsUpgrade: upgrade, Revision: 1}, caps)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.RenderWithClientProvider(ch, rv, c)
	if err != nil {
		return nil, err
	}
	var out []rendered
	for name, text := range files {
		if path.Ext(name) != ".yaml" {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(text) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(obj) > 0 {
				out = append(out, rendered{source: name, obj: &unstructured.Unstructured{Object: obj}})
			}
		}
	}
	return out, nil
}

func mustRenderAgainst(t *testing.T, c cluster, vals map[string]any, upgrade bool) []rendered {
	t.Helper()
	objs, err := renderAgainst(t, c, vals, upgrade)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// gatekeeperSecret is Gatekeeper's webhook certificate Secret as its
// cert-controller writes it (ca.crt among the keys).
func gatekeeperSecret(namespace string, caPEM []byte) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "gatekeeper-webhook-server-cert", "namespace": namespace},
		"data":     map[string]any{"ca.crt": base64.StdEncoding.EncodeToString(caPEM), "ca.key": "a2V5", "tls.crt": "Y2VydA==", "tls.key": "a2V5"},
	}}
}

// TestGatekeeperCALookup: without provider.gatekeeper.caBundle the chart
// reads Gatekeeper's CA from its Secret: mounted from that Secret when it
// is in the release namespace (rotations reach the pod), copied into a
// ConfigMap otherwise; neither is a refusal saying how to pass it.
func TestGatekeeperCALookup(t *testing.T) {
	gk := gatekeeperPKI(t)
	vals := providerValues(t, nil)

	objs := mustRenderAgainst(t, newCluster(gatekeeperSecret(releaseNamespace, gk.CAPEM)), vals, false)
	if n := len(ofKind(objs, "ConfigMap")); n != 2 { // configuration, constraints
		t.Errorf("%d ConfigMaps: Gatekeeper's CA is copied although its Secret is in the release namespace", n)
	}
	dep := one(t, objs, "Deployment", "ratify-aws-signer")
	vols, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
	var gkVol map[string]any
	for _, v := range vols {
		if v.(map[string]any)["name"] == "gatekeeper-ca" {
			gkVol = v.(map[string]any)
		}
	}
	if s, _, _ := unstructured.NestedString(gkVol, "secret", "secretName"); s != "gatekeeper-webhook-server-cert" {
		t.Errorf("gatekeeper-ca volume %v, want Gatekeeper's Secret", gkVol)
	}
	items, _, _ := unstructured.NestedSlice(gkVol, "secret", "items")
	if len(items) != 1 || items[0].(map[string]any)["key"] != "ca.crt" {
		t.Errorf("the pod mounts %v of Gatekeeper's Secret, want ca.crt only (not its key)", items)
	}

	// Gatekeeper elsewhere: its CA is copied.
	other := providerValues(t, nil, "provider: {gatekeeper: {namespace: opa}}\npolicies: {constraints: {excludedNamespaces: [kube-system, gatekeeper-system, opa]}}")
	objs = mustRenderAgainst(t, newCluster(gatekeeperSecret("opa", gk.CAPEM)), other, false)
	cm := one(t, objs, "ConfigMap", "ratify-aws-signer-gatekeeper-ca")
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "ca.crt"); strings.TrimSpace(got) != strings.TrimSpace(string(gk.CAPEM)) {
		t.Errorf("copied CA\n%s\nwant Gatekeeper's", got)
	}

	// Gatekeeper absent (or elsewhere than told).
	for _, c := range []cluster{newCluster(), newCluster(gatekeeperSecret("opa", gk.CAPEM))} {
		_, err := renderAgainst(t, c, vals, false)
		if err == nil || !strings.Contains(err.Error(), "no ca.crt in Secret gatekeeper-system/gatekeeper-webhook-server-cert") || !strings.Contains(err.Error(), "Install Gatekeeper first") {
			t.Errorf("without Gatekeeper's Secret: %v", err)
		}
	}
}

// TestCertificatesKeptAcrossUpgrades: the chart's CA is made once and read
// back at every upgrade (the Providers' caBundle never changes under
// Gatekeeper); the generated serving certificate is kept until it nears
// its expiry or its names change, then issued again by the same CA.
func TestCertificatesKeptAcrossUpgrades(t *testing.T) {
	gk := gatekeeperPKI(t)
	vals := providerValues(t, gk.CAPEM)
	first := mustRenderAgainst(t, newCluster(), vals, false)
	ca, leaf := one(t, first, "Secret", "ratify-aws-signer-ca"), one(t, first, "Secret", "ratify-aws-signer-tls")
	bundle := func(objs []rendered) string {
		b, _, _ := unstructured.NestedString(one(t, objs, "Provider", "awssigner-verify").Object, "spec", "caBundle")
		return b
	}
	data := func(u *unstructured.Unstructured, key string) string {
		s, _, _ := unstructured.NestedString(u.Object, "data", key)
		return s
	}

	// Upgrade: both kept as they are.
	again := mustRenderAgainst(t, newCluster(ca, leaf), vals, true)
	if data(one(t, again, "Secret", "ratify-aws-signer-ca"), "tls.key") != data(ca, "tls.key") || bundle(again) != bundle(first) {
		t.Error("upgrade: a new CA (the Providers' caBundle changed)")
	}
	if data(one(t, again, "Secret", "ratify-aws-signer-tls"), "tls.crt") != data(leaf, "tls.crt") {
		t.Error("upgrade: a new serving certificate although the kept one is valid for the same names")
	}

	// Near its expiry: issued again, by the same CA.
	near := leaf.DeepCopy()
	ann := near.GetAnnotations()
	ann["ratify-aws-signer/certificate-not-after"] = time.Now().Add(29 * 24 * time.Hour).UTC().Format(time.RFC3339)
	near.SetAnnotations(ann)
	renewed := mustRenderAgainst(t, newCluster(ca, near), vals, true)
	newLeaf := one(t, renewed, "Secret", "ratify-aws-signer-tls")
	if data(newLeaf, "tls.crt") == data(leaf, "tls.crt") {
		t.Error("a serving certificate 29 days from expiry (renewBeforeDays 30) was kept")
	}
	if bundle(renewed) != bundle(first) {
		t.Error("renewal changed the CA")
	}
	caCert := parseCert(t, secretPEM(t, renewed, "ratify-aws-signer-ca", "tls.crt"))
	if err := parseCert(t, secretPEM(t, renewed, "ratify-aws-signer-tls", "tls.crt")).CheckSignatureFrom(caCert); err != nil {
		t.Errorf("renewed certificate not issued by the kept CA: %v", err)
	}
	if a := newLeaf.GetAnnotations()["ratify-aws-signer/certificate-not-after"]; a == ann["ratify-aws-signer/certificate-not-after"] {
		t.Errorf("renewed certificate's not-after annotation not updated: %s", a)
	}

	// New names (provider.url): issued again.
	moved := providerValues(t, gk.CAPEM, "provider: {url: 'https://awssigner.example.com'}")
	objs := mustRenderAgainst(t, newCluster(ca, leaf), moved, true)
	if data(one(t, objs, "Secret", "ratify-aws-signer-tls"), "tls.crt") == data(leaf, "tls.crt") {
		t.Error("the serving certificate was kept although provider.url added a name")
	}
	if names := parseCert(t, secretPEM(t, objs, "ratify-aws-signer-tls", "tls.crt")).DNSNames; !strings.Contains(strings.Join(names, " "), "awssigner.example.com") {
		t.Errorf("serving certificate names %v", names)
	}

	// cert-manager mode keeps the same CA for its Issuer.
	cm := providerValues(t, gk.CAPEM, "provider: {tls: {mode: certManager}}")
	objs = mustRenderAgainst(t, newCluster(ca), cm, true)
	if data(one(t, objs, "Secret", "ratify-aws-signer-ca"), "tls.key") != data(ca, "tls.key") || bundle(objs) != bundle(first) {
		t.Error("certManager mode made a new CA instead of the kept one")
	}
}
