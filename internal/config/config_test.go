package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const validJSON = `{
  "name": "awssigner", "type": "awssigner", "artifactTypes": "application/vnd.cncf.notary.signature",
  "version": "1.0.0", "nestedReferences": [], "source": {"artifact": "example.com/plugin:v1"},
  "trustPolicyDoc": {"version": "1.0", "trustPolicies": [{
    "name": "team", "registryScopes": ["*"],
    "signatureVerification": {"level": "strict", "override": {"revocation": "skip"}},
    "trustStores": ["signingAuthority:aws-signer-ts"],
    "trustedIdentities": ["arn:aws:signer:us-west-2:111122223333:/signing-profiles/TeamA"]}]},
  "revocation": {"timeout": "1500ms", "cacheTTL": "0s", "cacheDir": "/var/cache/awssigner"},
  "aws": {"region": "us-gov-west-1", "endpoint": "http://127.0.0.1:9000"}
}`

const validYAML = `
trustPolicyDoc:
  version: "1.0"
  trustPolicies:
  - name: team
    registryScopes: ["*"]
    signatureVerification: {level: permissive}
    trustStores: [signingAuthority:aws-us-gov-signer-ts]
    trustedIdentities: [arn:aws-us-gov:signer:us-gov-west-1:111122223333:/signing-profiles/TeamA]
`

func TestDecodeValid(t *testing.T) {
	c, err := Decode([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(*c.Revocation.Timeout) != 1500*time.Millisecond || time.Duration(*c.Revocation.CacheTTL) != 0 {
		t.Fatalf("revocation %+v", c.Revocation)
	}
	if c.AWS.Region != "us-gov-west-1" || c.TrustPolicyDoc.TrustPolicies[0].SignatureVerification.Override["revocation"] != "skip" {
		t.Fatalf("%+v", c)
	}
	y, err := Decode([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	// Defaults, in one place.
	if time.Duration(*y.Revocation.Timeout) != DefaultTimeout || time.Duration(*y.Revocation.CacheTTL) != DefaultCacheTTL {
		t.Fatalf("defaults not applied: %+v", y.Revocation)
	}
	if y.TrustPolicyDoc.TrustPolicies[0].SignatureVerification.VerificationLevel != "permissive" {
		t.Fatal("YAML level lost")
	}
}

func TestDecodeErrorsNameThePath(t *testing.T) {
	policy := func(stmt string) string {
		return `{"trustPolicyDoc":{"version":"1.0","trustPolicies":[` + stmt + `]}}`
	}
	good := `{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["signingAuthority:aws-signer-ts"],"trustedIdentities":["arn:aws:signer:us-west-2:1:/signing-profiles/A"]}`
	for _, tc := range []struct{ in, path, msg string }{
		{`{"trustPolicyDoc":{"version":"1.0","trustPolicies":[]},"extra":1}`, "extra", "unknown key"},
		{`{}`, "trustPolicyDoc", "required"},
		{`[]`, "", "want an object"},
		{``, "", "empty"},
		{`{"trustPolicyDoc":{"version":"2.0","trustPolicies":[]}}`, "trustPolicyDoc.version", `must be "1.0"`},
		{policy(strings.Replace(good, `"level":"strict"`, `"levl":"strict"`, 1)), "trustPolicyDoc.trustPolicies[0].signatureVerification.levl", "unknown key"},
		{policy(strings.Replace(good, `"strict"`, `"lenient"`, 1)), "trustPolicyDoc.trustPolicies[0].signatureVerification.level", "not a verification level"},
		{policy(strings.Replace(good, `["*"]`, `"*"`, 1)), "trustPolicyDoc.trustPolicies[0].registryScopes", "want a list"},
		{policy(strings.Replace(good, `"arn:aws:signer:us-west-2:1:/signing-profiles/A"`, `"*"`, 1)), "trustPolicyDoc.trustPolicies[0].trustedIdentities[0]", "wildcard identity is not supported"},
		{policy(strings.Replace(good, `"arn:aws:signer:us-west-2:1:/signing-profiles/A"`, `"x509.subject:C=US,ST=WA,O=X"`, 1)), "trustPolicyDoc.trustPolicies[0].trustedIdentities", "no signing-profile ARN"},
		{policy(strings.Replace(good, `signingAuthority:aws-signer-ts`, `signingAuthority:mine`, 1)), "trustPolicyDoc.trustPolicies[0].trustStores[0]", `"signingAuthority:mine" is not configured`},
		{policy(strings.Replace(good, `["*"]`, `["registry.example.com/"]`, 1)), "trustPolicyDoc", "registry scope"},
		{strings.TrimSuffix(policy(good), "}") + `,"revocation":{"timeout":"soon"}}`, "revocation.timeout", "invalid duration"},
		{strings.TrimSuffix(policy(good), "}") + `,"revocation":{"timeout":"0s"}}`, "revocation.timeout", "more than 0s"},
		{strings.TrimSuffix(policy(good), "}") + `,"revocation":{"timeout":2}}`, "revocation.timeout", "duration string"},
		{strings.TrimSuffix(policy(good), "}") + `,"revocation":{"cacheTTL":"-1s"}}`, "revocation.cacheTTL", "between 0s"},
		{strings.TrimSuffix(policy(good), "}") + `,"revocation":{"cacheDir":"cache"}}`, "revocation.cacheDir", "absolute path"},
		{strings.TrimSuffix(policy(good), "}") + `,"aws":{"region":"Oregon"}}`, "aws.region", "not an AWS region"},
		{strings.TrimSuffix(policy(good), "}") + `,"aws":{"endpoint":"ftp://x"}}`, "aws.endpoint", "not an http(s) URL"},
		{strings.TrimSuffix(policy(good), "}") + `,"aws":{"profile":"x"}}`, "aws.profile", "unknown key (known keys here: region, endpoint)"},
		{strings.TrimSuffix(policy(good), "}") + `,"trustStores":{"signingAuthority":{"mine":["nope"]}}}`, "", "trustStores.signingAuthority.mine[0]"},
		{policy(good) + `{}`, "", "unexpected data"},
		{"trustPolicyDoc: [unclosed", "", "not valid JSON or YAML"},
	} {
		_, err := Decode([]byte(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v (%T), want a *FieldError", tc.in, err, err)
			continue
		}
		if fe.Path != tc.path || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s:\n got path %q: %v\nwant path %q containing %q", tc.in, fe.Path, err, tc.path, tc.msg)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	c, err := Decode([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Decode(b)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b, err)
	}
	b2, _ := json.Marshal(c2)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the config:\n%s\n%s", b, b2)
	}
}
