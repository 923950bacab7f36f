package verification_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// BenchmarkVerify is one full in-process verification of a valid AWS-shaped
// signature (strict), the revocation answer already in the cache.
func BenchmarkVerify(b *testing.B) {
	f := loadFixture(b)
	emu, err := signeremu.Start(signeremu.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	factory, err := signerapi.NewFactory(signerapi.Options{
		Endpoint:    emu.URL(),
		Base:        &aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKID", "test-secret-access-key-of-40-characters", "")},
		MaxAttempts: config.DefaultMaxAttempts, MaxBackoff: config.DefaultMaxBackoff,
	})
	if err != nil {
		b.Fatal(err)
	}
	checker := &revocation.Cached{
		Next:  &revocation.SignerChecker{Clients: factory, Budget: config.DefaultRevocationTimeout},
		Cache: revocation.NewMemoryCache(0),
		TTL:   time.Hour,
	}
	v := fixtureVerifier(b, f, checker)
	in := verification.Input{Envelope: f.envelope, MediaType: sigkit.MediaTypeJWS, Subject: f.subject, Repository: repo}
	ctx := context.Background()
	if res, err := v.Verify(ctx, in); err != nil || res.RevocationCached {
		b.Fatalf("warm-up: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := v.Verify(ctx, in)
		if err != nil || !res.RevocationCached {
			b.Fatalf("%v cached=%v", err, res.RevocationCached)
		}
	}
	if n := emu.Count(signeremu.OpGetRevocationStatus); n != 1 {
		b.Fatalf("%d Signer calls, want 1", n)
	}
}

// BenchmarkCryptoFloor is the work verification cannot avoid: the bare
// ECDSA P-384 verifications of the envelope signature and of each
// certificate link (leaf←regional, regional←intermediate,
// intermediate←root, root←root).
func BenchmarkCryptoFloor(b *testing.B) { benchCrypto(b, false) }

// BenchmarkCryptoNotation adds the two verifications notation-core-go's
// chain validation makes beyond the floor: before checking that a
// certificate was issued by its parent it checks that a CA certificate is
// not self-signed, a P-384 verification against its own key (the leaf's
// probe stops early because it is not a CA). This is the crypto a
// verification through notation-go actually performs.
func BenchmarkCryptoNotation(b *testing.B) { benchCrypto(b, true) }

func benchCrypto(b *testing.B, selfProbes bool) {
	f := loadFixture(b)
	var jws struct {
		Payload, Protected, Signature string
		Header                        struct{ X5c [][]byte }
	}
	if err := json.Unmarshal(f.envelope, &jws); err != nil {
		b.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, der := range jws.Header.X5c {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		chain = append(chain, c)
	}
	type link struct {
		pub    *ecdsa.PublicKey
		digest []byte
		sig    []byte
	}
	var links []link
	for i, c := range chain {
		parent := chain[len(chain)-1]
		if i+1 < len(chain) {
			parent = chain[i+1]
		}
		d := sha512.Sum384(c.RawTBSCertificate)
		links = append(links, link{parent.PublicKey.(*ecdsa.PublicKey), d[:], c.Signature})
	}
	var probes []link
	if selfProbes {
		for _, c := range chain[1 : len(chain)-1] {
			d := sha512.Sum384(c.RawTBSCertificate)
			probes = append(probes, link{c.PublicKey.(*ecdsa.PublicKey), d[:], c.Signature})
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(jws.Signature)
	if err != nil {
		b.Fatal(err)
	}
	r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
	envDigest := sha512.Sum384([]byte(jws.Protected + "." + jws.Payload))
	leafKey := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ecdsa.Verify(leafKey, envDigest[:], r, s) {
		b.Fatal("fixture envelope signature does not verify")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.Verify(leafKey, envDigest[:], r, s) {
			b.Fatal("envelope")
		}
		for _, l := range links {
			if !ecdsa.VerifyASN1(l.pub, l.digest, l.sig) {
				b.Fatal("link")
			}
		}
		for _, l := range probes {
			if ecdsa.VerifyASN1(l.pub, l.digest, l.sig) {
				b.Fatal("a CA certificate verified against its own key")
			}
		}
	}
}
