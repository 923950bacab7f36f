package kyverno

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// exampleHost is the registry the examples name; the tests serve it from
// the local registry.
const exampleHost = "registry.example.com"

// TestExamples runs every policies/kyverno/examples object through the
// policy, in the examples' namespaces: example_allowed_* are admitted with
// every image pinned to a digest, example_disallowed_* denied naming the
// image.
func TestExamples(t *testing.T) {
	dir := filepath.Join(env.root, filepath.Dir(PolicyFile), "examples")
	var namespaces []*corev1.Namespace
	b, err := os.ReadFile(filepath.Join(dir, "namespaces.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var ns corev1.Namespace
		if err := yaml.UnmarshalStrict(doc, &ns); err != nil {
			t.Fatalf("namespaces.yaml: %v", err)
		}
		namespaces = append(namespaces, &ns)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	adm, err := NewAdmission(ctx, env.policy, namespaces...)
	if err != nil {
		t.Fatal(err)
	}
	allowed, _ := filepath.Glob(filepath.Join(dir, "example_allowed_*.yaml"))
	disallowed, _ := filepath.Glob(filepath.Join(dir, "example_disallowed_*.yaml"))
	if len(allowed) < 2 || len(disallowed) < 2 {
		t.Fatalf("want examples of both kinds, found %v and %v", allowed, disallowed)
	}
	host := env.stack.Registry.Host
	for _, p := range append(allowed, disallowed...) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			obj := loadExample(t, p)
			v, err := adm.Review(context.Background(), admissionv1.Create, obj, nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(filepath.Base(p), "example_allowed_") {
				if !v.Allowed {
					t.Fatalf("denied in the %s: %s", v.Stage, v.Message)
				}
				for _, img := range Images(v.Object) {
					if !strings.Contains(img, "@sha256:") {
						t.Errorf("not pinned: %s", img)
					}
				}
				record("examples/"+filepath.Base(p), v)
				return
			}
			if v.Allowed {
				t.Fatalf("admitted: %v", Images(v.Object))
			}
			if !strings.Contains(v.Message, host+"/team/app:") {
				t.Errorf("the denial does not name the image: %s", v.Message)
			}
			record("examples/"+filepath.Base(p), v)
		})
	}
}

func loadExample(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(exampleHost+"/"), []byte(env.stack.Registry.Host+"/"))
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}
