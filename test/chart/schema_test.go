package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
)

// TestSchemaRefusesBadValues: values.schema.json stops a bad value before
// anything is rendered, and says where and why.
func TestSchemaRefusesBadValues(t *testing.T) {
	ok := "trustedSigningProfiles: [" + prodARN + "]\n"
	cases := []struct{ name, values, want string }{
		{"unknown top-level key", ok + "trustedProfiles: [" + prodARN + "]", "additional properties 'trustedProfiles' not allowed"},
		{"unknown nested key", ok + "revocation: {ttl: 5m}", "at '/revocation': additional properties 'ttl' not allowed"},
		{"misspelled constraint key", ok + "policies: {constraints: {excludeNamespaces: [kube-system]}}", "at '/policies/constraints': additional properties 'excludeNamespaces' not allowed"},
		{"unknown key in a restriction", ok + "policies: {constraints: {namespaceRestrictions: [{namespaces: [a], allowedSigningProfiles: [" + prodARN + "], profiles: []}]}}", "additional properties 'profiles' not allowed"},
		{"IAM role ARN as a profile", "trustedSigningProfiles: ['arn:aws:iam::111122223333:role/signer']", "at '/trustedSigningProfiles/0': 'arn:aws:iam::111122223333:role/signer' does not match pattern"},
		{"signing job ARN as a profile", "trustedSigningProfiles: ['arn:aws:signer:us-west-2:111122223333:/signing-jobs/5d7e1f0a']", "at '/trustedSigningProfiles/0'"},
		{"profile name too short", "trustedSigningProfiles: ['arn:aws:signer:us-west-2:111122223333:/signing-profiles/P']", "does not match pattern"},
		{"account id too short", "trustedSigningProfiles: ['arn:aws:signer:us-west-2:11112222333:/signing-profiles/Prod']", "does not match pattern"},
		{"profile list as a string", "trustedSigningProfiles: " + prodARN, "at '/trustedSigningProfiles': got string, want array"},
		{"versioned profile in a restriction", ok + "policies: {constraints: {namespaceRestrictions: [{namespaces: [a], allowedSigningProfiles: [" + prodARN + "/abcdEFGH12]}]}}", "at '/policies/constraints/namespaceRestrictions/0/allowedSigningProfiles/0'"},
		{"restriction without namespaces", ok + "policies: {constraints: {namespaceRestrictions: [{allowedSigningProfiles: [" + prodARN + "]}]}}", "missing property 'namespaces'"},
		{"bad level", ok + "verificationLevel: enforce", "at '/verificationLevel': value must be one of 'strict', 'permissive', 'audit', 'skip'"},
		{"bad level in trustPolicyDoc", `trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: Strict}}]}`, "at '/trustPolicyDoc/trustPolicies/0/signatureVerification/level': value must be one of"},
		{"integrity override in trustPolicyDoc", `trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict, override: {integrity: log}}}]}`, "additional properties 'integrity' not allowed"},
		{"trustPolicyDoc without version", `trustPolicyDoc: {trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict}}]}`, "missing property 'version'"},
		{"trustPolicyDoc version 2.0", `trustPolicyDoc: {version: "2.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict}}]}`, "at '/trustPolicyDoc/version': value must be '1.0'"},
		{"trust store of unknown type", ok + "trustStores: {x509: {root: [pem]}}", "additional properties 'x509' not allowed"},
		{"trust store entry that is neither PEM nor a path", ok + "trustStores: {signingAuthority: {root: [\"MIIBkTCB+wIJ\"]}}", "/trustStores/signingAuthority/root/0"},
		{"bad enforcementAction", ok + "policies: {constraints: {enforcementAction: block}}", "at '/policies/constraints/enforcementAction': value must be one of 'deny', 'warn', 'dryrun'"},
		{"enforcementAction scoped (not offered)", ok + "policies: {constraints: {enforcementAction: scoped}}", "value must be one of 'deny', 'warn', 'dryrun'"},
		{"bad restriction enforcementAction", ok + "policies: {constraints: {namespaceRestrictions: [{namespaces: [a], allowedSigningProfiles: [" + prodARN + "], enforcementAction: Deny}]}}", "enforcementAction': value must be one of"},
		{"duration as a number", ok + "revocation: {timeout: 2}", "at '/revocation/timeout': got number, want string"},
		{"duration in words", ok + "revocation: {cacheTTL: 5 minutes}", "at '/revocation/cacheTTL': '5 minutes' does not match pattern"},
		{"negative duration", ok + "revocation: {timeout: -1s}", "at '/revocation/timeout'"},
		{"duration in days", ok + "revocation: {cacheTTL: 1d}", "at '/revocation/cacheTTL'"},
		{"relative cacheDir", ok + "revocation: {cacheDir: cache}", "at '/revocation/cacheDir'"},
		{"region in capitals", ok + "aws: {region: US-WEST-2}", "at '/aws/region'"},
		{"endpoint without scheme", ok + "aws: {endpoint: signer.us-west-2.amazonaws.com}", "at '/aws/endpoint'"},
		{"registry scope with a tag", ok + "registryScopes: [a.example.com/app:v1]", "at '/registryScopes/0'"},
		{"unknown auth provider", ok + "plugin: {source: {artifact: r.example.com/p/awssigner:1, authProvider: {name: ecr}}}", "at '/plugin/source/authProvider/name': value must be one of"},
		{"auth provider without name", ok + "plugin: {source: {artifact: r.example.com/p/awssigner:1, authProvider: {configPath: /x}}}", "missing property 'name'"},
		{"constraint name in capitals", ok + "policies: {constraints: {name: AWS}}", "at '/policies/constraints/name'"},
		{"verifier name with underscore", ok + "verifier: {name: verifier_awssigner}", "at '/verifier/name'"},
		{"namespace with a slash", ok + "policies: {constraints: {excludedNamespaces: [kube/system]}}", "at '/policies/constraints/excludedNamespaces/0'"},
	}
	ch := loadChart(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals := values(t, c.values)
			// As helm install, upgrade, template and lint see it.
			_, err := install(t, vals, verifierAPI, constraintAPI)
			if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("install: got %v\nwant a schema error containing %q", err, c.want)
			}
			// And through Helm's schema validation alone.
			merged, err := chartutil.CoalesceValues(ch, vals)
			if err != nil {
				t.Fatal(err)
			}
			if err := chartutil.ValidateAgainstSchema(ch, merged); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ValidateAgainstSchema: got %v\nwant an error containing %q", err, c.want)
			}
		})
	}
}

// TestSchemaAcceptsGoodValues: the forms the README documents pass.
func TestSchemaAcceptsGoodValues(t *testing.T) {
	for _, v := range []string{
		"trustedSigningProfiles: [arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod_2, 'arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod/abcdEFGH12', 'arn:aws-cn:signer:cn-north-1:111122223333:/signing-profiles/CN', " + govARN + "]",
		"trustedSigningProfiles: [" + prodARN + "]\nregistryScopes: [localhost:5000/team/app, 111122223333.dkr.ecr.us-west-2.amazonaws.com/a/b-c__d.e]",
		"trustedSigningProfiles: [" + prodARN + "]\nrevocation: {timeout: 1.5s, cacheTTL: 0s}",
		"trustedSigningProfiles: [" + prodARN + "]\nrevocation: {timeout: '', cacheTTL: '', cacheDir: ''}",
		"trustedSigningProfiles: [" + prodARN + "]\npolicies: {constraints: {excludedNamespaces: ['kube-*', '*-system', '*']}}",
		"trustedSigningProfiles: [" + prodARN + "]\nplugin: {source: {artifact: 'localhost:5000/plugins/awssigner@sha256:0d1c8d2f6ae1b8c1b7e5a8f4d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978877fe', authProvider: {name: k8Secrets, secrets: [{secretName: regcred, namespace: gatekeeper-system}]}}}",
	} {
		if _, err := install(t, values(t, v), verifierAPI, constraintAPI); err != nil {
			t.Errorf("%s\n%v", v, err)
		}
	}
}

// TestSchemaIsStrictEverywhere: every object the schema describes refuses
// unknown keys (the point of the schema: a misspelled --set fails).
func TestSchemaIsStrictEverywhere(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s["$schema"] != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("$schema = %v, want draft-07", s["$schema"])
	}
	// Free-form on purpose: values other charts share (global), metadata
	// maps (checked by the API server), and Kubernetes' own pod fields the
	// constraints Job passes through.
	freeForm := map[string]bool{
		"#/properties/global":            true,
		"#/properties/commonLabels":      true,
		"#/properties/commonAnnotations": true,
		"#/properties/policies/properties/constraints/properties/job/properties/resources":              true,
		"#/properties/policies/properties/constraints/properties/job/properties/nodeSelector":           true,
		"#/properties/policies/properties/constraints/properties/job/properties/tolerations/items":      true,
		"#/properties/policies/properties/constraints/properties/job/properties/imagePullSecrets/items": true,
		"#/properties/provider/properties/resources":                                                    true,
		"#/properties/provider/properties/env/items":                                                    true,
		"#/properties/provider/properties/podAnnotations":                                               true,
		"#/properties/provider/properties/podLabels":                                                    true,
		"#/properties/provider/properties/nodeSelector":                                                 true,
		"#/properties/provider/properties/tolerations/items":                                            true,
		"#/properties/provider/properties/affinity":                                                     true,
		"#/properties/provider/properties/topologySpreadConstraints/items":                              true,
		"#/properties/provider/properties/serviceAccount/properties/annotations":                        true,
		"#/properties/provider/properties/networkPolicy/properties/gatekeeperPodLabels":                 true,
		"#/properties/provider/properties/networkPolicy/properties/metricsFrom/items":                   true,
		"#/properties/provider/properties/serviceMonitor/properties/labels":                             true,
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch n := v.(type) {
		case map[string]any:
			_, props := n["properties"]
			_, pattern := n["patternProperties"]
			// A map whose values have a schema of their own ($ref) and
			// whose keys are checked (propertyNames) is not free-form.
			ap, _ := n["additionalProperties"].(map[string]any)
			_, names := n["propertyNames"]
			strictMap := ap != nil && ap["$ref"] != nil && names
			if (n["type"] == "object" || props || pattern) && !freeForm[path] && !strictMap {
				if n["additionalProperties"] != false {
					t.Errorf("%s: object schema without \"additionalProperties\": false", path)
				}
			}
			for k, c := range n {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range n {
				walk(fmt.Sprintf("%s/%d", path, i), c)
			}
		}
	}
	walk("#", s)
}

// TestSchemaPatternsAgreeWithThePlugin: what the schema's duration pattern
// accepts is what the plugin's decoder accepts (signs aside, which the
// schema refuses), and the same holds for signing-profile ARNs.
func TestSchemaPatternsAgreeWithThePlugin(t *testing.T) {
	defs := schemaDefinitions(t)
	duration := regexp.MustCompile(defs["duration"]["pattern"].(string))
	for _, d := range []string{"0", "0s", "2s", "1.5h", ".5s", "5.s", "1h30m", "500ms", "1us", "1µs", "1μs", "10ns", "2", "s", "1d", "1 s", "1.2.3s", "1e3s", "+5s", "-5s", "1h-5m", "ms"} {
		_, goErr := time.ParseDuration(d)
		goOK := goErr == nil && !strings.ContainsAny(d, "+-")
		if got := duration.MatchString(d); got != goOK {
			t.Errorf("duration %q: schema accepts=%v, Go (unsigned) accepts=%v", d, got, goOK)
		}
		if !duration.MatchString(d) {
			continue
		}
		// And the plugin's own decoder takes it (within its range).
		doc := fmt.Sprintf(`{"trustPolicyDoc":{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]},"revocation":{"cacheTTL":%q}}`, d)
		if _, err := config.DecodeJSON([]byte(doc)); err != nil {
			t.Errorf("duration %q: schema accepts it, the plugin refuses: %v", d, err)
		}
	}
	if !duration.MatchString("") {
		t.Error("duration: the empty string (plugin default) is refused")
	}

	arn := regexp.MustCompile(defs["signingProfileArn"]["pattern"].(string))
	unversioned := regexp.MustCompile(defs["unversionedSigningProfileArn"]["pattern"].(string))
	for _, c := range []struct {
		arn                 string
		ok, unversionedOnly bool
	}{
		{prodARN, true, true},
		{prodARN + "/abcdEFGH12", true, false},
		{govARN, true, true},
		{"arn:aws-cn:signer:cn-north-1:111122223333:/signing-profiles/Prod", true, true},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/" + strings.Repeat("a", 64), true, true},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/" + strings.Repeat("a", 65), false, false},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod/abc", false, false},
		{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/Pro-d", false, false},
		{"arn:aws:signer:us-west-2:111122223333:signing-profiles/Prod", false, false},
		{"arn:aws-eu:signer:us-west-2:111122223333:/signing-profiles/Prod", false, false},
		{"*", false, false},
	} {
		if got := arn.MatchString(c.arn); got != c.ok {
			t.Errorf("signingProfileArn %q: accepts=%v, want %v", c.arn, got, c.ok)
		}
		if got := unversioned.MatchString(c.arn); got != c.unversionedOnly {
			t.Errorf("unversionedSigningProfileArn %q: accepts=%v, want %v", c.arn, got, c.unversionedOnly)
		}
		if !c.ok {
			continue
		}
		// The plugin trusts what the schema lets through.
		doc := fmt.Sprintf(`{"trustPolicyDoc":{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["signingAuthority:aws-signer-ts"],"trustedIdentities":[%q]}]}}`, c.arn)
		if _, err := config.DecodeJSON([]byte(doc)); err != nil {
			t.Errorf("%q: schema accepts it, the plugin refuses: %v", c.arn, err)
		}
	}
}

// schemaDefinitions returns values.schema.json's definitions.
func schemaDefinitions(t *testing.T) map[string]map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(s.Definitions))
	for k := range s.Definitions {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Logf("schema definitions: %s", strings.Join(names, ", "))
	return s.Definitions
}
