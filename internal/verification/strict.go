package verification

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

// AWS Signer produces exactly one shape of envelope: a JWS with a
// protected header free of duplicate keys, alg ES384 over a P-384 leaf,
// and a signing time that is not in the future. notation-go accepts more
// (duplicate keys with the last value winning, ES256 leaves, any signing
// time inside the certificates' validity), so these are checked before
// notation runs: refusing them costs no real AWS Signer signature.

// maxJSONDepth bounds nesting in the envelope and its protected header.
const maxJSONDepth = 32

// maxChain bounds the certificate chain: AWS Signer's has four (leaf,
// regional CA, intermediate, root).
const maxChain = 10

// jwsEnvelope is the JSON serialization of a Notation JWS envelope.
type jwsEnvelope struct {
	Protected string `json:"protected"`
	Header    struct {
		X5C [][]byte `json:"x5c"`
	} `json:"header"`
}

// strictHeader is what the strict checks read from the protected header.
type strictHeader struct {
	Alg                  string `json:"alg"`
	SigningScheme        string `json:"io.cncf.notary.signingScheme"`
	VerificationPlugin   string `json:"io.cncf.notary.verificationPlugin"`
	AuthenticSigningTime string `json:"io.cncf.notary.authenticSigningTime"`
}

// envelopeFacts is what strictEnvelope established.
type envelopeFacts struct {
	header strictHeader
	// signingTime is the authentic signing time (zero when absent).
	signingTime time.Time
}

// strictEnvelope checks the envelope's shape; it returns the protected
// header's facts, or an *Error that refuses the signature at every level.
func strictEnvelope(envelope []byte, mediaType string) (envelopeFacts, *Error) {
	var f envelopeFacts
	if mediaType != signature.MediaTypeJWS {
		return f, refused(ReasonNotAWSSigner, CheckIntegrity, fmt.Sprintf("envelope media type %q is not %s; AWS Signer signatures are JWS", mediaType, signature.MediaTypeJWS), nil)
	}
	if err := uniqueKeys(envelope); err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope is not a valid JWS: %v", err), err)
	}
	var env jwsEnvelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope is not a valid JWS: %v", err), err)
	}
	protected, err := base64.RawURLEncoding.DecodeString(env.Protected)
	if err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope's protected header is not base64url: %v", err), err)
	}
	if err := uniqueKeys(protected); err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope's protected header is ambiguous: %v; AWS Signer never writes such a header", err), err)
	}
	if err := json.Unmarshal(protected, &f.header); err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope's protected header is not valid: %v", err), err)
	}
	if t := f.header.AuthenticSigningTime; t != "" {
		if f.signingTime, err = time.Parse(time.RFC3339, t); err != nil {
			return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope's authentic signing time %q is not RFC 3339", t), err)
		}
	}
	if n := len(env.Header.X5C); n > maxChain {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signature envelope carries a chain of %d certificates, more than %d; AWS Signer chains have 4", n, maxChain), nil)
	}
	if f.header.VerificationPlugin != awssigner.PluginName || f.header.SigningScheme != awssigner.SigningScheme {
		return f, nil // not an AWS Signer signature: the later checks say so
	}
	if f.header.Alg != "ES384" {
		return f, refused(ReasonAlgorithm, CheckIntegrity, fmt.Sprintf("signature algorithm %q is not ES384; AWS Signer signs Notation signatures only with ECDSA P-384 and SHA-384 (platform %s)", f.header.Alg, awssigner.PlatformID), nil)
	}
	if len(env.Header.X5C) == 0 {
		return f, refused(ReasonIntegrity, CheckIntegrity, "signature envelope carries no certificate chain (x5c)", nil)
	}
	leaf, err := x509.ParseCertificate(env.Header.X5C[0])
	if err != nil {
		return f, refused(ReasonIntegrity, CheckIntegrity, fmt.Sprintf("signing certificate cannot be parsed: %v", err), err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
		return f, refused(ReasonAlgorithm, CheckIntegrity, fmt.Sprintf("signing certificate %q has a %s key, not ECDSA P-384; AWS Signer issues only P-384 signing certificates", leaf.Subject, keyName(leaf.PublicKey)), nil)
	}
	return f, nil
}

func keyName(k any) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case nil:
		return "missing"
	}
	return fmt.Sprintf("%T", k)
}

// uniqueKeys reports an object that names a key twice, at any depth, and
// nesting deeper than maxJSONDepth.
func uniqueKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := uniqueValue(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func uniqueValue(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			if seen[k] {
				return fmt.Errorf("key %q appears twice", k)
			}
			seen[k] = true
			if err := uniqueValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := uniqueValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}
