package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// root is the policies directory as seen from this package's directory,
// where `go test` runs.
const root = ".."

// TestTemplatesUpToDate is the drift check: every committed template.yaml
// must be exactly what the generator produces from template.base.yaml and
// src.rego.
func TestTemplatesUpToDate(t *testing.T) {
	out, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Stale(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range stale {
		t.Errorf("%s is out of date with its template.base.yaml and src.rego: %s", path, Hint)
	}
}

func TestGeneratedTemplateCarriesTheRego(t *testing.T) {
	out, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for path, rendered := range out {
		if !strings.HasPrefix(string(rendered), Header) {
			t.Errorf("%s: does not start with the generated-file header", path)
		}
		src, err := os.ReadFile(filepath.Join(filepath.Dir(path), srcFile))
		if err != nil {
			t.Fatal(err)
		}
		var tmpl struct {
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Targets []struct {
					Target string `json:"target"`
					Rego   string `json:"rego"`
				} `json:"targets"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(rendered, &tmpl); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if want := strings.ReplaceAll(filepath.Base(filepath.Dir(path)), "-", ""); tmpl.Metadata.Name != want {
			t.Errorf("%s: metadata.name %q does not match its directory", path, tmpl.Metadata.Name)
		}
		for _, a := range []string{"metadata.gatekeeper.sh/title", "metadata.gatekeeper.sh/version", "description"} {
			if tmpl.Metadata.Annotations[a] == "" {
				t.Errorf("%s: annotation %s is missing", path, a)
			}
		}
		if len(tmpl.Spec.Targets) != 1 || tmpl.Spec.Targets[0].Target != "admission.k8s.gatekeeper.sh" {
			t.Fatalf("%s: targets %+v", path, tmpl.Spec.Targets)
		}
		if tmpl.Spec.Targets[0].Rego != string(src) {
			t.Errorf("%s: spec.targets[0].rego differs from src.rego", path)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for path := range a {
		if string(a[path]) != string(b[path]) {
			t.Errorf("%s: two runs differ", path)
		}
	}
}

const testBase = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: demo
spec:
  crd:
    spec:
      names:
        kind: Demo
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: ""
# trailing comment kept
`

func TestRenderRoundTripsAwkwardSources(t *testing.T) {
	for name, src := range map[string]string{
		"one trailing newline": "package demo\n\nviolation[{\"msg\": m}] {\n\tm := \"x: y # not a comment\"\n}\n",
		"no trailing newline":  "package demo\n\tx := 1",
		"several newlines":     "package demo\n\n\n",
		"leading space":        "  package demo\n",
		"blank lines inside":   "package demo\n\n\n\nx := \"|\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, err := Render([]byte(testBase), []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(string(out), "# trailing comment kept\n") {
				t.Errorf("lost what follows the rego line:\n%s", out)
			}
		})
	}
}

func TestRenderRejectsBadBases(t *testing.T) {
	for name, base := range map[string]string{
		"no placeholder":  strings.Replace(testBase, `rego: ""`, `rego: "package x"`, 1),
		"two targets":     testBase + "    - target: other\n      rego: \"\"\n",
		"v1beta1":         strings.Replace(testBase, "templates.gatekeeper.sh/v1\n", "templates.gatekeeper.sh/v1beta1\n", 1),
		"name is no kind": strings.Replace(testBase, "name: demo", "name: other", 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Render([]byte(base), []byte("package demo\n")); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestAddExternalData(t *testing.T) {
	in := `{"builtins":[{"name":"abs"},{"name":"external_data","decl":{}}],"features":["rego_v1"]}`
	out, err := AddExternalData([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var caps struct {
		Builtins []struct {
			Name string          `json:"name"`
			Decl json.RawMessage `json:"decl"`
		} `json:"builtins"`
		Features []string `json:"features"`
	}
	if err := json.Unmarshal(out, &caps); err != nil {
		t.Fatal(err)
	}
	if len(caps.Builtins) != 2 || caps.Builtins[0].Name != "abs" || caps.Builtins[1].Name != "external_data" ||
		!strings.Contains(string(caps.Builtins[1].Decl), `"result"`) || len(caps.Features) != 1 {
		t.Errorf("got %s", out)
	}
}

// TestCapabilitiesFileDeclaresExternalData guards the committed file the
// opa unit tests need.
func TestCapabilitiesFileDeclaresExternalData(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, capsFile))
	if err != nil {
		t.Fatal(err)
	}
	again, err := AddExternalData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(raw) {
		t.Errorf("%s is not in the form `go run ./policies/gen -capabilities <opa>` writes", capsFile)
	}
}
