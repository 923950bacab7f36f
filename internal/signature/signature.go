// Package signature reads one Notation signature from a content store the
// way every path of this product must read it (the Ratify plugin, the
// command line and the provider): the signature manifest's shape (artifact
// type, exactly one JWS envelope), size limits checked before and while
// reading, the digest of every byte read for any algorithm the digest
// package supports, and the manifest's subject. It knows nothing of Ratify,
// of AWS or of how the store reaches its registry.
package signature

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Notation signature constants, defined once for the product.
const (
	// ArtifactType of Notation signature manifests.
	ArtifactType = "application/vnd.cncf.notary.signature"
	// MediaTypeJWS is the envelope media type AWS Signer produces. COSE
	// envelopes (application/cose) are refused: AWS Signer never makes them.
	MediaTypeJWS = "application/jose+json"
	// MaxManifestSize bounds a signature manifest (notation's limit).
	MaxManifestSize = 4 << 20
	// MaxEnvelopeSize bounds a signature envelope. notation allows 32 MiB;
	// an AWS Signer envelope is about 5 KiB (a JWS over a descriptor with
	// a chain of four certificates), and a 24 MiB envelope of 30,000
	// certificates took one plugin run to 214 MiB resident, over the
	// 128 MiB bound of a run. 4 MiB keeps every run under it.
	MaxEnvelopeSize = 4 << 20
)

// Fetcher reads content by descriptor; oras-go's content.Fetcher and
// *remote.Repository satisfy it. The descriptor's media type tells a
// manifest from a blob.
type Fetcher interface {
	Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error)
}

// Signature is a signature manifest that passed every check, with its
// envelope.
type Signature struct {
	// Manifest describes the signature manifest.
	Manifest ocispec.Descriptor
	// Subject is the manifest's subject (nil when it names none).
	Subject     *ocispec.Descriptor
	Annotations map[string]string
	// EnvelopeDescriptor describes Envelope (media type MediaTypeJWS).
	EnvelopeDescriptor ocispec.Descriptor
	Envelope           []byte
}

// Sentinels for errors.Is; every error Read returns is an *Error matching
// exactly one of them.
var (
	// ErrNotSignature: the referrer is not a Notation JWS signature.
	ErrNotSignature = errors.New("not a Notation JWS signature")
	// ErrTooLarge: declared or actual size over the limit, or a body
	// longer than its descriptor says.
	ErrTooLarge = errors.New("over the size limit")
	// ErrDigestMismatch: content does not match its descriptor.
	ErrDigestMismatch = errors.New("content does not match its descriptor")
	// ErrSubjectMismatch: the manifest signs another artifact.
	ErrSubjectMismatch = errors.New("signature manifest refers to another artifact")
	// ErrUnavailable: the store could not serve the content.
	ErrUnavailable = errors.New("could not read from the registry")
)

// Error is a signature that could not be read or was refused while read.
type Error struct {
	// Kind is one of the sentinels above.
	Kind error
	// Msg says what was checked, what was found and what to do.
	Msg string
	// Err is the store's error, for ErrUnavailable.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the store's error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Read fetches the signature manifest desc names and its envelope from f,
// checking everything before the envelope reaches the verifier. subject,
// when given, is the digest the signature must refer to.
func Read(ctx context.Context, f Fetcher, desc ocispec.Descriptor, subject digest.Digest) (*Signature, error) {
	if desc.ArtifactType != "" && desc.ArtifactType != ArtifactType {
		return nil, fail(ErrNotSignature, "referrer %s has artifact type %q, not a Notation signature (%s); only Notation signatures are verified here", desc.Digest, desc.ArtifactType, ArtifactType)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fail(ErrNotSignature, "referrer %s has media type %q; Notation signatures are OCI image manifests (%s)", desc.Digest, desc.MediaType, ocispec.MediaTypeImageManifest)
	}
	raw, err := fetch(ctx, f, desc, "signature manifest", MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fail(ErrNotSignature, "signature manifest %s is not an OCI image manifest: %v", desc.Digest, err)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return nil, fail(ErrNotSignature, "signature manifest %s says media type %q but was listed as %q", desc.Digest, m.MediaType, desc.MediaType)
	}
	artifactType := m.ArtifactType
	if artifactType == "" {
		artifactType = m.Config.MediaType
	}
	if artifactType != ArtifactType {
		return nil, fail(ErrNotSignature, "manifest %s is not a Notation signature: artifact type %q, want %s", desc.Digest, artifactType, ArtifactType)
	}
	if len(m.Layers) != 1 {
		return nil, fail(ErrNotSignature, "signature manifest %s has %d layers; a Notation signature has exactly one envelope", desc.Digest, len(m.Layers))
	}
	layer := m.Layers[0]
	if layer.MediaType != MediaTypeJWS {
		return nil, fail(ErrNotSignature, "signature manifest %s has an envelope of media type %q; AWS Signer signatures are %s (COSE and other envelopes are refused)", desc.Digest, layer.MediaType, MediaTypeJWS)
	}
	if subject != "" && m.Subject != nil && m.Subject.Digest != subject {
		return nil, fail(ErrSubjectMismatch, "signature manifest %s refers to %s, not to the verified image %s", desc.Digest, m.Subject.Digest, subject)
	}
	env, err := fetch(ctx, f, layer, "signature envelope", MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	return &Signature{Manifest: desc, Subject: m.Subject, Annotations: m.Annotations, EnvelopeDescriptor: layer, Envelope: env}, nil
}

// fetch reads the content d describes: its declared size must be within
// limit, at most that many bytes are read, and they must match its digest.
func fetch(ctx context.Context, f Fetcher, d ocispec.Descriptor, what string, limit int64) ([]byte, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fail(ErrNotSignature, "%s digest %q is invalid or of an unsupported algorithm: %v", what, d.Digest, err)
	}
	if d.Size <= 0 {
		return nil, fail(ErrNotSignature, "%s %s declares size %d; a descriptor must give the content's size", what, d.Digest, d.Size)
	}
	if d.Size > limit {
		return nil, fail(ErrTooLarge, "%s %s is %d bytes, over the %d-byte limit; not fetched", what, d.Digest, d.Size, limit)
	}
	rc, err := f.Fetch(ctx, d)
	if err != nil {
		return nil, unavailable(ctx, what, d, err)
	}
	defer rc.Close()
	buf := make([]byte, d.Size+1)
	n, err := io.ReadFull(rc, buf)
	switch {
	case n > int(d.Size):
		return nil, fail(ErrTooLarge, "%s %s: the registry sent more than the %d bytes its descriptor declares; refused", what, d.Digest, d.Size)
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		// The body ended: at most d.Size bytes.
	case err != nil:
		return nil, unavailable(ctx, what, d, err)
	}
	buf = buf[:n]
	if int64(n) != d.Size {
		return nil, fail(ErrDigestMismatch, "%s %s: the registry sent %d bytes, not the %d its descriptor declares", what, d.Digest, n, d.Size)
	}
	if got := d.Digest.Algorithm().FromBytes(buf); got != d.Digest {
		return nil, fail(ErrDigestMismatch, "%s content has digest %s, not the %s its descriptor names; the registry served other content", what, got, d.Digest)
	}
	return buf, nil
}

func unavailable(ctx context.Context, what string, d ocispec.Descriptor, err error) *Error {
	msg := fmt.Sprintf("could not read %s %s: %s; %s", what, d.Digest, Describe(err), Hint(err))
	if ctx.Err() != nil {
		msg = fmt.Sprintf("could not read %s %s: the deadline passed (%v); the registry is too slow or unreachable", what, d.Digest, ctx.Err())
	}
	return &Error{Kind: ErrUnavailable, Msg: msg, Err: err}
}
