package verification_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// The fixture is an AWS-shaped envelope checked in under testdata, signed
// by a throw-away CA whose root is beside it; it expires in 2046.
const fixtureProfile = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Fixture"

type fixture struct {
	envelope []byte
	subject  ocispec.Descriptor
	root     []byte
}

func loadFixture(tb testing.TB) fixture {
	tb.Helper()
	var f fixture
	var err error
	if f.envelope, err = os.ReadFile("testdata/fixture-envelope.jws"); err != nil {
		tb.Fatal(err)
	}
	if f.root, err = os.ReadFile("testdata/fixture-root.pem"); err != nil {
		tb.Fatal(err)
	}
	subject, err := os.ReadFile("testdata/fixture-subject.json")
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(subject, &f.subject); err != nil {
		tb.Fatal(err)
	}
	return f
}

// notRevoked is a revocation.Checker that answers "not revoked" locally.
type notRevoked struct{}

func (notRevoked) Check(context.Context, revocation.Request) (revocation.Answer, error) {
	return revocation.Answer{}, nil
}

func fixtureVerifier(tb testing.TB, f fixture, checker revocation.Checker) *verification.Verifier {
	tb.Helper()
	store, err := truststore.New(map[string]map[string][]string{"signingAuthority": {truststore.AWSSignerStore: {string(f.root)}}})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := verification.New(verification.Options{
		Policy: &trustpolicy.Document{Version: "1.0", TrustPolicies: []trustpolicy.TrustPolicy{{
			Name: "all", RegistryScopes: []string{"*"}, SignatureVerification: trustpolicy.SignatureVerification{VerificationLevel: "strict"},
			TrustStores: []string{"signingAuthority:aws-signer-ts"}, TrustedIdentities: []string{fixtureProfile},
		}}},
		TrustStore: store,
		Revocation: checker,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestFixtureVerifies(t *testing.T) {
	f := loadFixture(t)
	res, err := fixtureVerifier(t, f, notRevoked{}).Verify(context.Background(), verification.Input{Envelope: f.envelope, MediaType: sigkit.MediaTypeJWS, Subject: f.subject, Repository: repo})
	if err != nil || res.SigningProfileARN != fixtureProfile {
		t.Fatalf("%v %+v", err, res)
	}
}

// FuzzVerifyEnvelope feeds arbitrary envelopes through the whole core: it
// must never panic, and every refusal must be a classified *Error.
func FuzzVerifyEnvelope(f *testing.F) {
	fx := loadFixture(f)
	v := fixtureVerifier(f, fx, notRevoked{})
	f.Add(fx.envelope)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"payload":"","protected":"","header":{"x5c":[]},"signature":""}`))
	f.Fuzz(func(t *testing.T, envelope []byte) {
		res, err := v.Verify(context.Background(), verification.Input{Envelope: envelope, MediaType: sigkit.MediaTypeJWS, Subject: fx.subject, Repository: repo})
		if res == nil {
			t.Fatal("nil result")
		}
		if res.Verified {
			if err != nil || res.SigningProfileARN != fixtureProfile {
				t.Fatalf("verified with err %v, profile %q", err, res.SigningProfileARN)
			}
			return
		}
		var ve *verification.Error
		if !errors.As(err, &ve) || (ve.Kind != verification.KindRefused && ve.Kind != verification.KindUnavailable) || ve.Msg == "" {
			t.Fatalf("unclassified refusal: %v (%T)", err, err)
		}
	})
}
