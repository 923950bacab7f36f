package chart

import (
	"bytes"
	"log"
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
)

// TestHelmLintStrict is `helm lint --strict` (the same code, the pinned
// Helm version) on the defaults and on every example values file.
func TestHelmLintStrict(t *testing.T) {
	cases := map[string]map[string]any{"defaults": {}}
	for _, f := range exampleFiles(t) {
		cases[filepath.Base(f)] = readValues(t, f)
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			// Lint renders in lint mode, where `fail` only logs: keep those
			// lines in the test log rather than on stderr.
			var logs bytes.Buffer
			log.SetOutput(&logs)
			defer log.SetOutput(os.Stderr)

			l := action.NewLint()
			l.Strict = true
			l.Namespace = releaseNamespace
			l.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
			res := l.Run([]string{chartDir}, vals)
			if logs.Len() > 0 {
				t.Logf("helm log:\n%s", logs.String())
			}
			for _, m := range res.Messages {
				t.Logf("lint: %s", m)
			}
			for _, err := range res.Errors {
				t.Errorf("lint --strict: %v", err)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("%d charts linted", res.TotalChartsLinted)
			}
		})
	}

	// And lint refuses bad values (through the schema).
	l := action.NewLint()
	l.Strict = true
	if res := l.Run([]string{chartDir}, values(t, "verificationLevel: enforce")); len(res.Errors) == 0 {
		t.Error("lint --strict accepts verificationLevel: enforce")
	}
}
