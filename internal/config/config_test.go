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
	if c.Revocation.Timeout != 1500*time.Millisecond || c.Revocation.CacheTTL != 0 || c.Deadline != MinDeadline {
		t.Fatalf("revocation %+v, deadline %s", c.Revocation, c.Deadline)
	}
	if c.AWS.Region != "us-gov-west-1" || c.TrustPolicy.TrustPolicies[0].SignatureVerification.Override["revocation"] != "skip" {
		t.Fatalf("%+v", c)
	}
	y, err := Decode([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	// Defaults, in one place.
	want := Revocation{Timeout: DefaultRevocationTimeout, CacheTTL: DefaultCacheTTL, MaxAttempts: DefaultMaxAttempts, MaxBackoff: DefaultMaxBackoff}
	if y.Revocation != want || y.Deadline != MinDeadline || len(y.Warnings) != 0 {
		t.Fatalf("defaults not applied: %+v, deadline %s, warnings %q", y.Revocation, y.Deadline, y.Warnings)
	}
	if y.TrustPolicy.TrustPolicies[0].SignatureVerification.VerificationLevel != "permissive" {
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
		{strings.TrimSuffix(policy(good), "}") + `,"aws":{"profile":"x"}}`, "aws.profile", "unknown key (known keys here: region, endpoint, useFIPSEndpoint)"},
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
	c, err := DecodeDocument([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := DecodeDocument(b)
	if err != nil {
		t.Fatalf("re-decoding %s: %v", b, err)
	}
	if _, err := c2.Resolve(); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(c2)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the config:\n%s\n%s", b, b2)
	}
}

// TestResolveReportsEveryError: validation does not stop at the first
// problem, and the document is left as it was.
func TestResolveReportsEveryError(t *testing.T) {
	in := `{"trustPolicyDoc":{"version":"1.0","trustPolicies":[
	  {"name":"a","registryScopes":["*"],"signatureVerification":{"level":"lenient"},"trustStores":["signingAuthority:aws-signer-ts"],"trustedIdentities":["arn:aws:signer:us-west-2:1:/signing-profiles/A"]},
	  {"name":"b","registryScopes":["x.example/app"],"signatureVerification":{"level":"strict"},"trustStores":["signingAuthority:nope"],"trustedIdentities":["*"]}]},
	  "revocation":{"timeout":"1h","cacheDir":"rel"},"aws":{"region":"Oregon","endpoint":"ftp://x"}}`
	doc, err := DecodeDocument([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Resolve()
	var all Errors
	if !errors.As(err, &all) {
		t.Fatalf("got %T %v, want Errors", err, err)
	}
	var paths []string
	for _, fe := range all {
		paths = append(paths, fe.Path)
	}
	want := []string{"revocation.timeout", "revocation.cacheDir", "aws.region", "aws.endpoint",
		"trustPolicyDoc.trustPolicies[0].signatureVerification.level", "trustPolicyDoc.trustPolicies[1].trustedIdentities[0]", "trustPolicyDoc.trustPolicies[1].trustStores[0]"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("paths\n got %q\nwant %q", paths, want)
	}
	if doc.Revocation.Timeout == nil || time.Duration(*doc.Revocation.Timeout) != time.Hour {
		t.Fatal("Resolve changed its document")
	}
}

func TestResolveWarningsAndDeadline(t *testing.T) {
	c, err := Decode([]byte(`{"trustPolicyDoc":{"version":"1.0","trustPolicies":[
	  {"name":"a","registryScopes":["*"],"signatureVerification":{"level":"audit","override":{"revocation":"skip"}},"trustStores":["signingAuthority:aws-signer-ts"],"trustedIdentities":["arn:aws:signer:us-west-2:1:/signing-profiles/A"]}]},
	  "revocation":{"timeout":"4s","cacheTTL":"0s"},"aws":{"endpoint":"http://127.0.0.1:1","useFIPSEndpoint":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Deadline != 4*time.Second+DeadlineMargin {
		t.Errorf("deadline %s", c.Deadline)
	}
	joined := strings.Join(c.Warnings, "\n")
	for _, s := range []string{"cacheTTL is 0s", "useFIPSEndpoint has no effect", "level audit", "skips the revocation check"} {
		if !strings.Contains(joined, s) {
			t.Errorf("warnings lack %q:\n%s", s, joined)
		}
	}
}

// Named trust policy documents are validated like trustPolicyDoc, each
// error under trustPolicyDocs.<name>; names are DNS-1123 subdomains.
func TestTrustPolicyDocs(t *testing.T) {
	stmt := `{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["signingAuthority:aws-signer-ts"],"trustedIdentities":["arn:aws:signer:us-west-2:1:/signing-profiles/A"]}`
	doc := `{"version":"1.0","trustPolicies":[` + stmt + `]}`
	c, err := Decode([]byte(`{"trustPolicyDoc":` + doc + `,"trustPolicyDocs":{"tp-a":` + doc + `,"team.b":` + strings.Replace(doc, `"strict"`, `"audit"`, 1) + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustPolicies) != 2 || c.TrustPolicies["tp-a"] == nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "trustPolicyDocs.team.b.trustPolicies[0]") {
		t.Fatalf("%+v %q", c.TrustPolicies, c.Warnings)
	}
	if c, err := Decode([]byte(`{"trustPolicyDoc":` + doc + `}`)); err != nil || c.TrustPolicies != nil {
		t.Fatalf("none: %v %+v", err, c)
	}
	_, err = Decode([]byte(`{"trustPolicyDoc":` + doc + `,"trustPolicyDocs":{"Team_A":` + doc + `,"tp-b":` + strings.Replace(doc, `"strict"`, `"lenient"`, 1) +
		`,"tp-c":null,"tp-d":{"version":"2.0","trustPolicies":[]},"-x":` + doc + `}}`))
	var all Errors
	if !errors.As(err, &all) {
		t.Fatalf("got %T %v", err, err)
	}
	var got []string
	for _, fe := range all {
		got = append(got, fe.Path)
	}
	want := "trustPolicyDocs.-x trustPolicyDocs.Team_A trustPolicyDocs.tp-b.trustPolicies[0].signatureVerification.level trustPolicyDocs.tp-c trustPolicyDocs.tp-d.version trustPolicyDocs.tp-d.trustPolicies"
	if strings.Join(got, " ") != want {
		t.Errorf("paths\n got %s\nwant %s\n%v", strings.Join(got, " "), want, err)
	}
	if !strings.Contains(err.Error(), "not a DNS-1123 subdomain") {
		t.Error(err)
	}
	for _, name := range []string{"a", "tp-a", "team.b", "0", strings.Repeat("a", 63)} {
		if err := CheckPolicyName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "A", "a_b", "a.", ".a", "a..b", "-a", "a-", strings.Repeat("a", 254)} {
		if CheckPolicyName(name) == nil {
			t.Errorf("%q accepted", name)
		}
	}
}
