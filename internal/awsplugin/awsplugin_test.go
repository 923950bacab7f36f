package awsplugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/notaryproject/notation-plugin-framework-go/plugin"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
)

const (
	sigARN     = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/MyProfile/AbCdEf1234"
	profileARN = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/MyProfile"
)

type fakeChecker struct {
	answer revocation.Answer
	err    error
	calls  int
	got    revocation.Request
}

func (f *fakeChecker) Check(_ context.Context, r revocation.Request) (revocation.Answer, error) {
	f.calls++
	f.got = r
	return f.answer, f.err
}

func request(identities []string, caps ...plugin.Capability) *plugin.VerifySignatureRequest {
	ts := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return &plugin.VerifySignatureRequest{
		ContractVersion: "1.0",
		Signature: plugin.Signature{
			CriticalAttributes: plugin.CriticalAttributes{
				ContentType:          "application/vnd.cncf.notary.payload.v1+json",
				SigningScheme:        "notary.x509.signingAuthority",
				AuthenticSigningTime: &ts,
				ExtendedAttributes:   map[string]interface{}{awssigner.AttrProfileVersion: sigARN, awssigner.AttrSigningJob: "arn:aws:signer:us-west-2:111122223333:/signing-jobs/j"},
			},
			CertificateChain: knownChainDER,
		},
		TrustPolicy: plugin.TrustPolicy{TrustedIdentities: identities, SignatureVerification: caps},
	}
}

func TestVerifySignatureRequestErrors(t *testing.T) {
	both := []plugin.Capability{plugin.CapabilityTrustedIdentityVerifier, plugin.CapabilityRevocationCheckVerifier}
	for _, tc := range []struct {
		name   string
		mutate func(*plugin.VerifySignatureRequest)
		code   plugin.ErrorCode
		msg    string
	}{
		{"contract version", func(r *plugin.VerifySignatureRequest) { r.ContractVersion = "2.0" }, plugin.ErrorCodeUnsupportedContractVersion, "2.0"},
		{"wildcard", func(r *plugin.VerifySignatureRequest) { r.TrustPolicy.TrustedIdentities = []string{profileARN, "*"} }, plugin.ErrorCodeValidation, "does not support wildcard identity"},
		{"capability", func(r *plugin.VerifySignatureRequest) {
			r.TrustPolicy.SignatureVerification = append(r.TrustPolicy.SignatureVerification, plugin.CapabilityEnvelopeGenerator)
		}, plugin.ErrorCodeValidation, "not a supported capability"},
		{"no signing time", func(r *plugin.VerifySignatureRequest) { r.Signature.CriticalAttributes.AuthenticSigningTime = nil }, plugin.ErrorCodeValidation, "missing authenticSigningTime"},
		{"scheme", func(r *plugin.VerifySignatureRequest) { r.Signature.CriticalAttributes.SigningScheme = "notary.x509" }, plugin.ErrorCodeValidation, "'notary.x509' signing scheme is not supported"},
		{"profile attribute not a string", func(r *plugin.VerifySignatureRequest) {
			r.Signature.CriticalAttributes.ExtendedAttributes[awssigner.AttrProfileVersion] = 42.0
		}, plugin.ErrorCodeValidation, `unable to parse attribute "com.amazonaws.signer.signingProfileVersion"`},
		{"job attribute missing", func(r *plugin.VerifySignatureRequest) {
			delete(r.Signature.CriticalAttributes.ExtendedAttributes, awssigner.AttrSigningJob)
		}, plugin.ErrorCodeValidation, `unable to parse attribute "com.amazonaws.signer.signingJob"`},
		{"bad chain", func(r *plugin.VerifySignatureRequest) { r.Signature.CertificateChain = [][]byte{[]byte("x")} }, plugin.ErrorCodeValidation, "unable to parse certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request([]string{profileARN}, both...)
			tc.mutate(req)
			p := &Plugin{Revocation: &fakeChecker{}}
			_, err := p.VerifySignature(context.Background(), req)
			var perr *plugin.Error
			if !errors.As(err, &perr) || perr.ErrCode != tc.code || !strings.Contains(perr.Message, tc.msg) {
				t.Fatalf("got %v, want %s containing %q", err, tc.code, tc.msg)
			}
		})
	}
	if _, err := (&Plugin{}).VerifySignature(context.Background(), nil); err == nil {
		t.Fatal("nil request accepted")
	}
}

func TestVerifySignatureResults(t *testing.T) {
	both := []plugin.Capability{plugin.CapabilityTrustedIdentityVerifier, plugin.CapabilityRevocationCheckVerifier}
	ctx := context.Background()

	t.Run("trusted and not revoked", func(t *testing.T) {
		fc := &fakeChecker{}
		rec := &Record{}
		resp, err := (&Plugin{Revocation: fc}).VerifySignature(WithRecord(ctx, rec), request([]string{profileARN}, both...))
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.VerificationResults[plugin.CapabilityTrustedIdentityVerifier]; !r.Success || r.Reason != `Signature publisher matched "`+profileARN+`" trusted identity.` {
			t.Fatalf("identity: %+v", r)
		}
		if r := resp.VerificationResults[plugin.CapabilityRevocationCheckVerifier]; !r.Success || r.Reason != "Signature is not revoked." {
			t.Fatalf("revocation: %+v", r)
		}
		if len(resp.ProcessedAttributes) != 2 || resp.ProcessedAttributes[0] != awssigner.AttrProfileVersion || resp.ProcessedAttributes[1] != awssigner.AttrSigningJob {
			t.Fatalf("processed attributes: %v", resp.ProcessedAttributes)
		}
		if fc.calls != 1 || fc.got.ProfileVersionARN != sigARN || len(fc.got.CertificateHashes) != 4 || !fc.got.SigningTime.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("revocation request: %+v", fc.got)
		}
		if !rec.Invoked || rec.Identity.Matched != profileARN || !rec.Revocation.Checked {
			t.Fatalf("record: %+v", rec)
		}
	})
	t.Run("untrusted still asks AWS unless told the identity is enforced", func(t *testing.T) {
		fc := &fakeChecker{}
		resp, err := (&Plugin{Revocation: fc}).VerifySignature(ctx, request([]string{"arn:aws:signer:us-west-2:1:/signing-profiles/Other"}, both...))
		if err != nil || resp.VerificationResults[plugin.CapabilityTrustedIdentityVerifier].Success || fc.calls != 1 {
			t.Fatalf("resp %+v err %v calls %d", resp, err, fc.calls)
		}
		if resp.VerificationResults[plugin.CapabilityTrustedIdentityVerifier].Reason != "Signature publisher doesn't match any trusted identities." {
			t.Fatal(resp.VerificationResults[plugin.CapabilityTrustedIdentityVerifier].Reason)
		}
		req := request([]string{"arn:aws:signer:us-west-2:1:/signing-profiles/Other"}, both...)
		req.PluginConfig = map[string]string{ConfigSkipRevocationOnUntrusted: "true"}
		resp, _ = (&Plugin{Revocation: fc}).VerifySignature(ctx, req)
		if fc.calls != 1 || resp.VerificationResults[plugin.CapabilityRevocationCheckVerifier] == nil {
			t.Fatalf("AWS called for an enforced-untrusted signature (calls %d) or result missing", fc.calls)
		}
	})
	t.Run("AWS error is a failed result, not a plugin error", func(t *testing.T) {
		fc := &fakeChecker{err: errors.New("throttled")}
		resp, err := (&Plugin{Revocation: fc}).VerifySignature(ctx, request([]string{profileARN}, both...))
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.VerificationResults[plugin.CapabilityRevocationCheckVerifier]; r.Success || r.Reason != "GetRevocationStatus call failed with error: throttled" {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		fc := &fakeChecker{answer: revocation.Answer{Revoked: []string{"arn:aws:signer:us-west-2:111122223333:/signing-jobs/j"}}}
		resp, _ := (&Plugin{Revocation: fc}).VerifySignature(ctx, request([]string{profileARN}, both...))
		if r := resp.VerificationResults[plugin.CapabilityRevocationCheckVerifier]; r.Success || !strings.Contains(r.Reason, "signing-jobs/j have been revoked") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("only requested capabilities", func(t *testing.T) {
		fc := &fakeChecker{}
		resp, _ := (&Plugin{Revocation: fc}).VerifySignature(ctx, request([]string{profileARN}, plugin.CapabilityTrustedIdentityVerifier))
		if len(resp.VerificationResults) != 1 || fc.calls != 0 || len(resp.ProcessedAttributes) != 2 {
			t.Fatalf("results %v calls %d processed %v", resp.VerificationResults, fc.calls, resp.ProcessedAttributes)
		}
	})
}

func TestManagerAndMetadata(t *testing.T) {
	m := Manager{Plugin: &Plugin{}}
	if _, err := m.Get(context.Background(), "com.example.other"); err == nil {
		t.Fatal("another plugin name was served")
	}
	p, err := m.Get(context.Background(), awssigner.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := p.GetMetadata(context.Background(), &plugin.GetMetadataRequest{})
	if md.Name != awssigner.PluginName || md.Version != DefaultVersion || len(md.Capabilities) != 2 {
		t.Fatalf("%+v", md)
	}
	if _, err := p.GenerateEnvelope(context.Background(), nil); err == nil {
		t.Fatal("signing should be unsupported")
	}
}
