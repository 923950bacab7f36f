// Package cabundle writes the CA roots the awssigner image carries at
// /etc/ssl/certs/ca-certificates.crt, where Go's crypto/x509 looks on Linux.
//
// The roots are Mozilla's NSS trust store as golang.org/x/crypto/x509roots
// publishes it, at the version pinned in this module's go.mod and checked by
// go.sum, so the same commit always writes the same file (a bundle copied
// from the build machine's ca-certificates package would differ between
// machines and days). A root NSS constrains (distrust after a date) cannot
// carry its constraint in a PEM file, so it is left out: the bundle only
// ever trusts less than NSS does, never more.
package cabundle

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Path is where the image holds the bundle.
const Path = "/etc/ssl/certs/ca-certificates.crt"

// PEM returns the unconstrained NSS roots as PEM, in the bundle's order,
// each preceded by a comment naming its subject.
func PEM() ([]byte, error) {
	var b bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			return nil, fmt.Errorf("root %d of the NSS bundle: %w", n, err)
		}
		fmt.Fprintf(&b, "# %s\n", strings.ReplaceAll(c.Subject.String(), "\n", " "))
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the NSS bundle has no unconstrained root")
	}
	return b.Bytes(), nil
}
