package signature

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// memStore is a narrow fake of a registry: content by digest, with
// injectable errors and bodies that differ from what was stored.
type memStore struct {
	content map[digest.Digest][]byte
	err     map[digest.Digest]error
	body    map[digest.Digest]io.Reader
}

func (m *memStore) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if err := m.err[d.Digest]; err != nil {
		return nil, err
	}
	if b := m.body[d.Digest]; b != nil {
		return io.NopCloser(b), nil
	}
	c, ok := m.content[d.Digest]
	if !ok {
		return nil, errors.New("not found")
	}
	return io.NopCloser(bytes.NewReader(c)), nil
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '{'
	}
	return len(p), nil
}

type fixture struct {
	store    *memStore
	manifest ocispec.Manifest
	envelope []byte
	subject  ocispec.Descriptor
}

func newFixture() *fixture {
	env := []byte(`{"payload":"e30","protected":"e30","header":{},"signature":"AA"}`)
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 10}
	f := &fixture{store: &memStore{content: map[digest.Digest][]byte{}, err: map[digest.Digest]error{}, body: map[digest.Digest]io.Reader{}}, envelope: env, subject: subject}
	f.manifest = ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{f.put(MediaTypeJWS, env, digest.SHA256)},
		Subject:      &subject,
	}
	return f
}

func (f *fixture) put(mediaType string, b []byte, alg digest.Algorithm) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: alg.FromBytes(b), Size: int64(len(b))}
	f.store.content[d.Digest] = b
	return d
}

// manifestDesc stores the manifest and returns its descriptor.
func (f *fixture) manifestDesc() ocispec.Descriptor {
	raw, _ := json.Marshal(f.manifest)
	d := f.put(ocispec.MediaTypeImageManifest, raw, digest.SHA256)
	d.ArtifactType = ArtifactType
	return d
}

func TestReadAcceptsANotationJWSSignature(t *testing.T) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		f := newFixture()
		f.manifest.Layers[0] = f.put(MediaTypeJWS, f.envelope, alg)
		s, err := Read(context.Background(), f.store, f.manifestDesc(), f.subject.Digest)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if !bytes.Equal(s.Envelope, f.envelope) || s.EnvelopeDescriptor.MediaType != MediaTypeJWS || s.Subject.Digest != f.subject.Digest {
			t.Fatalf("%s: %+v", alg, s)
		}
	}
}

func TestReadRefusals(t *testing.T) {
	boom := errors.New("connection refused")
	for _, tc := range []struct {
		name   string
		mutate func(f *fixture, d *ocispec.Descriptor)
		kind   error
		msg    string
	}{
		{"another artifact type in the listing", func(f *fixture, d *ocispec.Descriptor) { d.ArtifactType = "application/spdx+json" }, ErrNotSignature, "not a Notation signature"},
		{"not an image manifest", func(f *fixture, d *ocispec.Descriptor) { d.MediaType = "application/vnd.oci.artifact.manifest.v1+json" }, ErrNotSignature, "OCI image manifests"},
		{"manifest of another artifact type", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.ArtifactType = "application/vnd.oci.empty.v1+json"
			*d = f.manifestDesc()
		}, ErrNotSignature, "is not a Notation signature"},
		{"no envelope", func(f *fixture, d *ocispec.Descriptor) { f.manifest.Layers = nil; *d = f.manifestDesc() }, ErrNotSignature, "has 0 layers"},
		{"two envelopes", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.Layers = append(f.manifest.Layers, f.manifest.Layers[0])
			*d = f.manifestDesc()
		}, ErrNotSignature, "has 2 layers"},
		{"COSE envelope", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.Layers[0] = f.put("application/cose", []byte("cose"), digest.SHA256)
			*d = f.manifestDesc()
		}, ErrNotSignature, `"application/cose"`},
		{"oversized envelope declared", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.Layers[0].Size = MaxEnvelopeSize + 1
			*d = f.manifestDesc()
		}, ErrTooLarge, "not fetched"},
		{"oversized manifest declared", func(f *fixture, d *ocispec.Descriptor) { d.Size = MaxManifestSize + 1 }, ErrTooLarge, "not fetched"},
		{"descriptor without size", func(f *fixture, d *ocispec.Descriptor) { d.Size = 0 }, ErrNotSignature, "declares size 0"},
		{"endless envelope body", func(f *fixture, d *ocispec.Descriptor) {
			f.store.body[f.manifest.Layers[0].Digest] = endless{}
		}, ErrTooLarge, "more than the"},
		{"short envelope body", func(f *fixture, d *ocispec.Descriptor) {
			f.store.body[f.manifest.Layers[0].Digest] = strings.NewReader("{")
		}, ErrDigestMismatch, "sent 1 bytes"},
		{"sha256 envelope digest mismatch", func(f *fixture, d *ocispec.Descriptor) {
			f.store.content[f.manifest.Layers[0].Digest] = bytes.Repeat([]byte("x"), len(f.envelope))
		}, ErrDigestMismatch, "content has digest"},
		{"sha512 envelope digest mismatch", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.Layers[0] = f.put(MediaTypeJWS, f.envelope, digest.SHA512)
			f.store.content[f.manifest.Layers[0].Digest] = bytes.Repeat([]byte("x"), len(f.envelope))
			*d = f.manifestDesc()
		}, ErrDigestMismatch, "content has digest sha512:"},
		{"unsupported digest algorithm", func(f *fixture, d *ocispec.Descriptor) {
			f.manifest.Layers[0].Digest = digest.Digest("md5:d41d8cd98f00b204e9800998ecf8427e")
			*d = f.manifestDesc()
		}, ErrNotSignature, "unsupported algorithm"},
		{"manifest digest mismatch", func(f *fixture, d *ocispec.Descriptor) {
			f.store.content[d.Digest] = bytes.Repeat([]byte(" "), int(d.Size))
		}, ErrDigestMismatch, "signature manifest content has digest"},
		{"signature of another image", func(f *fixture, d *ocispec.Descriptor) {
			other := ocispec.Descriptor{Digest: digest.FromString("other")}
			f.manifest.Subject = &other
			*d = f.manifestDesc()
		}, ErrSubjectMismatch, "refers to"},
		{"registry down reading the manifest", func(f *fixture, d *ocispec.Descriptor) { f.store.err[d.Digest] = boom }, ErrUnavailable, "connection refused"},
		{"registry down reading the envelope", func(f *fixture, d *ocispec.Descriptor) { f.store.err[f.manifest.Layers[0].Digest] = boom }, ErrUnavailable, "could not read signature envelope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			d := f.manifestDesc()
			tc.mutate(f, &d)
			_, err := Read(context.Background(), f.store, d, f.subject.Digest)
			var se *Error
			if !errors.As(err, &se) || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.msg)
			}
			for _, other := range []error{ErrNotSignature, ErrTooLarge, ErrDigestMismatch, ErrSubjectMismatch, ErrUnavailable} {
				if other != tc.kind && errors.Is(err, other) {
					t.Fatalf("%v also matches %v", err, other)
				}
			}
		})
	}
}

func TestReadStopsAtTheDeadline(t *testing.T) {
	f := newFixture()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.store.err[f.manifest.Layers[0].Digest] = context.Canceled
	_, err := Read(ctx, f.store, f.manifestDesc(), "")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "deadline passed") {
		t.Fatalf("got %v", err)
	}
}

// FuzzRead: whatever manifest bytes a registry serves, Read returns a
// checked signature or an *Error; it never panics.
func FuzzRead(f *testing.F) {
	fx := newFixture()
	raw, _ := json.Marshal(fx.manifest)
	f.Add(raw)
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.notary.signature","layers":[{"mediaType":"application/jose+json","digest":"sha512:00","size":-1}]}`))
	f.Add([]byte(`{"layers":null}`))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		if len(manifest) == 0 {
			return
		}
		fx := newFixture()
		d := fx.put(ocispec.MediaTypeImageManifest, manifest, digest.SHA256)
		s, err := Read(context.Background(), fx.store, d, fx.subject.Digest)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if s.EnvelopeDescriptor.MediaType != MediaTypeJWS || int64(len(s.Envelope)) != s.EnvelopeDescriptor.Size {
			t.Fatalf("accepted %+v", s.EnvelopeDescriptor)
		}
	})
}

func TestDescribeDropsWhatARegistrySays(t *testing.T) {
	u, _ := url.Parse("https://user:pw@registry.example/v2/app/blobs/sha256:00?token=secret")
	err := &errcode.ErrorResponse{Method: "GET", URL: u, StatusCode: 403, Errors: errcode.Errors{
		{Code: "DENIED", Message: "denied for Basic dXNlcjpzM2NyZXQ="},
		{Code: "Basic dXNlcjpzM2NyZXQ=", Message: "x"},
	}}
	got := Describe(err)
	for _, leak := range []string{"dXNlcjpzM2NyZXQ=", "secret", "pw"} {
		if strings.Contains(got, leak) {
			t.Fatalf("Describe leaks %q: %s", leak, got)
		}
	}
	if !strings.Contains(got, "403 Forbidden (DENIED)") || !strings.Contains(got, "registry.example/v2/app/blobs") {
		t.Fatalf("Describe = %s", got)
	}
	if got := Describe(errors.New("dial tcp: denied for Bearer abc.def")); strings.Contains(got, "abc.def") {
		t.Fatalf("other errors are redacted: %s", got)
	}
}
