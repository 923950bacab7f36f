package verification

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestStrictEnvelopeRefusesAmbiguousJSON(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	header := func(h string) string {
		return `{"payload":"e30","protected":"` + b64([]byte(h)) + `","header":{"x5c":[]},"signature":"AA"}`
	}
	for _, tc := range []struct{ name, env, want string }{
		{"duplicate alg", header(`{"alg":"ES256","alg":"ES384"}`), `key "alg" appears twice`},
		{"duplicate crit", header(`{"alg":"ES384","crit":["a"],"crit":[]}`), `key "crit" appears twice`},
		{"duplicate signing scheme", header(`{"io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingScheme":"notary.x509.signingAuthority"}`), "appears twice"},
		{"duplicate nested key", header(`{"alg":"ES384","x":{"a":1,"a":2}}`), `key "a" appears twice`},
		{"duplicate envelope key", `{"payload":"e30","payload":"e30","protected":"e30","header":{},"signature":"AA"}`, `key "payload" appears twice`},
		{"deep nesting", header(`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), "nested deeper"},
		{"trailing data", `{"protected":"e30"} {}`, "unexpected data"},
		{"protected not base64url", `{"protected":"***","header":{},"signature":"AA"}`, "not base64url"},
		{"signing time not RFC 3339", header(`{"io.cncf.notary.authenticSigningTime":"yesterday"}`), "not RFC 3339"},
		{"enormous chain", `{"payload":"e30","protected":"e30","header":{"x5c":["AAAA","AAAA","AAAA","AAAA","AAAA","AAAA","AAAA","AAAA","AAAA","AAAA","AAAA"]},"signature":"AA"}`, "chain of 11 certificates"},
		{"AWS header without a chain", header(`{"alg":"ES384","io.cncf.notary.signingScheme":"notary.x509.signingAuthority","io.cncf.notary.verificationPlugin":"com.amazonaws.signer.notation.plugin"}`), "no certificate chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := strictEnvelope([]byte(tc.env), "application/jose+json")
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Msg, tc.want) {
				t.Fatalf("got %v, want a refusal containing %q", err, tc.want)
			}
		})
	}
	if _, err := strictEnvelope([]byte(header(`{"alg":"ES384"}`)), "application/cose"); err == nil || err.Reason != ReasonNotAWSSigner {
		t.Fatalf("COSE: %v", err)
	}
	f, err := strictEnvelope([]byte(header(`{"alg":"ES256","io.cncf.notary.authenticSigningTime":"2026-01-02T03:04:05Z"}`)), "application/jose+json")
	if err != nil || f.signingTime.IsZero() || f.header.Alg != "ES256" {
		t.Fatalf("a header not naming the AWS plugin is left to the later checks: %+v %v", f, err)
	}
}
