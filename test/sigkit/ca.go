// Package sigkit builds test material shaped like AWS Signer's: a P-384
// certificate hierarchy (root → intermediate → regional CA → short-lived
// leaf) and Notation JWS envelopes with the AWS attributes, where every
// header, certificate, time and the signing scheme can be changed to build
// the negative cases. It is test-only code; nothing in production imports it.
package sigkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Cert is a certificate together with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// CA is a test certificate authority with the shape of AWS Signer's:
// a long-lived root and intermediate, one CA per region, and per region a
// leaf that lives three days and signs every job of that region.
type CA struct {
	Root         *Cert
	Intermediate *Cert

	mu       sync.Mutex
	regional map[string]*Cert
	leaves   map[string]*Cert
}

// LeafLifetime is how long a regional leaf certificate is valid, as with
// AWS Signer's leaves.
const LeafLifetime = 72 * time.Hour

// NewCA creates a root and an intermediate valid from a year ago for decades.
func NewCA(name string) (*CA, error) {
	now := time.Now().Truncate(time.Second)
	root, err := NewCert(CertSpec{
		Subject:   pkix.Name{Country: []string{"US"}, Organization: []string{"Test"}, OrganizationalUnit: []string{"Cryptography"}, Province: []string{"WA"}, CommonName: name + " Code Signing Root CA G1"},
		NotBefore: now.AddDate(-1, 0, 0),
		NotAfter:  now.AddDate(50, 0, 0),
		IsCA:      true,
	}, nil)
	if err != nil {
		return nil, err
	}
	inter, err := NewCert(CertSpec{
		Subject:   pkix.Name{Country: []string{"US"}, Organization: []string{"Test"}, OrganizationalUnit: []string{"Cryptography"}, Province: []string{"WA"}, CommonName: name + " Code Signing Int CA G1"},
		NotBefore: now.AddDate(-1, 0, 0),
		NotAfter:  now.AddDate(5, 0, 0),
		IsCA:      true,
	}, root)
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, Intermediate: inter, regional: map[string]*Cert{}, leaves: map[string]*Cert{}}, nil
}

// RootPEM returns the root certificate in PEM form, as a trust store wants it.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Cert.Raw})
}

// Regional returns the region's CA, creating it on first use.
func (ca *CA) Regional(region string) (*Cert, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.regionalLocked(region)
}

func (ca *CA) regionalLocked(region string) (*Cert, error) {
	if c, ok := ca.regional[region]; ok {
		return c, nil
	}
	now := time.Now().Truncate(time.Second)
	c, err := NewCert(CertSpec{
		Subject:   pkix.Name{Country: []string{"US"}, Organization: []string{"Test"}, OrganizationalUnit: []string{"Cryptography"}, Province: []string{"WA"}, CommonName: "Test Signer " + region + " Code Signing CA G1"},
		NotBefore: now.AddDate(0, -1, 0),
		NotAfter:  now.AddDate(0, 6, 0),
		IsCA:      true,
	}, ca.Intermediate)
	if err != nil {
		return nil, err
	}
	ca.regional[region] = c
	return c, nil
}

// Leaf returns the region's current signing leaf, issuing a new one when the
// current one would not cover at (AWS rotates leaves per region, not per job).
func (ca *CA) Leaf(region string, at time.Time) (*Cert, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[region]; ok && !at.Before(c.Cert.NotBefore) && at.Add(time.Minute).Before(c.Cert.NotAfter) {
		return c, nil
	}
	reg, err := ca.regionalLocked(region)
	if err != nil {
		return nil, err
	}
	start := at.Add(-time.Hour).Truncate(time.Second)
	c, err := NewCert(LeafSpec(start, start.Add(LeafLifetime)), reg)
	if err != nil {
		return nil, err
	}
	ca.leaves[region] = c
	return c, nil
}

// Chain returns the region's full chain leaf first, root included, and the
// leaf's key, as AWS Signer puts it in x5c.
func (ca *CA) Chain(region string, at time.Time) ([]*x509.Certificate, *ecdsa.PrivateKey, error) {
	leaf, err := ca.Leaf(region, at)
	if err != nil {
		return nil, nil, err
	}
	reg, err := ca.Regional(region)
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{leaf.Cert, reg.Cert, ca.Intermediate.Cert, ca.Root.Cert}, leaf.Key, nil
}

// CertSpec describes a certificate to issue.
type CertSpec struct {
	Subject   pkix.Name
	NotBefore time.Time
	NotAfter  time.Time
	IsCA      bool
	// KeyUsage and ExtKeyUsage override the defaults (CA: cert sign + CRL
	// sign; leaf: digital signature with code signing).
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// Curve overrides P-384.
	Curve elliptic.Curve
}

// LeafSpec is the subject and usages of an AWS Signer leaf.
func LeafSpec(notBefore, notAfter time.Time) CertSpec {
	return CertSpec{
		Subject:   pkix.Name{Country: []string{"US"}, Organization: []string{"AWS"}, OrganizationalUnit: []string{"AWS Cryptography"}, Province: []string{"WA"}, Locality: []string{"Seattle"}, CommonName: "AWS Signer"},
		NotBefore: notBefore,
		NotAfter:  notAfter,
	}
}

// NewCert issues a certificate from spec, signed by issuer, or self-signed
// when issuer is nil.
func NewCert(spec CertSpec, issuer *Cert) (*Cert, error) {
	curve := spec.Curve
	if curve == nil {
		curve = elliptic.P384()
	}
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               spec.Subject,
		NotBefore:             spec.NotBefore,
		NotAfter:              spec.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  spec.IsCA,
		KeyUsage:              spec.KeyUsage,
		ExtKeyUsage:           spec.ExtKeyUsage,
	}
	if tmpl.KeyUsage == 0 {
		if spec.IsCA {
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
	}
	if !spec.IsCA && spec.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sigkit: issue %q: %w", spec.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{Cert: cert, Key: key}, nil
}
