package verification_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

func TestResultCarriesFacts(t *testing.T) {
	e := newEnv(t)
	res, err := e.verify(e.verifier(policyOpts{}), e.signed)
	if err != nil {
		t.Fatal(err)
	}
	if res.SigningProfileARN != e.profileARN || res.SigningProfileVersionARN != e.versionARN || res.SigningJobARN != e.jobARN {
		t.Fatalf("ARNs: %+v", res)
	}
	if res.MatchedIdentity != e.profileARN || res.Level != "strict" || res.Policy != "team" || res.RevocationRegion != "us-west-2" {
		t.Fatalf("identity/level/policy/region: %+v", res)
	}
	if time.Since(res.SigningTime) > time.Minute || !res.Expiry.Equal(res.SigningTime.AddDate(0, 12, 0)) {
		t.Fatalf("signing time %s, expiry %s (profile validity 12 months)", res.SigningTime, res.Expiry)
	}
	var names []string
	for _, c := range res.Checks {
		names = append(names, c.Name)
		if c.Outcome != verification.Passed || c.Action != "enforce" {
			t.Errorf("check %+v", c)
		}
	}
	if got := strings.Join(names, ","); got != "integrity,authenticity,trustedIdentity,expiry,authenticTimestamp,revocation" {
		t.Fatalf("checks %s", got)
	}
	if c, _ := res.Check(verification.CheckTrustedIdentity); c.Detail != "matched "+e.profileARN {
		t.Fatalf("identity detail %q", c.Detail)
	}
	for _, s := range []string{e.versionARN, e.jobARN, "revocation: notRevoked"} {
		if !strings.Contains(message(res, nil), s) {
			t.Errorf("message lacks %q: %s", s, message(res, nil))
		}
	}
}

func TestSignerThatNeverAnswersFailsWithinBudget(t *testing.T) {
	e := newEnv(t)
	e.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Hang: true})
	const budget = time.Second
	v := e.verifier(policyOpts{timeout: budget.String()})
	start := time.Now()
	res, err := e.verify(v, e.signed)
	took := time.Since(start)
	if !errors.Is(err, verification.ErrUnavailable) || res.RevocationStatus != verification.RevocationUnavailable {
		t.Fatalf("want could-not-check, got %v (%s)", err, res.RevocationStatus)
	}
	if !strings.Contains(err.Error(), "did not answer within the revocation time budget") {
		t.Errorf("message does not explain the timeout: %v", err)
	}
	if took > budget+200*time.Millisecond {
		t.Fatalf("took %s, budget %s + 200ms", took, budget)
	}
	t.Logf("hung Signer refused after %s (budget %s)", took, budget)
}

func TestRevocationAnswerIsCached(t *testing.T) {
	e := newEnv(t)
	v := e.verifier(policyOpts{cacheTTL: "5m"})
	first, err := e.verify(v, e.signed)
	if err != nil || first.RevocationCached {
		t.Fatalf("first: %v cached=%v", err, first.RevocationCached)
	}
	for i := 0; i < 5; i++ {
		res, err := e.verify(v, e.signed)
		if err != nil || !res.RevocationCached {
			t.Fatalf("repeat %d: %v cached=%v", i, err, res.RevocationCached)
		}
	}
	if n := e.emu.Count(signeremu.OpGetRevocationStatus); n != 1 {
		t.Fatalf("%d GetRevocationStatus calls for 6 verifications, want 1", n)
	}
	// Errors are not cached: a failing Signer is asked every time.
	e2 := newEnv(t)
	e2.emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 403, Code: "AccessDeniedException"})
	v2 := e2.verifier(policyOpts{cacheTTL: "5m", level: "permissive"})
	for i := 0; i < 2; i++ {
		if res, _ := e2.verify(v2, e2.signed); res.RevocationStatus != verification.RevocationUnavailable || res.RevocationCached {
			t.Fatalf("error answer cached or lost: %+v", res)
		}
	}
	if n := e2.emu.Count(signeremu.OpGetRevocationStatus); n != 2 {
		t.Fatalf("%d calls, want 2 (errors are never cached)", n)
	}
}

func TestRegionComesFromTheProfileARN(t *testing.T) {
	e := newEnv(t)
	for _, region := range []string{"us-gov-west-1", "eu-central-1"} {
		_, version, err := e.emu.CreateProfileIn(region, "Regional", 12)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(version, ":"+region+":") {
			t.Fatalf("version ARN %s not in %s", version, region)
		}
		job := strings.Replace(version, "/signing-profiles/Regional/", "/signing-jobs/", 1)
		envelope := e.sign(func(s *sigkit.Spec) { s.ProfileVersionARN, s.JobARN = version, job })
		res, err := e.verify(e.verifier(policyOpts{identities: []string{version}}), envelope)
		if err != nil {
			t.Fatalf("%s: %v", region, err)
		}
		if res.RevocationRegion != region {
			t.Fatalf("asked %q, want %q", res.RevocationRegion, region)
		}
	}
	// The override wins.
	res, err := e.verify(e.verifier(policyOpts{region: "ap-southeast-2"}), e.signed)
	if err != nil || res.RevocationRegion != "ap-southeast-2" {
		t.Fatalf("override: %v region %q", err, res.RevocationRegion)
	}
}

func TestEndpointAndCredentialsFromEnvironment(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", e.emu.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-access-key-of-40-characters")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfgJSON := bytes.Replace(e.configJSON(policyOpts{}), []byte(`"endpoint":"`+e.emu.URL()+`"`), []byte(`"endpoint":""`), 1)
	cfg, err := config.Decode(cfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AWS.Endpoint != "" {
		t.Fatal("endpoint still configured; the test must rely on AWS_ENDPOINT_URL_SIGNER")
	}
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.MemoryCache}) // SDK default chain
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.verify(v, e.signed)
	if err != nil || res.RevocationStatus != verification.RevocationNotRevoked {
		t.Fatalf("%v %+v", err, res)
	}
	if n := e.emu.Count(signeremu.OpGetRevocationStatus); n != 1 {
		t.Fatalf("%d calls reached the emulator", n)
	}
}

func TestSkipLevelChecksNothing(t *testing.T) {
	e := newEnv(t)
	res, err := e.verify(e.verifier(policyOpts{level: "skip"}), []byte("not even an envelope"))
	if err != nil || !res.Verified || res.RevocationStatus != verification.RevocationSkipped {
		t.Fatalf("%v %+v", err, res)
	}
	for _, c := range res.Checks {
		if c.Outcome != verification.Skipped {
			t.Fatalf("check %+v", c)
		}
	}
	if e.emu.Count(signeremu.OpGetRevocationStatus) != 0 {
		t.Fatal("skip level called AWS")
	}
}

func TestWildcardIdentityRefusedAtEveryLevel(t *testing.T) {
	e := newEnv(t)
	store, err := truststore.New(map[string]map[string][]string{"signingAuthority": {truststore.AWSSignerStore: {string(e.emu.CA().RootPEM())}}})
	if err != nil {
		t.Fatal(err)
	}
	// The config decoder refuses "*" up front...
	if _, err := config.Decode(bytes.Replace(e.configJSON(policyOpts{}), []byte(`"trustedIdentities":["`+e.profileARN+`"]`), []byte(`"trustedIdentities":["*"]`), 1)); err == nil || !strings.Contains(err.Error(), "trustedIdentities[0]: wildcard identity is not supported") {
		t.Fatalf("config: %v", err)
	}
	// ...and the core refuses it as AWS's plugin does, whatever the level.
	for _, level := range levels {
		doc := &trustpolicy.Document{Version: "1.0", TrustPolicies: []trustpolicy.TrustPolicy{{
			Name: "any", RegistryScopes: []string{"*"}, SignatureVerification: trustpolicy.SignatureVerification{VerificationLevel: level},
			TrustStores: []string{"signingAuthority:aws-signer-ts"}, TrustedIdentities: []string{"*"},
		}}}
		v, err := verification.New(verification.Options{Policy: doc, TrustStore: store, Revocation: &revocation.SignerChecker{}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.verify(v, e.signed)
		var ve *verification.Error
		if !errors.As(err, &ve) || ve.Reason != verification.ReasonInvalidAttributes || !strings.Contains(message(res, err), "does not support wildcard identity") {
			t.Fatalf("%s: %v", level, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	v := e.verifier(policyOpts{})
	ctx := context.Background()
	for name, in := range map[string]verification.Input{
		"no repository":     {Envelope: e.signed, MediaType: sigkit.MediaTypeJWS, Subject: e.subject},
		"repository digest": {Envelope: e.signed, MediaType: sigkit.MediaTypeJWS, Subject: e.subject, Repository: repo + "@" + e.subject.Digest.String()},
		"bad digest":        {Envelope: e.signed, MediaType: sigkit.MediaTypeJWS, Subject: ocispec.Descriptor{Digest: "sha256:zz"}, Repository: repo},
	} {
		if _, err := v.Verify(ctx, in); !errors.Is(err, verification.ErrUnavailable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	big := make([]byte, signature.MaxEnvelopeSize+1)
	if _, err := v.Verify(ctx, verification.Input{Envelope: big, MediaType: sigkit.MediaTypeJWS, Subject: e.subject, Repository: repo}); !errors.Is(err, verification.ErrRefused) || !strings.Contains(err.Error(), "over the") {
		t.Errorf("oversized: %v", err)
	}
	if _, err := v.Verify(ctx, verification.Input{Envelope: e.signed, MediaType: "application/cose", Subject: e.subject, Repository: repo}); !errors.Is(err, verification.ErrRefused) {
		t.Errorf("wrong media type: %v", err)
	}
}
