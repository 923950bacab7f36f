package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/cli"
)

// TestPolicyInitValues: `awssigner policy init --format values` prints
// values this chart takes, and the chart then writes the very trust policy
// `policy init --format config` prints for the same flags.
func TestPolicyInitValues(t *testing.T) {
	cases := [][]string{
		{"--profile-arn", prodARN},
		{"--profile-arn", prodARN, "--profile-arn", govARN + "/abcdEFGH12", "--level", "permissive"},
		{"--profile-arn", prodARN, "--level", "audit", "--registry-scope", "111122223333.dkr.ecr.us-west-2.amazonaws.com/app", "--registry-scope", "localhost:5000/web"},
		{"--profile-arn", prodARN, "--skip-revocation"},
	}
	for _, flags := range cases {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			valuesText := runPolicyInit(t, append(flags, "--format", "values")...)
			vals := values(t, valuesText)
			if vals["verificationLevel"] == "audit" {
				// A deny Constraint is refused at level audit.
				vals["policies"] = map[string]any{"constraints": map[string]any{"enforcementAction": "warn"}}
			}
			_, objs := mustInstall(t, vals, verifierAPI, constraintAPI)
			for _, p := range validateRelease(t, objs) {
				t.Error(p)
			}
			got := verifierParams(t, objs)["trustPolicyDoc"]

			var cfg struct {
				TrustPolicyDoc any `json:"trustPolicyDoc"`
			}
			if err := json.Unmarshal([]byte(runPolicyInit(t, append(flags, "--format", "config")...)), &cfg); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(t, got), normalize(t, cfg.TrustPolicyDoc)) {
				t.Errorf("chart's trustPolicyDoc\n%s\npolicy init's\n%s", toYAML(got), toYAML(cfg.TrustPolicyDoc))
			}
		})
	}
}

func runPolicyInit(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Run(context.Background(), append([]string{"policy", "init"}, args...), &stdout, &stderr, "test"); code != 0 {
		t.Fatalf("awssigner policy init %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// normalize round-trips through JSON so both sides have the same types.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
