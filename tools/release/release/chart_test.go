package release

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestChartImageReferences: every image reference of this project's that
// the chart's default values (and the Ratify values the docs give) hold is
// one `make push REGISTRY=ghcr.io/ratify-aws-signer TAG=<chart appVersion>`
// produces. Values walked: any map with a "repository" key (with "tag"
// and/or "digest"), and plugin.source.artifact.
func TestChartImageReferences(t *testing.T) {
	chartDir := filepath.Join(fx.repo, "charts", "ratify-aws-signer")
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	if chart.AppVersion == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	var platforms []string
	for _, p := range Platforms {
		platforms = append(platforms, p.String())
	}
	refs := RefsFor(DefaultRegistry, chart.AppVersion, platforms)
	produced := map[string]bool{refs.Image: true, refs.FIPS: true, refs.Ratify: true}
	for _, r := range refs.Plugin {
		produced[r] = true
	}
	ours := map[string]bool{RepoAwssigner: true, RepoRatify: true, RepoPlugin: true}

	checked := 0
	check := func(where, repository, tag string) {
		if !ours[path.Base(repository)] {
			return
		}
		checked++
		if ref := repository + ":" + tag; !produced[ref] {
			t.Errorf("%s: %s is not a reference `make push REGISTRY=%s TAG=%s` produces (%v)", where, ref, DefaultRegistry, chart.AppVersion, keys(produced))
		}
	}
	var values map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	walkImages(values, "", func(where, repository, tag string) { check("values.yaml "+where, repository, tag) })
	if p, ok := values["plugin"].(map[string]any); ok {
		if s, ok := p["source"].(map[string]any); ok {
			if a, _ := s["artifact"].(string); a != "" {
				repo, tag, _ := strings.Cut(strings.Split(a, "@")[0], ":")
				check("values.yaml plugin.source.artifact", repo, tag)
			}
		}
	}

	// Ratify's chart values in docs/ratify-values run the Ratify image with the
	// plugin: <registry>/ratify-awssigner:<ratify version>-awssigner-<appVersion>
	// (the registry there is an example account's).
	var ratifyValues struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	readYAML(t, filepath.Join(fx.repo, "docs", "ratify-values", "plugin-image.yaml"), &ratifyValues)
	if want := RatifyTag(RatifyVersion(), chart.AppVersion); path.Base(ratifyValues.Image.Repository) != RepoRatify || ratifyValues.Image.Tag != want {
		t.Errorf("docs/ratify-values/plugin-image.yaml runs %s:%s, `make push TAG=%s` writes <registry>/%s:%s",
			ratifyValues.Image.Repository, ratifyValues.Image.Tag, chart.AppVersion, RepoRatify, want)
	}
	checked++
	t.Logf("%d image references checked", checked)
}

// walkImages calls found for every map holding a string "repository".
func walkImages(v any, where string, found func(where, repository, tag string)) {
	switch n := v.(type) {
	case map[string]any:
		if repo, ok := n["repository"].(string); ok {
			tag, _ := n["tag"].(string)
			if d, _ := n["digest"].(string); d != "" && tag == "" {
				tag = "@" + d
			}
			found(where, repo, tag)
		}
		for k, c := range n {
			walkImages(c, strings.TrimPrefix(where+"."+k, "."), found)
		}
	case []any:
		for _, c := range n {
			walkImages(c, where+"[]", found)
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
