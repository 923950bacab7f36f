package verification_test

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

const repo = "registry.example.com/team/app"

// env is one emulator with one signing profile and a signed image.
type env struct {
	t          *testing.T
	emu        *signeremu.Emulator
	profileARN string
	versionARN string
	subject    ocispec.Descriptor
	signed     []byte // envelope from the emulator's SignPayload
	jobARN     string
	awsCfg     aws.Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	emu, err := signeremu.Start(signeremu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	e := &env{t: t, emu: emu, subject: sigkit.Descriptor(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"test":"`+t.Name()+`"}`))}
	e.awsCfg = aws.Config{Region: "us-west-2", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret-access-key-of-40-characters", "")}
	e.profileARN, e.versionARN, err = emu.CreateProfile("TeamA", 12)
	if err != nil {
		t.Fatal(err)
	}
	e.signed, e.jobARN = e.signPayload("TeamA", e.subject)
	return e
}

// signPayload signs through the real SDK's SignPayload, as the CLI will.
func (e *env) signPayload(profile string, subject ocispec.Descriptor) ([]byte, string) {
	e.t.Helper()
	f, err := signerapi.NewFactory(signerapi.Options{Endpoint: e.emu.URL(), Base: &e.awsCfg, MaxAttempts: config.DefaultMaxAttempts, MaxBackoff: config.DefaultMaxBackoff})
	if err != nil {
		e.t.Fatal(err)
	}
	client, err := f.Client(context.Background(), "us-west-2")
	if err != nil {
		e.t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"targetArtifact": subject})
	out, err := client.SignPayload(context.Background(), &signer.SignPayloadInput{
		Payload: payload, PayloadFormat: aws.String(sigkit.MediaTypePayload), ProfileName: aws.String(profile),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	jobs := e.emu.Jobs()
	return out.Signature, jobs[len(jobs)-1].ARN
}

// sign builds a variant envelope with the emulator's CA.
func (e *env) sign(mut func(*sigkit.Spec)) []byte {
	e.t.Helper()
	spec := sigkit.Spec{Subject: e.subject, ProfileVersionARN: e.versionARN, JobARN: e.jobARN}
	if mut != nil {
		mut(&spec)
	}
	env, err := e.emu.CA().Sign(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return env.Raw
}

type policyOpts struct {
	level       string
	identities  []string
	override    map[string]string
	extraStores []string
	scopes      []string
	timeout     string
	cacheTTL    string
	region      string
}

func (e *env) configJSON(p policyOpts) []byte {
	if p.level == "" {
		p.level = "strict"
	}
	if p.identities == nil {
		p.identities = []string{e.profileARN}
	}
	if p.scopes == nil {
		p.scopes = []string{repo}
	}
	if p.timeout == "" {
		p.timeout = "2s"
	}
	if p.cacheTTL == "" {
		p.cacheTTL = "0s"
	}
	sv := map[string]any{"level": p.level}
	if p.override != nil {
		sv["override"] = p.override
	}
	cfg := map[string]any{
		"name": "awssigner", "type": "awssigner", "artifactTypes": "application/vnd.cncf.notary.signature",
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
			"name": "team", "registryScopes": p.scopes, "signatureVerification": sv,
			"trustStores":       append([]string{"signingAuthority:aws-signer-ts"}, p.extraStores...),
			"trustedIdentities": p.identities,
		}}},
		"trustStores": map[string]any{
			"signingAuthority": map[string]any{"aws-signer-ts": []string{string(e.emu.CA().RootPEM())}},
			"ca":               map[string]any{"test": []string{string(e.emu.CA().RootPEM())}},
		},
		"revocation": map[string]any{"timeout": p.timeout, "cacheTTL": p.cacheTTL},
		"aws":        map[string]any{"endpoint": e.emu.URL(), "region": p.region},
	}
	if p.level == "skip" {
		// notation refuses stores or identities in a skip statement.
		stmt := cfg["trustPolicyDoc"].(map[string]any)["trustPolicies"].([]any)[0].(map[string]any)
		delete(stmt, "trustStores")
		delete(stmt, "trustedIdentities")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) verifier(p policyOpts) *verification.Verifier {
	e.t.Helper()
	cfg, err := config.Decode(e.configJSON(p))
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.MemoryCache, AWS: &e.awsCfg})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// message is what a person is told about the verification.
func message(res *verification.Result, err error) string {
	return verification.NewReport("", res, err).Message
}

func (e *env) verify(v *verification.Verifier, envelope []byte) (*verification.Result, error) {
	return v.Verify(context.Background(), verification.Input{Envelope: envelope, MediaType: sigkit.MediaTypeJWS, Subject: e.subject, Repository: repo})
}

// want describes the expected outcome under one level.
type want struct {
	verified   bool
	kind       error               // ErrRefused or ErrUnavailable when refused
	reason     verification.Reason // when refused
	msg        []string            // substrings of the message
	revocation string              // revocation status
	warning    string              // substring of a warning when verified with warnings
	calls      int                 // GetRevocationStatus calls; -1 = don't care
}

func check(t *testing.T, e *env, res *verification.Result, err error, w want) {
	t.Helper()
	if res == nil {
		t.Fatalf("nil result (err %v)", err)
	}
	if res.Verified != w.verified {
		t.Fatalf("verified = %v, want %v; message: %s", res.Verified, w.verified, message(res, err))
	}
	if w.verified {
		if err != nil {
			t.Fatalf("verified with error %v", err)
		}
	} else {
		var ve *verification.Error
		if !errors.As(err, &ve) || !errors.Is(err, w.kind) {
			t.Fatalf("error %v (%T), want kind %v", err, err, w.kind)
		}
		if w.reason != "" && ve.Reason != w.reason {
			t.Fatalf("reason %q, want %q; message: %s", ve.Reason, w.reason, ve.Msg)
		}
	}
	msg := message(res, err)
	for _, m := range w.msg {
		if !strings.Contains(msg, m) {
			t.Errorf("message lacks %q:\n%s", m, msg)
		}
	}
	if w.revocation != "" && res.RevocationStatus != w.revocation {
		t.Errorf("revocation status %q, want %q", res.RevocationStatus, w.revocation)
	}
	if w.warning != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), w.warning) {
		t.Errorf("warnings %q lack %q", res.Warnings, w.warning)
	}
	if w.calls >= 0 {
		if got := e.emu.Count(signeremu.OpGetRevocationStatus); got != w.calls {
			t.Errorf("GetRevocationStatus calls = %d, want %d", got, w.calls)
		}
	}
}

var levels = []string{"strict", "permissive", "audit"}

func TestMatrix(t *testing.T) {
	otherProfile := "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other"
	type row struct {
		name  string
		setup func(e *env) (policyOpts, []byte)
		want  map[string]want // by level
	}
	ok := func(calls int) want {
		return want{verified: true, revocation: verification.RevocationNotRevoked, calls: calls}
	}
	all := func(w want) map[string]want { return map[string]want{"strict": w, "permissive": w, "audit": w} }
	refusedAll := func(reason verification.Reason, msg ...string) map[string]want {
		return all(want{kind: verification.ErrRefused, reason: reason, msg: msg, calls: 0})
	}
	rows := []row{
		{"valid signature, trusted profile ARN", func(e *env) (policyOpts, []byte) { return policyOpts{}, e.signed }, all(ok(1))},
		{"trusted profile-version ARN", func(e *env) (policyOpts, []byte) { return policyOpts{identities: []string{e.versionARN}}, e.signed }, all(ok(1))},
		{"identity compared case-insensitively", func(e *env) (policyOpts, []byte) {
			return policyOpts{identities: []string{strings.Replace(e.profileARN, "TeamA", "teama", 1)}}, e.signed
		}, all(ok(1))},
		{"x509 identities ignored beside a profile ARN", func(e *env) (policyOpts, []byte) {
			return policyOpts{identities: []string{"x509.subject:C=US,ST=WA,O=AWS,CN=AWS Signer", e.profileARN}}, e.signed
		}, all(ok(1))},
		{"another profile", func(e *env) (policyOpts, []byte) { return policyOpts{identities: []string{otherProfile}}, e.signed }, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonUntrustedIdentity, msg: []string{"TeamA", otherProfile}, calls: 0},
			"permissive": {kind: verification.ErrRefused, reason: verification.ReasonUntrustedIdentity, msg: []string{"TeamA", otherProfile}, calls: 0},
			"audit":      {verified: true, warning: "trustedIdentity: signing profile version", revocation: verification.RevocationNotRevoked, calls: 1},
		}},
		{"another version of the profile", func(e *env) (policyOpts, []byte) {
			return policyOpts{identities: []string{e.profileARN + "/ZZZZZZZZZZ"}}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonUntrustedIdentity, calls: 0},
			"permissive": {kind: verification.ErrRefused, reason: verification.ReasonUntrustedIdentity, calls: 0},
			"audit":      {verified: true, calls: 1},
		}},
		{"revoked job", func(e *env) (policyOpts, []byte) { e.emu.RevokeJob(e.jobARN); return policyOpts{}, e.signed }, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonRevoked, msg: []string{"signing-jobs/", "revoked"}, revocation: verification.RevocationRevoked, calls: 1},
			"permissive": {verified: true, revocation: verification.RevocationRevoked, warning: "have been revoked", calls: 1},
			"audit":      {verified: true, revocation: verification.RevocationRevoked, warning: "have been revoked", calls: 1},
		}},
		{"profile version revoked before signing", func(e *env) (policyOpts, []byte) {
			e.emu.RevokeProfileVersion(e.versionARN, time.Now().Add(-time.Hour))
			return policyOpts{}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonRevoked, msg: []string{e0versionPlaceholder}, revocation: verification.RevocationRevoked, calls: 1},
			"permissive": {verified: true, revocation: verification.RevocationRevoked, calls: 1},
			"audit":      {verified: true, revocation: verification.RevocationRevoked, calls: 1},
		}},
		{"profile version revoked after signing", func(e *env) (policyOpts, []byte) {
			e.emu.RevokeProfileVersion(e.versionARN, time.Now().Add(time.Hour))
			return policyOpts{}, e.signed
		}, all(ok(1))},
		{"revoked certificate", func(e *env) (policyOpts, []byte) {
			leaf, _ := e.emu.CA().Leaf("us-west-2", time.Now())
			e.emu.RevokeCertificate(leaf.Cert)
			return policyOpts{}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonRevoked, msg: []string{"revoked"}, revocation: verification.RevocationRevoked, calls: 1},
			"permissive": {verified: true, revocation: verification.RevocationRevoked, warning: "Certificate(s) have been revoked", calls: 1},
			"audit":      {verified: true, revocation: verification.RevocationRevoked, calls: 1},
		}},
		{"Signer throttles (429)", func(e *env) (policyOpts, []byte) {
			e.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 429, Code: "TooManyRequestsException", Message: "Rate exceeded"})
			return policyOpts{}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrUnavailable, reason: verification.ReasonRevocationFailed, msg: []string{"TooManyRequestsException", "level strict enforces revocation"}, revocation: verification.RevocationUnavailable, calls: 3},
			"permissive": {verified: true, revocation: verification.RevocationUnavailable, warning: "TooManyRequestsException", calls: 3},
			"audit":      {verified: true, revocation: verification.RevocationUnavailable, calls: 3},
		}},
		{"Signer fails (500)", func(e *env) (policyOpts, []byte) {
			e.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500, Code: "InternalServiceErrorException", Message: "internal"})
			return policyOpts{}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrUnavailable, reason: verification.ReasonRevocationFailed, msg: []string{"InternalServiceErrorException"}, revocation: verification.RevocationUnavailable, calls: 3},
			"permissive": {verified: true, revocation: verification.RevocationUnavailable, calls: 3},
			"audit":      {verified: true, revocation: verification.RevocationUnavailable, calls: 3},
		}},
		{"Signer denies access (403, empty message)", func(e *env) (policyOpts, []byte) {
			e.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 403, Code: "AccessDeniedException"})
			return policyOpts{}, e.signed
		}, map[string]want{
			"strict":     {kind: verification.ErrUnavailable, reason: verification.ReasonRevocationFailed, msg: []string{"AccessDeniedException", "signer:GetRevocationStatus"}, revocation: verification.RevocationUnavailable, calls: 1},
			"permissive": {verified: true, revocation: verification.RevocationUnavailable, warning: "AccessDeniedException", calls: 1},
			"audit":      {verified: true, revocation: verification.RevocationUnavailable, calls: 1},
		}},
		{"override revocation skip makes no call, even with Signer down", func(e *env) (policyOpts, []byte) {
			e.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500})
			return policyOpts{override: map[string]string{"revocation": "skip"}}, e.signed
		}, all(want{verified: true, revocation: verification.RevocationSkipped, calls: 0})},
		{"expired signature", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) {
				s.SigningTime = time.Now().Add(-2 * time.Hour)
				s.Expiry = time.Now().Add(-time.Hour)
			})
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonExpired, msg: []string{"expired at"}, calls: 0},
			"permissive": {verified: true, warning: "expired", revocation: verification.RevocationNotRevoked, calls: 1},
			"audit":      {verified: true, warning: "expired", calls: 1},
		}},
		{"signing time outside certificate validity", func(e *env) (policyOpts, []byte) {
			// Today's leaf was not valid ten days ago.
			chain, key, _ := e.emu.CA().Chain("us-west-2", time.Now())
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Chain, s.Key, s.SigningTime = chain, key, time.Now().Add(-10*24*time.Hour) })
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonSigningTime, msg: []string{"outside the validity"}, calls: 0},
			"permissive": {verified: true, warning: "authenticTimestamp", calls: 1},
			"audit":      {verified: true, warning: "authenticTimestamp", calls: 1},
		}},
		{"untrusted root", func(e *env) (policyOpts, []byte) {
			other, err := sigkit.NewCA("Other")
			if err != nil {
				t.Fatal(err)
			}
			chain, key, _ := other.Chain("us-west-2", time.Now())
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Chain, s.Key = chain, key })
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonUntrustedRoot, msg: []string{"Other Code Signing Root CA G1", "signingAuthority:aws-signer-ts"}, calls: 0},
			"permissive": {kind: verification.ErrRefused, reason: verification.ReasonUntrustedRoot, calls: 0},
			"audit":      {verified: true, warning: "authenticity", calls: 1},
		}},
		{"signed for another artifact", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Subject = sigkit.Descriptor(ocispec.MediaTypeImageManifest, []byte("other")) })
		}, all(want{kind: verification.ErrRefused, reason: verification.ReasonSubjectMismatch, msg: []string{"does not sign this artifact"}, calls: -1})},
		{"tampered signature", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Tamper = true })
		}, refusedAll(verification.ReasonIntegrity, "integrity")},
		{"malformed envelope", func(e *env) (policyOpts, []byte) { return policyOpts{}, []byte(`{"payload":`) }, refusedAll(verification.ReasonIntegrity)},
		// Refused before notation runs: AWS Signer signs only ES384 with a
		// P-384 leaf, never writes a header twice, never signs in the future.
		{"P-256 leaf signing ES256", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(p256Leaf(e, "ES256"))
		}, refusedAll(verification.ReasonAlgorithm, `"ES256" is not ES384`)},
		{"P-256 leaf under an ES384 header", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(p256Leaf(e, "ES384"))
		}, refusedAll(verification.ReasonAlgorithm, "ECDSA P-256 key")},
		{"signing time a day in the future", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.SigningTime = time.Now().Add(24 * time.Hour) })
		}, map[string]want{
			"strict":     {kind: verification.ErrRefused, reason: verification.ReasonSigningTime, msg: []string{"in the future", "clock skew of 5m0s"}, calls: 0},
			"permissive": {verified: true, warning: "authenticTimestamp: signing time", revocation: verification.RevocationNotRevoked, calls: -1},
			"audit":      {verified: true, warning: "authenticTimestamp: signing time", revocation: verification.RevocationNotRevoked, calls: -1},
		}},
		{"alg does not match the key", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Alg = "ES256" })
		}, refusedAll(verification.ReasonAlgorithm)},
		{"missing verification plugin attribute", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Delete = []string{sigkit.HeaderVerificationPlugin} })
		}, refusedAll(verification.ReasonNotAWSSigner, "no io.cncf.notary.verificationPlugin")},
		{"non-critical verification plugin attribute", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.NonCritical = []string{sigkit.HeaderVerificationPlugin} })
		}, refusedAll(verification.ReasonNotAWSSigner, "not marked critical")},
		{"another verification plugin", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Set = map[string]any{sigkit.HeaderVerificationPlugin: "com.example.other"} })
		}, refusedAll(verification.ReasonNotAWSSigner, "com.example.other")},
		{"unknown critical attribute", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) {
				s.Set = map[string]any{"com.amazonaws.signer.signingProfileAlias": "arn:aws:signer:us-west-2:111122223333:/signing-profiles/TeamA/aliases/prod"}
				s.Critical = []string{"com.amazonaws.signer.signingProfileAlias"}
			})
		}, all(want{kind: verification.ErrRefused, reason: verification.ReasonUnprocessedCritical, msg: []string{"signingProfileAlias"}, calls: -1})},
		{"missing profile-version attribute", func(e *env) (policyOpts, []byte) {
			return policyOpts{}, e.sign(func(s *sigkit.Spec) { s.Delete = []string{sigkit.HeaderProfileVersion} })
		}, all(want{kind: verification.ErrRefused, reason: verification.ReasonInvalidAttributes, msg: []string{"unable to parse attribute"}, calls: 0})},
		{"wrong signing scheme", func(e *env) (policyOpts, []byte) {
			return policyOpts{extraStores: []string{"ca:test"}}, e.sign(func(s *sigkit.Spec) { s.Scheme = sigkit.SchemeX509 })
		}, all(want{kind: verification.ErrRefused, reason: verification.ReasonInvalidAttributes, msg: []string{"missing authenticSigningTime"}, calls: 0})},
		{"repository outside every registry scope", func(e *env) (policyOpts, []byte) {
			return policyOpts{scopes: []string{"registry.example.com/other"}}, e.signed
		}, all(want{kind: verification.ErrUnavailable, reason: verification.ReasonNoPolicy, msg: []string{"registryScopes"}, calls: 0})},
	}
	for _, r := range rows {
		for _, level := range levels {
			w, ok := r.want[level]
			if !ok {
				continue
			}
			t.Run(r.name+"/"+level, func(t *testing.T) {
				e := newEnv(t)
				p, envelope := r.setup(e)
				p.level = level
				for i, m := range w.msg {
					if m == e0versionPlaceholder {
						w.msg[i] = e.versionARN
					}
				}
				res, err := e.verify(e.verifier(p), envelope)
				check(t, e, res, err, w)
			})
		}
	}
}

// e0versionPlaceholder in a want.msg stands for the env's profile-version ARN.
const e0versionPlaceholder = "<profile version ARN>"

// p256Leaf replaces the chain's leaf by a P-256 one, signing with alg.
func p256Leaf(e *env, alg string) func(*sigkit.Spec) {
	return func(s *sigkit.Spec) {
		now := time.Now()
		reg, err := e.emu.CA().Regional("us-west-2")
		if err != nil {
			e.t.Fatal(err)
		}
		spec := sigkit.LeafSpec(now.Add(-time.Hour), now.Add(48*time.Hour))
		spec.Curve = elliptic.P256()
		leaf, err := sigkit.NewCert(spec, reg)
		if err != nil {
			e.t.Fatal(err)
		}
		chain, _, _ := e.emu.CA().Chain("us-west-2", now)
		s.Chain, s.Key, s.Alg = append([]*x509.Certificate{leaf.Cert}, chain[1:]...), leaf.Key, alg
	}
}
