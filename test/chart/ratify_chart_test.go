package chart

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// renderRatify renders Ratify's own chart, from the pinned Ratify module,
// with a values file, hooks included.
func renderRatify(t *testing.T, valuesFile string) (chartValues map[string]any, objs []rendered) {
	t.Helper()
	dir, err := moduleDir(ratifyModule)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(filepath.Join(dir, "charts", "ratify"))
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(&action.Configuration{Log: t.Logf})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = "ratify"
	inst.Namespace = releaseNamespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
	rel, err := inst.RunWithContext(context.Background(), ch, readValues(t, valuesFile))
	if err != nil {
		t.Fatalf("Ratify's chart with %s: %v", valuesFile, err)
	}
	all := &release.Release{Manifest: rel.Manifest}
	for _, h := range rel.Hooks {
		all.Manifest += "\n---\n# Source: " + h.Path + "\n" + h.Manifest
	}
	return ch.Values, objects(t, all)
}

func find(t *testing.T, objs []rendered, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, r := range objs {
		if r.obj.GetKind() == kind && r.obj.GetName() == name {
			return r.obj
		}
	}
	t.Fatalf("Ratify's chart renders no %s %s", kind, name)
	return nil
}

// TestRatifyValuesDocumented renders Ratify's chart with the values files
// docs/kubernetes.md gives, and checks what this project relies on: the
// image (and the CRD image its tag implies), the dynamic plugins flag, the
// IRSA service account the IAM trust policy names, ECR auth, the writable
// cache volume the revocation cache defaults to, and the Provider the
// Constraints call.
func TestRatifyValuesDocumented(t *testing.T) {
	irsa, err := os.ReadFile(filepath.Join(repoRoot, "docs", "iam", "irsa-trust-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	chartDefaults := readValues(t, filepath.Join(chartDir, "values.yaml"))
	// The Provider this chart's Constraints call in mode ratify, as rendered.
	_, ours := mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]"), verifierAPI)
	constraintProvider, _, _ := unstructured.NestedString(ofKind(ours, "AWSSignerVerifiedImages")[0].obj.Object, "spec", "parameters", "provider")
	cacheDir := chartDefaults["revocation"].(map[string]any)["cacheDir"].(string)

	for _, c := range []struct {
		file    string
		image   string // "" = Ratify's own
		dynamic bool
	}{
		{"plugin-image.yaml", "111122223333.dkr.ecr.us-west-2.amazonaws.com/ratify-awssigner:v1.4.6-awssigner-0.1.0", false},
		{"dynamic-plugin.yaml", "", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			ratifyDefaults, objs := renderRatify(t, filepath.Join(repoRoot, "docs", "ratify-values", c.file))
			img := ratifyDefaults["image"].(map[string]any)
			ratifyImage := img["repository"].(string) + ":" + img["tag"].(string)

			dep := find(t, objs, "Deployment", "ratify")
			containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			ctr := containers[0].(map[string]any)
			want := c.image
			if want == "" {
				want = ratifyImage
			}
			if ctr["image"] != want {
				t.Errorf("Ratify runs %v, want %s", ctr["image"], want)
			}
			env := map[string]any{}
			for _, e := range ctr["env"].([]any) {
				e := e.(map[string]any)
				env[e["name"].(string)] = e["value"]
			}
			if got := env["RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS"]; (got == "1") != c.dynamic {
				t.Errorf("RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS=%v, dynamic plugins wanted: %v", got, c.dynamic)
			}

			// A CRD image Ratify's chart pulls must exist: Ratify's own tag,
			// whatever the tag of the image with the plugin (decoupled).
			crdRepo := img["crdRepository"].(string) + ":"
			for image := range imagesOf(objs) {
				if strings.HasPrefix(image, crdRepo) && image != crdRepo+img["tag"].(string) {
					t.Errorf("Ratify's CRD hook pulls %s, which Ratify does not publish (its CRD image is tagged %s)", image, img["tag"])
				}
			}

			// IRSA: the service account the trust policy names, annotated.
			if sa, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName"); sa != "ratify-admin" ||
				!strings.Contains(string(irsa), "system:serviceaccount:"+releaseNamespace+":"+sa) {
				t.Errorf("Ratify's service account %q is not the one docs/iam/irsa-trust-policy.json trusts", sa)
			}
			sa := find(t, objs, "ServiceAccount", "ratify-admin")
			if a := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]; !strings.HasPrefix(a, "arn:aws:iam::") {
				t.Errorf("ratify-admin role-arn annotation %q", a)
			}

			// ECR auth for images, signatures and the plugin download.
			store := find(t, objs, "Store", "store-oras")
			if name, _, _ := unstructured.NestedString(store.Object, "spec", "parameters", "authProvider", "name"); name != "awsEcrBasic" {
				t.Errorf("store-oras auth provider %q, want awsEcrBasic", name)
			}

			// The revocation cache's default directory is on Ratify's writable volume.
			mounted := false
			for _, m := range ctr["volumeMounts"].([]any) {
				m := m.(map[string]any)
				if p := m["mountPath"].(string); strings.HasPrefix(cacheDir, strings.TrimSuffix(p, "/")+"/") && m["readOnly"] != true {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("no writable volume of Ratify's pod holds revocation.cacheDir %s", cacheDir)
			}

			// The Provider the Constraints call exists; no other verifier
			// runs on Notation signatures.
			find(t, objs, "Provider", constraintProvider)
			for _, r := range ofKind(objs, "Verifier") {
				at, _, _ := unstructured.NestedString(r.obj.Object, "spec", "artifactTypes")
				if strings.Contains(at, "application/vnd.cncf.notary.signature") {
					t.Errorf("Ratify's chart still renders %s for Notation signatures", r.obj.GetName())
				}
			}
		})
	}
}

// imagesOf collects every "image" value of the objects.
func imagesOf(objs []rendered) map[string]bool {
	images := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch n := v.(type) {
		case map[string]any:
			for k, c := range n {
				if s, ok := c.(string); ok && k == "image" {
					images[s] = true
				}
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	for _, r := range objs {
		walk(r.obj.Object)
	}
	return images
}
