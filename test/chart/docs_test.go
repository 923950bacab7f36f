package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// readmeRows returns the values table of the chart README: key -> default
// cell.
func readmeRows(t *testing.T) (string, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	rows := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([^|]*) \\|")
	_, table, ok := strings.Cut(readme, "| key | default | description |")
	if !ok {
		t.Fatal("README has no values table (| key | default | description |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	return readme, rows
}

// TestReadmeValuesReference: the README's values table documents every
// value of values.yaml with its default, and documents nothing the schema
// does not know.
func TestReadmeValuesReference(t *testing.T) {
	_, rows := readmeRows(t)
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(raw, &defaults); err != nil {
		t.Fatal(err)
	}
	leaves := map[string]any{}
	// Maps passed through to Kubernetes as they are: one row each.
	whole := map[string]bool{"policies.constraints.job.resources": true, "provider.resources": true}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !whole[prefix+k] {
				walk(prefix+k+".", sub)
				continue
			}
			leaves[prefix+k] = v
		}
	}
	walk("", defaults)

	// Defaults written as one code span must be the compact JSON of the
	// value; prose is allowed only where JSON would not fit a table.
	prose := map[string]bool{"policies.constraints.kinds": true}
	for _, key := range sortedKeys(leaves) {
		cell, ok := rows[key]
		if !ok {
			t.Errorf("README values table lacks %s", key)
			continue
		}
		if prose[key] {
			continue
		}
		want, _ := json.Marshal(leaves[key])
		if cell != "`"+string(want)+"`" {
			t.Errorf("README default of %s is %s, values.yaml has `%s`", key, cell, want)
		}
	}

	paths := schemaPaths(t)
	for key := range rows {
		if !paths[key] {
			t.Errorf("README documents %s, which values.schema.json does not define", key)
		}
	}
}

// schemaPaths lists every key path values.schema.json defines ("a.b",
// "a[].b" inside arrays).
func schemaPaths(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["definitions"].(map[string]any)
	resolve := func(n map[string]any) map[string]any {
		for i := 0; i < 10; i++ {
			ref, ok := n["$ref"].(string)
			if !ok {
				return n
			}
			n, _ = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
		return n
	}
	paths := map[string]bool{}
	var walk func(prefix string, n map[string]any)
	walk = func(prefix string, n map[string]any) {
		n = resolve(n)
		props, _ := n["properties"].(map[string]any)
		for k, v := range props {
			p := prefix + k
			paths[p] = true
			if sub, ok := v.(map[string]any); ok {
				sub = resolve(sub)
				walk(p+".", sub)
				if items, ok := sub["items"].(map[string]any); ok {
					walk(p+"[].", items)
				}
			}
		}
	}
	walk("", root)
	return paths
}

// TestReadmeListsExamples: every example values file is in the README, and
// the README names no missing one.
func TestReadmeListsExamples(t *testing.T) {
	readme, _ := readmeRows(t)
	for _, f := range exampleFiles(t) {
		if !strings.Contains(readme, "examples/"+filepath.Base(f)) {
			t.Errorf("README does not mention examples/%s", filepath.Base(f))
		}
	}
	for _, m := range regexp.MustCompile(`examples/([a-z0-9-]+\.yaml)`).FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join(examplesDir, m[1])); err != nil {
			t.Errorf("README mentions examples/%s, which does not exist", m[1])
		}
	}
}

// TestDynamicPluginFlagIsStated: wherever plugin.source is offered, the
// feature flag Ratify needs for it is named.
func TestDynamicPluginFlagIsStated(t *testing.T) {
	for _, f := range []string{
		filepath.Join(chartDir, "README.md"),
		filepath.Join(chartDir, "values.yaml"),
		filepath.Join(chartDir, "templates", "NOTES.txt"),
		filepath.Join(examplesDir, "dynamic-plugin.yaml"),
		filepath.Join(repoRoot, "docs", "kubernetes.md"),
	} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS") {
			t.Errorf("%s offers dynamic plugins without naming RATIFY_EXPERIMENTAL_DYNAMIC_PLUGINS", f)
		}
	}
}

// TestIAMExamples: the IAM documents are valid JSON and the permissions
// policy grants what Ratify and the plugin call.
func TestIAMExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "iam", "*.json"))
	if len(files) < 3 {
		t.Fatalf("IAM examples: %v", files)
	}
	type statement struct {
		Effect    string
		Action    any
		Resource  any
		Principal any
		Condition any
		Sid       string
	}
	var granted []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Version   string
			Statement []statement
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if doc.Version != "2012-10-17" || len(doc.Statement) == 0 {
			t.Errorf("%s: version %q, %d statements", f, doc.Version, len(doc.Statement))
		}
		if filepath.Base(f) != "ratify-awssigner-policy.json" {
			continue
		}
		for _, s := range doc.Statement {
			if s.Effect != "Allow" {
				continue
			}
			switch a := s.Action.(type) {
			case string:
				granted = append(granted, a)
			case []any:
				for _, x := range a {
					granted = append(granted, x.(string))
				}
			}
		}
	}
	sort.Strings(granted)
	for _, want := range []string{"signer:GetRevocationStatus", "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"} {
		if i := sort.SearchStrings(granted, want); i == len(granted) || granted[i] != want {
			t.Errorf("ratify-awssigner-policy.json does not grant %s (grants %v)", want, granted)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
