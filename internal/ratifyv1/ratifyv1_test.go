package ratifyv1

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ratify-project/ratify/pkg/common"
	"github.com/ratify-project/ratify/pkg/ocispecs"
	"github.com/ratify-project/ratify/pkg/referrerstore"
	storeconfig "github.com/ratify-project/ratify/pkg/referrerstore/config"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// fakeStore is a narrow fake of Ratify's referrer store: one subject, one
// signature manifest, blobs by digest, and injectable errors.
type fakeStore struct {
	subject     ocispec.Descriptor
	manifest    ocispecs.ReferenceManifest
	blobs       map[digest.Digest][]byte
	manifestErr error
	subjectErr  error
	blobErr     error
}

func (f *fakeStore) Name() string { return "fake" }
func (f *fakeStore) ListReferrers(context.Context, common.Reference, []string, string, *ocispecs.SubjectDescriptor) (referrerstore.ListReferrersResult, error) {
	return referrerstore.ListReferrersResult{}, nil
}
func (f *fakeStore) GetBlobContent(_ context.Context, _ common.Reference, d digest.Digest) ([]byte, error) {
	return f.blobs[d], f.blobErr
}
func (f *fakeStore) GetReferenceManifest(context.Context, common.Reference, ocispecs.ReferenceDescriptor) (ocispecs.ReferenceManifest, error) {
	return f.manifest, f.manifestErr
}
func (f *fakeStore) GetConfig() *storeconfig.StoreConfig { return &storeconfig.StoreConfig{} }
func (f *fakeStore) GetSubjectDescriptor(context.Context, common.Reference) (*ocispecs.SubjectDescriptor, error) {
	return &ocispecs.SubjectDescriptor{Descriptor: f.subject}, f.subjectErr
}

type notRevoked struct{}

func (notRevoked) Check(context.Context, revocation.Request) (revocation.Answer, error) {
	return revocation.Answer{}, nil
}

func TestVerifyRefusesWhatIsNotOneSignatureEnvelope(t *testing.T) {
	store, err := truststore.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verification.New(verification.Options{
		Policy: &trustpolicy.Document{Version: "1.0", TrustPolicies: []trustpolicy.TrustPolicy{{
			Name: "p", RegistryScopes: []string{"*"}, SignatureVerification: trustpolicy.SignatureVerification{VerificationLevel: "strict"},
			TrustStores: []string{"signingAuthority:aws-signer-ts"}, TrustedIdentities: []string{"arn:aws:signer:us-west-2:111122223333:/signing-profiles/P"},
		}}},
		TrustStore: store, Revocation: notRevoked{},
	})
	if err != nil {
		t.Fatal(err)
	}
	envelope := []byte(`{"payload":"e30","protected":"e30","header":{},"signature":"AA"}`)
	blob := ocispec.Descriptor{MediaType: "application/jose+json", Digest: digest.FromBytes(envelope), Size: int64(len(envelope))}
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 10}
	good := func() *fakeStore {
		return &fakeStore{
			subject:  subject,
			manifest: ocispecs.ReferenceManifest{ArtifactType: ArtifactType, Blobs: []ocispec.Descriptor{blob}, Subject: &subject},
			blobs:    map[digest.Digest][]byte{blob.Digest: envelope},
		}
	}
	ref := ocispecs.ReferenceDescriptor{Descriptor: ocispec.Descriptor{Digest: digest.FromString("sig")}, ArtifactType: ArtifactType}
	subjectRef := common.Reference{Path: "registry.example.com/team/app", Tag: "v1", Original: "registry.example.com/team/app:v1"}
	boom := errors.New("connection refused")
	for _, tc := range []struct {
		name   string
		mutate func(*fakeStore, *ocispecs.ReferenceDescriptor, *common.Reference)
		kind   error
		reason verification.Reason
		msg    string
	}{
		{"another artifact type", func(f *fakeStore, r *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			r.ArtifactType = "application/spdx+json"
		}, verification.ErrRefused, verification.ReasonNotAWSSigner, "not a Notation signature"},
		{"manifest not a signature", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			f.manifest.ArtifactType = "application/vnd.oci.empty.v1+json"
		}, verification.ErrRefused, verification.ReasonNotAWSSigner, "is not a Notation signature"},
		{"no envelope", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) { f.manifest.Blobs = nil }, verification.ErrRefused, verification.ReasonNotAWSSigner, "has 0 layers"},
		{"two envelopes", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			f.manifest.Blobs = append(f.manifest.Blobs, blob)
		}, verification.ErrRefused, verification.ReasonNotAWSSigner, "has 2 layers"},
		{"oversized envelope", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			f.manifest.Blobs[0].Size = MaxBlobSize + 1
		}, verification.ErrRefused, verification.ReasonIntegrity, "not fetched"},
		{"envelope media type", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			f.manifest.Blobs[0].MediaType = "text/plain"
		}, verification.ErrRefused, verification.ReasonNotAWSSigner, "text/plain"},
		{"envelope digest mismatch", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			f.blobs[blob.Digest] = []byte("other bytes")
		}, verification.ErrRefused, verification.ReasonIntegrity, "content has digest"},
		{"signature of another image", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) {
			other := ocispec.Descriptor{Digest: digest.FromString("other")}
			f.manifest.Subject = &other
		}, verification.ErrRefused, verification.ReasonSubjectMismatch, "refers to"},
		{"digest reference resolves elsewhere", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, s *common.Reference) {
			s.Digest = digest.FromString("pinned")
		}, verification.ErrRefused, verification.ReasonSubjectMismatch, "not to the digest"},
		{"registry down reading the manifest", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) { f.manifestErr = boom }, verification.ErrUnavailable, verification.ReasonRegistry, "connection refused"},
		{"registry down resolving the image", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) { f.subjectErr = boom }, verification.ErrUnavailable, verification.ReasonRegistry, "could not resolve"},
		{"registry down reading the envelope", func(f *fakeStore, _ *ocispecs.ReferenceDescriptor, _ *common.Reference) { f.blobErr = boom }, verification.ErrUnavailable, verification.ReasonRegistry, "could not read signature envelope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r, s := good(), ref, subjectRef
			tc.mutate(f, &r, &s)
			_, err := (&Plugin{}).verify(context.Background(), v, s, r, f)
			var ve *verification.Error
			if !errors.As(err, &ve) || !errors.Is(err, tc.kind) || ve.Reason != tc.reason || !strings.Contains(ve.Msg, tc.msg) {
				t.Fatalf("got %v (%+v), want %v %s containing %q", err, ve, tc.kind, tc.reason, tc.msg)
			}
			out := (&Outcome{Name: "verifier-awssigner", Signature: r.Digest, Err: err, Duration: time.Millisecond}).VerifierResult()
			if out.IsSuccess || out.Type != "verifier-awssigner" || !strings.Contains(out.Message, tc.msg) {
				t.Fatalf("result %+v", out)
			}
			ext := out.Extensions.(map[string]any)
			if ext["reason"] != string(tc.reason) || ext["revocationStatus"] != verification.RevocationNotChecked {
				t.Fatalf("extensions %v", ext)
			}
		})
	}
}
