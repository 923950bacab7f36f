package hostile

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// The regional CA of the envelopes (sigkit's chain for us-west-2).
const region = "us-west-2"

// duplicate returns an edit that signs a protected header with dup
// inserted before the header's own keys, so the key appears twice (the
// header's own value last, which Go's encoding/json keeps).
func duplicate(dup string) func(*sigkit.Spec) error {
	return func(s *sigkit.Spec) error {
		h, err := sigkit.ProtectedHeader(*s)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(h, []byte("{")) {
			return errors.New("protected header is not a JSON object")
		}
		s.RawProtected = append([]byte("{"+dup+","), h[1:]...)
		return nil
	}
}

// leafCert issues a leaf under the region's CA; edit changes its spec.
func (w *world) leafCert(edit func(*sigkit.CertSpec)) (*sigkit.Cert, error) {
	reg, err := w.ca.Regional(region)
	if err != nil {
		return nil, err
	}
	now := time.Now().Truncate(time.Second)
	spec := sigkit.LeafSpec(now.Add(-time.Hour), now.Add(sigkit.LeafLifetime-time.Hour))
	if edit != nil {
		edit(&spec)
	}
	return sigkit.NewCert(spec, reg)
}

// withLeaf signs with leaf under the region's CA.
func withLeaf(w *world, edit func(*sigkit.CertSpec), alg string) func(*sigkit.Spec) error {
	return func(s *sigkit.Spec) error {
		leaf, err := w.leafCert(edit)
		if err != nil {
			return err
		}
		reg, err := w.ca.Regional(region)
		if err != nil {
			return err
		}
		s.Chain = []*x509.Certificate{leaf.Cert, reg.Cert, w.ca.Intermediate.Cert, w.ca.Root.Cert}
		s.Key = leaf.Key
		s.Alg = alg
		return nil
	}
}

// withChain signs with the region's leaf but puts x5c in the envelope
// verbatim, built from the full chain (leaf, regional, intermediate, root).
func withChain(w *world, x5c func(chain []*x509.Certificate) [][]byte) func(*sigkit.Spec) error {
	return func(s *sigkit.Spec) error {
		chain, key, err := w.ca.Chain(region, s.SigningTime)
		if err != nil {
			return err
		}
		s.Chain, s.Key, s.X5C = chain, key, x5c(chain)
		return nil
	}
}

func raws(certs ...*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

// padded is the chain followed by n more copies of its root.
func padded(n int) func([]*x509.Certificate) [][]byte {
	return func(chain []*x509.Certificate) [][]byte {
		out := raws(chain...)
		for range n {
			out = append(out, chain[len(chain)-1].Raw)
		}
		return out
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// envelopeCases: hostile envelopes in an honest registry.
func envelopeCases(w *world) []hcase {
	var cases []hcase
	add := func(name, level string, o signOpts, wt want) {
		cases = append(cases, hcase{name: name, level: level, sign: o, want: wt})
	}
	for _, level := range []string{"permissive", "audit", "skip"} {
		add("baseline "+level, level, signOpts{}, verified())
	}

	// Malformed JSON.
	add("malformed JSON", "strict", signOpts{envelope: []byte(`{"payload":"eyJ0YXJnZXRBcnRpZmFjdCI6`)}, refused(reasonIntegrity))
	add("not JSON (random bytes)", "strict", signOpts{envelope: randomBytes(512)}, refused(reasonIntegrity))
	add("empty JSON object", "strict", signOpts{envelope: []byte(`{}`)}, refused(reasonIntegrity))

	// Duplicate keys in the protected header: refused at every level that
	// verifies anything. Level skip verifies nothing, as notation defines
	// it (the configuration warns so), so nothing of the envelope is read.
	dupWant := func(level string) want {
		if level == "skip" {
			return verified()
		}
		return refused(reasonIntegrity)
	}
	for _, level := range []string{"strict", "permissive", "audit", "skip"} {
		add("duplicate alg in protected header "+level, level, signOpts{edit: duplicate(`"alg":"ES256"`)}, dupWant(level))
	}
	for _, level := range []string{"strict", "skip"} {
		add("duplicate crit in protected header "+level, level, signOpts{edit: duplicate(`"crit":["io.cncf.notary.signingScheme"]`)}, dupWant(level))
		add("duplicate signing scheme in protected header "+level, level, signOpts{edit: duplicate(`"io.cncf.notary.signingScheme":"notary.x509"`)}, dupWant(level))
	}

	// Algorithms and curves: AWS Signer signs ES384 with P-384 keys only.
	p256 := func(c *sigkit.CertSpec) { c.Curve = elliptic.P256() }
	for _, level := range []string{"strict", "permissive", "audit"} {
		add("ES256 with a P-256 leaf "+level, level, signOpts{edit: withLeaf(w, p256, "ES256")}, refused(reasonAlgorithm))
	}
	add("ES256 with a P-256 leaf skip", "skip", signOpts{edit: withLeaf(w, p256, "ES256")}, verified())
	add("alg ES256 on a P-384 leaf", "strict", signOpts{edit: withLeaf(w, nil, "ES256")}, refused(reasonIntegrity, reasonAlgorithm))
	add("alg ES384 on a P-256 leaf", "strict", signOpts{edit: withLeaf(w, p256, "ES384")}, refused(reasonIntegrity, reasonAlgorithm))
	add("alg ES512 on a P-521 leaf", "strict", signOpts{edit: withLeaf(w, func(c *sigkit.CertSpec) { c.Curve = elliptic.P521() }, "ES512")}, refused(reasonIntegrity, reasonAlgorithm))

	// Certificate roles.
	add("leaf used as a CA", "strict", signOpts{edit: func(s *sigkit.Spec) error {
		leaf, err := w.leafCert(nil)
		if err != nil {
			return err
		}
		now := time.Now().Truncate(time.Second)
		sub, err := sigkit.NewCert(sigkit.LeafSpec(now.Add(-time.Hour), now.Add(24*time.Hour)), leaf)
		if err != nil {
			return err
		}
		reg, _ := w.ca.Regional(region)
		s.Chain = []*x509.Certificate{sub.Cert, leaf.Cert, reg.Cert, w.ca.Intermediate.Cert, w.ca.Root.Cert}
		s.Key = sub.Key
		return nil
	}}, refused(reasonIntegrity))
	add("leaf without the code-signing EKU", "strict", signOpts{edit: withLeaf(w, func(c *sigkit.CertSpec) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}, "ES384")}, refused(reasonIntegrity))
	add("intermediate without the CA bit", "strict", signOpts{edit: func(s *sigkit.Spec) error {
		now := time.Now().Truncate(time.Second)
		notCA, err := sigkit.NewCert(sigkit.CertSpec{
			Subject:   pkix.Name{Organization: []string{"Test"}, CommonName: "Not a CA " + region},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: now.AddDate(0, 6, 0),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		}, w.ca.Intermediate)
		if err != nil {
			return err
		}
		leaf, err := sigkit.NewCert(sigkit.LeafSpec(now.Add(-time.Hour), now.Add(24*time.Hour)), notCA)
		if err != nil {
			return err
		}
		s.Chain = []*x509.Certificate{leaf.Cert, notCA.Cert, w.ca.Intermediate.Cert, w.ca.Root.Cert}
		s.Key = leaf.Key
		return nil
	}}, refused(reasonIntegrity))

	// Chains.
	add("chain in reverse order", "strict", signOpts{edit: withChain(w, func(c []*x509.Certificate) [][]byte { return raws(c[3], c[2], c[1], c[0]) })}, refused(reasonIntegrity))
	add("chain with intermediates swapped", "strict", signOpts{edit: withChain(w, func(c []*x509.Certificate) [][]byte { return raws(c[0], c[2], c[1], c[3]) })}, refused(reasonIntegrity))
	add("chain without its root", "strict", signOpts{edit: withChain(w, func(c []*x509.Certificate) [][]byte { return raws(c[0], c[1], c[2]) })}, refused())
	add("chain of 3000 certificates", "strict", signOpts{edit: withChain(w, padded(3000))}, refused())
	add("chain of 11 certificates", "strict", signOpts{edit: withChain(w, padded(7))}, refused())
	add("chain of 30000 certificates (24 MiB envelope)", "strict", signOpts{edit: withChain(w, padded(30000))}, refused())

	// Signing time.
	add("signing time a day in the future", "strict", signOpts{edit: func(s *sigkit.Spec) error { s.SigningTime = time.Now().Add(24 * time.Hour); return nil }}, refused(reasonSigningTime))
	add("signing time a minute in the future", "strict", signOpts{edit: func(s *sigkit.Spec) error { s.SigningTime = time.Now().Add(time.Minute); return nil }}, verified())
	return cases
}

func TestHostileEnvelopes(t *testing.T) { runTable(t, envelopeCases(getWorld(t))) }
