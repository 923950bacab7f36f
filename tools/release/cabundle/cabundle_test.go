package cabundle

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// TestBundle: every root parses, none NSS constrains, the count is every
// unconstrained root, and two calls give the same bytes.
func TestBundle(t *testing.T) {
	b, err := PEM()
	if err != nil {
		t.Fatal(err)
	}
	unconstrained, constrained := 0, map[string]bool{}
	for r := range bundle.Roots() {
		if r.Constraint == nil {
			unconstrained++
		} else {
			constrained[string(r.Certificate)] = true
		}
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			t.Fatal(err)
		}
		if constrained[string(blk.Bytes)] {
			t.Error("a constrained root is in the bundle")
		}
		n++
	}
	if n != unconstrained || n < 100 {
		t.Errorf("%d roots in the file, %d unconstrained in NSS", n, unconstrained)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Error("crypto/x509 reads no certificate from the bundle")
	}
	again, _ := PEM()
	if !bytes.Equal(b, again) {
		t.Error("two calls differ")
	}
}
