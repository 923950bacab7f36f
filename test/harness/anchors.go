package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// NotationSigner signs images the way Ratify's built-in notation verifier
// checks them without a plugin (scheme notary.x509 under an x509 CA,
// P-384, the chain length of AWS Signer's): the benchmarks' anchor.
type NotationSigner struct {
	// CertFile is the CA's root as PEM, for the verifier's
	// verificationCerts ("ca:certs" trust store).
	CertFile string
	chain    []*x509.Certificate
	key      *ecdsa.PrivateKey
}

// NewNotationSigner makes the CA and writes its root into dir.
func NewNotationSigner(dir string) (*NotationSigner, error) {
	ca, err := sigkit.NewCA("Bench x509")
	if err != nil {
		return nil, err
	}
	chain, key, err := ca.Chain("us-west-2", time.Now())
	if err != nil {
		return nil, err
	}
	certFile := filepath.Join(dir, "notation-ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Cert.Raw}), 0o600); err != nil {
		return nil, err
	}
	return &NotationSigner{CertFile: certFile, chain: chain, key: key}, nil
}

// Push pushes an image tagged v1 into repo, signed, and returns its
// reference and descriptor.
func (n *NotationSigner) Push(ctx context.Context, s *Stack, repo string) (string, ocispec.Descriptor, error) {
	ref, desc, err := s.PushImage(ctx, repo, "v1")
	if err != nil {
		return "", desc, err
	}
	env, err := sigkit.Build(sigkit.Spec{
		Subject: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
		Chain:   n.chain, Key: n.key, Scheme: sigkit.SchemeX509,
		Delete: []string{sigkit.HeaderVerificationPlugin, sigkit.HeaderProfileVersion, sigkit.HeaderSigningJob},
	})
	if err != nil {
		return "", desc, err
	}
	img, err := s.Image(repo)
	if err != nil {
		return "", desc, err
	}
	if _, err := img.PushSignature(ctx, desc, env.Raw, signature.MediaTypeJWS, nil); err != nil {
		return "", desc, err
	}
	return ref, desc, nil
}

// P384Floor returns a function timing 5 bare P-384 ECDSA verifications
// (envelope + 4 certificate links): the cryptography no verifier can skip.
func P384Floor() func() time.Duration {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	sum := sha512.Sum384([]byte("payload"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	return func() time.Duration {
		start := time.Now()
		for j := 0; j < 5; j++ {
			if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], sig) {
				panic("P-384 verification failed")
			}
		}
		return time.Since(start)
	}
}
