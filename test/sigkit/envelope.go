package sigkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"math/big"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Header names of a Notation JWS envelope and the AWS Signer attributes.
const (
	HeaderSigningScheme        = "io.cncf.notary.signingScheme"
	HeaderAuthenticSigningTime = "io.cncf.notary.authenticSigningTime"
	HeaderSigningTime          = "io.cncf.notary.signingTime"
	HeaderExpiry               = "io.cncf.notary.expiry"
	HeaderVerificationPlugin   = "io.cncf.notary.verificationPlugin"
	HeaderProfileVersion       = "com.amazonaws.signer.signingProfileVersion"
	HeaderSigningJob           = "com.amazonaws.signer.signingJob"

	PluginName          = "com.amazonaws.signer.notation.plugin"
	SchemeAuthority     = "notary.x509.signingAuthority"
	SchemeX509          = "notary.x509"
	MediaTypeJWS        = "application/jose+json"
	MediaTypePayload    = "application/vnd.cncf.notary.payload.v1+json"
	ArtifactTypeNotary  = "application/vnd.cncf.notary.signature"
	DefaultValidityDays = 365
)

// Spec describes one envelope. The zero values of the optional fields give
// the shape AWS Signer produces; every field can be changed to build a
// negative case.
type Spec struct {
	// Subject is the signed artifact's descriptor (required).
	Subject ocispec.Descriptor
	// ProfileVersionARN and JobARN are the AWS attributes (required unless
	// their header is deleted with Delete).
	ProfileVersionARN string
	JobARN            string
	// SigningTime defaults to now; Expiry defaults to SigningTime plus a
	// year. Set NoExpiry to leave the expiry header out.
	SigningTime time.Time
	Expiry      time.Time
	NoExpiry    bool

	// Chain and Key sign the envelope; both default to the CA's regional
	// chain for the profile's region at SigningTime.
	Chain []*x509.Certificate
	Key   *ecdsa.PrivateKey

	// Scheme defaults to notary.x509.signingAuthority. With notary.x509 the
	// time goes in io.cncf.notary.signingTime, as notation requires.
	Scheme string
	// Alg overrides the JWS alg header (default ES384).
	Alg string
	// Set adds or replaces protected headers; Critical marks the added
	// ones critical. Delete removes headers (also from crit).
	Set      map[string]any
	Critical []string
	Delete   []string
	// NonCritical lists headers left out of crit that AWS marks critical.
	NonCritical []string
	// Payload replaces the JWS payload bytes (default: the Notary payload of
	// Subject).
	Payload []byte
	// Tamper flips one bit of the signature after signing.
	Tamper bool

	// RawProtected, when set, is the protected header verbatim (its JSON
	// is not checked, so it may hold duplicate keys or be malformed); Alg,
	// Set, Critical, Delete and NonCritical are then ignored, except that
	// Alg still chooses the signing hash. ProtectedHeader gives the header
	// Build would make, to edit.
	RawProtected []byte
	// X5C, when set, is the unprotected x5c chain verbatim (DER
	// certificates in any order, of any length) instead of Chain's; Chain
	// and Key are still needed to sign.
	X5C [][]byte
}

// Envelope is a built envelope with the facts a test asserts on.
type Envelope struct {
	Raw         []byte
	MediaType   string
	SigningTime time.Time
	Expiry      time.Time
	Chain       []*x509.Certificate
}

// Region returns the region of an AWS ARN ("" when it has none).
func Region(arn string) string {
	var parts [6]string
	n, start := 0, 0
	for i := 0; i < len(arn) && n < 5; i++ {
		if arn[i] == ':' {
			parts[n] = arn[start:i]
			n++
			start = i + 1
		}
	}
	if n < 5 {
		return ""
	}
	return parts[3]
}

// Sign builds a JWS envelope from spec with the CA's chain for the region of
// the profile ARN.
func (ca *CA) Sign(spec Spec) (*Envelope, error) {
	if spec.SigningTime.IsZero() {
		spec.SigningTime = time.Now()
	}
	spec.SigningTime = spec.SigningTime.UTC().Truncate(time.Second)
	if spec.Chain == nil || spec.Key == nil {
		region := Region(spec.ProfileVersionARN)
		if region == "" {
			region = "us-west-2"
		}
		chain, key, err := ca.Chain(region, spec.SigningTime)
		if err != nil {
			return nil, err
		}
		if spec.Chain == nil {
			spec.Chain = chain
		}
		if spec.Key == nil {
			spec.Key = key
		}
	}
	return Build(spec)
}

// Build builds a JWS envelope from spec; Chain and Key must be set.
func Build(spec Spec) (*Envelope, error) {
	if spec.Key == nil || len(spec.Chain) == 0 {
		return nil, errors.New("sigkit: Build needs Chain and Key")
	}
	if spec.SigningTime.IsZero() {
		spec.SigningTime = time.Now()
	}
	spec.SigningTime = spec.SigningTime.UTC().Truncate(time.Second)
	if spec.Expiry.IsZero() && !spec.NoExpiry {
		spec.Expiry = spec.SigningTime.AddDate(0, 0, DefaultValidityDays)
	}
	spec.Expiry = spec.Expiry.UTC().Truncate(time.Second)
	alg := spec.Alg
	if alg == "" {
		alg = "ES384"
	}
	var err error
	protected := spec.RawProtected
	if protected == nil {
		if protected, err = protectedHeader(spec); err != nil {
			return nil, err
		}
	}
	payload := spec.Payload
	if payload == nil {
		payload, err = json.Marshal(map[string]any{"targetArtifact": spec.Subject})
		if err != nil {
			return nil, err
		}
	}
	b64 := base64.RawURLEncoding
	signingInput := b64.EncodeToString(protected) + "." + b64.EncodeToString(payload)
	sig, err := signES(spec.Key, alg, []byte(signingInput))
	if err != nil {
		return nil, err
	}
	if spec.Tamper {
		sig[len(sig)/2] ^= 0x01
	}
	x5c := spec.X5C
	if x5c == nil {
		x5c = make([][]byte, len(spec.Chain))
		for i, c := range spec.Chain {
			x5c[i] = c.Raw
		}
	}
	raw, err := json.Marshal(map[string]any{
		"payload":   b64.EncodeToString(payload),
		"protected": b64.EncodeToString(protected),
		"header":    map[string]any{"x5c": x5c},
		"signature": b64.EncodeToString(sig),
	})
	if err != nil {
		return nil, err
	}
	return &Envelope{Raw: raw, MediaType: MediaTypeJWS, SigningTime: spec.SigningTime, Expiry: spec.Expiry, Chain: spec.Chain}, nil
}

// ProtectedHeader returns the JSON protected header Build would make for
// spec (with Build's defaults for the signing time, expiry, scheme and
// alg), for a test to edit and pass back as RawProtected.
func ProtectedHeader(spec Spec) ([]byte, error) {
	if spec.SigningTime.IsZero() {
		spec.SigningTime = time.Now()
	}
	spec.SigningTime = spec.SigningTime.UTC().Truncate(time.Second)
	if spec.Expiry.IsZero() && !spec.NoExpiry {
		spec.Expiry = spec.SigningTime.AddDate(0, 0, DefaultValidityDays)
	}
	spec.Expiry = spec.Expiry.UTC().Truncate(time.Second)
	return protectedHeader(spec)
}

// protectedHeader builds the protected header of spec, whose times are
// already defaulted.
func protectedHeader(spec Spec) ([]byte, error) {
	scheme := spec.Scheme
	if scheme == "" {
		scheme = SchemeAuthority
	}
	alg := spec.Alg
	if alg == "" {
		alg = "ES384"
	}
	timeHeader := HeaderAuthenticSigningTime
	if scheme == SchemeX509 {
		timeHeader = HeaderSigningTime
	}

	header := map[string]any{
		"alg":                    alg,
		"cty":                    MediaTypePayload,
		HeaderSigningScheme:      scheme,
		timeHeader:               spec.SigningTime.Format(time.RFC3339),
		HeaderVerificationPlugin: PluginName,
		HeaderProfileVersion:     spec.ProfileVersionARN,
		HeaderSigningJob:         spec.JobARN,
	}
	crit := []string{HeaderSigningScheme, HeaderVerificationPlugin, HeaderProfileVersion, HeaderSigningJob}
	if scheme != SchemeX509 {
		// notation requires authenticSigningTime critical; signingTime is a
		// standard header that must not be listed.
		crit = append(crit, timeHeader)
	}
	if !spec.NoExpiry {
		header[HeaderExpiry] = spec.Expiry.Format(time.RFC3339)
		crit = append(crit, HeaderExpiry)
	}
	for k, v := range spec.Set {
		header[k] = v
	}
	crit = append(crit, spec.Critical...)
	drop := map[string]bool{}
	for _, k := range spec.Delete {
		delete(header, k)
		drop[k] = true
	}
	for _, k := range spec.NonCritical {
		drop[k] = true
	}
	kept := crit[:0]
	for _, k := range crit {
		if !drop[k] {
			kept = append(kept, k)
		}
	}
	header["crit"] = kept

	return json.Marshal(header)
}

// signES signs in JWS form (fixed-size r‖s). The hash follows alg so a
// mismatched alg still yields a well-formed signature.
func signES(key *ecdsa.PrivateKey, alg string, input []byte) ([]byte, error) {
	var h hash.Hash
	switch alg {
	case "ES256":
		h = sha256.New()
	case "ES512":
		h = sha512.New()
	default:
		h = crypto.SHA384.New()
	}
	h.Write(input)
	r, s, err := ecdsa.Sign(rand.Reader, key, h.Sum(nil))
	if err != nil {
		return nil, err
	}
	size := (key.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	fill(out[:size], r)
	fill(out[size:], s)
	return out, nil
}

func fill(dst []byte, n *big.Int) {
	b := n.Bytes()
	copy(dst[len(dst)-len(b):], b)
}

// Descriptor returns a descriptor for content of the given media type.
func Descriptor(mediaType string, content []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(content), Size: int64(len(content))}
}
