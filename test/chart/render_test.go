package chart

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Paths, from this package's directory (where `go test` runs).
var (
	repoRoot    = filepath.Join("..", "..")
	chartDir    = filepath.Join(repoRoot, "charts", "ratify-aws-signer")
	examplesDir = filepath.Join(chartDir, "examples")
	policiesDir = filepath.Join(repoRoot, "policies")
)

// The APIs the chart's guards look for, and the Verifier kind it renders by
// default.
const (
	verifierAPI        = "config.ratify.deislabs.io/v1beta1/NamespacedVerifier"
	clusterVerifierAPI = "config.ratify.deislabs.io/v1beta1/Verifier"
	constraintAPI      = "constraints.gatekeeper.sh/v1beta1/AWSSignerVerifiedImages"
	verifierKind       = "NamespacedVerifier"
)

// releaseNamespace is where Ratify runs in its documented install.
const releaseNamespace = "gatekeeper-system"

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// install renders the chart as `helm install --dry-run` does against a
// cluster serving apis (besides Kubernetes' own), with the values of vals
// over the chart's defaults. Schema validation and the templates' checks
// run as in a real install.
func install(t *testing.T, vals map[string]any, apis ...string) (*release.Release, error) {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{Log: t.Logf})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = "ratify-aws-signer"
	inst.Namespace = releaseNamespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
	inst.APIVersions = apis
	if vals == nil {
		vals = map[string]any{}
	}
	return inst.RunWithContext(context.Background(), loadChart(t), vals)
}

// mustInstall is install that must succeed; it returns the release and its
// objects.
func mustInstall(t *testing.T, vals map[string]any, apis ...string) (*release.Release, []rendered) {
	t.Helper()
	rel, err := install(t, vals, apis...)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return rel, objects(t, rel)
}

// objects splits a release's manifest into objects, in Helm's install order,
// followed by its hooks (in weight order) and by the Constraints the
// constraints Job applies from its ConfigMap (source "<template> (ConfigMap
// data)"): everything the release puts in the cluster.
func objects(t *testing.T, rel *release.Release) []rendered {
	t.Helper()
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	texts := make([]string, 0, len(keys))
	for _, k := range keys {
		texts = append(texts, manifests[k])
	}
	hooks := append([]*release.Hook(nil), rel.Hooks...)
	sort.SliceStable(hooks, func(i, j int) bool { return hooks[i].Weight < hooks[j].Weight })
	for _, h := range hooks {
		texts = append(texts, "# Source: "+h.Path+"\n"+h.Manifest)
	}
	var out []rendered
	for _, m := range texts {
		source := "?"
		if i := strings.Index(m, "# Source: "); i >= 0 {
			source = strings.TrimSpace(strings.SplitN(m[i+len("# Source: "):], "\n", 2)[0])
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(m), &obj); err != nil {
			t.Fatalf("%s: rendered YAML does not parse: %v\n%s", source, err, m)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		out = append(out, rendered{source: source, obj: u})
		if u.GetKind() == "ConfigMap" && strings.HasSuffix(u.GetName(), "-constraints") {
			data, _, _ := unstructured.NestedString(obj, "data", "constraints.yaml")
			for _, doc := range releaseutil.SplitManifests(data) {
				var c map[string]any
				if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
					t.Fatalf("%s: constraints.yaml does not parse: %v\n%s", source, err, doc)
				}
				if len(c) > 0 {
					out = append(out, rendered{source: source + " (ConfigMap data)", obj: &unstructured.Unstructured{Object: c}})
				}
			}
		}
	}
	return out
}

// ofKind returns the objects of a kind.
func ofKind(objs []rendered, kind string) []rendered {
	var out []rendered
	for _, r := range objs {
		if r.obj.GetKind() == kind {
			out = append(out, r)
		}
	}
	return out
}

// readValues reads a values file as Helm does.
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// exampleFiles lists the documented example values files.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example values in %s (%v)", examplesDir, err)
	}
	return files
}

// values builds a values map from YAML text.
func values(t *testing.T, text string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		v = map[string]any{}
	}
	return v
}

// verifierParams returns the single Verifier's spec.parameters.
func verifierParams(t *testing.T, objs []rendered) map[string]any {
	t.Helper()
	vs := ofKind(objs, verifierKind)
	if len(vs) != 1 {
		t.Fatalf("want 1 Verifier, got %d", len(vs))
	}
	p, found, err := unstructured.NestedMap(vs[0].obj.Object, "spec", "parameters")
	if err != nil || !found {
		t.Fatalf("Verifier without spec.parameters (%v)", err)
	}
	return p
}
