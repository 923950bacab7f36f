package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	verifier := runCLI(t, "policy", "init", "--profile-arn", profile, "--format", "verifier")
	if verifier.code != 0 {
		t.Fatalf("policy init: %d %s", verifier.code, verifier.stderr)
	}
	bad := strings.Replace(strings.Replace(verifier.stdout, "level: strict", "level: strictest", 1), "name: verifier-awssigner", "name: verifier-broken", 1)
	bad = strings.Replace(bad, "trustedIdentities:", "trustedIdentities:\n        - \"*\"", 1)
	namespaced := strings.Replace(verifier.stdout, "kind: Verifier", "kind: NamespacedVerifier", 1)
	other := "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata: {name: verifier-notation}\nspec: {name: notation, artifactTypes: application/vnd.cncf.notary.signature}\n"
	service := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	good := write("good.yaml", "# Source: chart\n---\n"+service+"---\n"+other+"---\n"+namespaced)
	if r := runCLI(t, "policy", "check", good); r.code != 0 || !strings.Contains(r.stdout, "NamespacedVerifier verifier-awssigner: valid") || strings.Contains(r.stdout, "notation") {
		t.Fatalf("good: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	mixed := write("mixed.yaml", verifier.stdout+"\n---\n"+bad)
	r := runCLI(t, "policy", "check", mixed, "-o", "json")
	if r.code != ExitRefused {
		t.Fatalf("mixed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var found []checkedConfig
	if err := json.Unmarshal([]byte(r.stdout), &found); err != nil || len(found) != 2 {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if !found[0].Valid || found[1].Valid || found[1].Source != "document 2, Verifier verifier-broken" {
		t.Fatalf("found %+v", found)
	}
	// Every problem, each with its full path in the manifest.
	joined := strings.Join(found[1].Errors, "\n")
	for _, want := range []string{
		"spec.parameters.trustPolicyDoc.trustPolicies[0].signatureVerification.level",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors lack %q:\n%s", want, joined)
		}
	}

	config := runCLI(t, "policy", "init", "--profile-arn", profile)
	plain := write("config.json", strings.Replace(config.stdout, `"trustPolicyDoc"`, `"revocation": {"cacheTTL": "-1s", "timeout": "1h"}, "trustPolicyDoc"`, 1))
	if r := runCLI(t, "policy", "check", plain); r.code != ExitRefused || !strings.Contains(r.stdout, "revocation.timeout") || !strings.Contains(r.stdout, "revocation.cacheTTL") {
		t.Fatalf("plain bad config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "policy", "check", write("none.yaml", service)); r.code != ExitFailed || !strings.Contains(r.stderr, "no awssigner verifier configuration") {
		t.Fatalf("nothing to check: exit %d %s", r.code, r.stderr)
	}
}
