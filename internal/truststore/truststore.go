// Package truststore serves the certificates a Notation trust policy names
// as "<type>:<name>": the AWS Signer roots embedded in the binary
// (signingAuthority:aws-signer-ts and signingAuthority:aws-us-gov-signer-ts)
// plus named stores loaded from PEM text or PEM files, which replace an
// embedded store of the same name.
package truststore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	nstore "github.com/notaryproject/notation-go/verifier/truststore"
)

// Names of the embedded AWS Signer trust stores, as AWS documents them.
const (
	AWSSignerStore      = "aws-signer-ts"
	AWSUSGovSignerStore = "aws-us-gov-signer-ts"
)

// SHA-256 fingerprints (of the DER) of the embedded roots.
const (
	AWSSignerRootSHA256      = "90a87d0543c3f094dbff9589b6649affe2f3d6e0f308799be2258461c686473f"
	AWSUSGovSignerRootSHA256 = "673653ab76f41a10546cdeb4107ecd6df2c15c2c9a0d32ed97d271b4436fc3e8"
)

var (
	//go:embed roots/aws-signer-notation-root.pem
	awsSignerRootPEM []byte
	//go:embed roots/aws-us-gov-signer-notation-root.pem
	awsUSGovSignerRootPEM []byte
)

var storeName = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// Store is an in-memory trust store keyed by type and name.
type Store struct {
	certs map[nstore.Type]map[string][]*x509.Certificate
}

// Embedded returns the embedded AWS Signer roots by store name.
func Embedded() map[string][]byte {
	return map[string][]byte{AWSSignerStore: awsSignerRootPEM, AWSUSGovSignerStore: awsUSGovSignerRootPEM}
}

// New builds a store from the embedded roots and extra stores given as
// {"<type>": {"<name>": ["<PEM text>" | "<absolute path to a PEM file>"]}}.
// An extra store named like an embedded one replaces it. Errors name the
// offending store and entry.
func New(extra map[string]map[string][]string) (*Store, error) {
	s := &Store{certs: map[nstore.Type]map[string][]*x509.Certificate{
		nstore.TypeSigningAuthority: {},
	}}
	for name, data := range Embedded() {
		certs, err := ParsePEM(data)
		if err != nil {
			return nil, fmt.Errorf("embedded trust store %s: %w", name, err)
		}
		s.certs[nstore.TypeSigningAuthority][name] = certs
	}
	for _, typ := range sortedKeys(extra) {
		t := nstore.Type(typ)
		if t != nstore.TypeCA && t != nstore.TypeSigningAuthority && t != nstore.TypeTSA {
			return nil, fmt.Errorf("trustStores.%s: unknown trust store type (want ca, signingAuthority or tsa)", typ)
		}
		if s.certs[t] == nil {
			s.certs[t] = map[string][]*x509.Certificate{}
		}
		for _, name := range sortedKeys(extra[typ]) {
			path := "trustStores." + typ + "." + name
			if !storeName.MatchString(name) {
				return nil, fmt.Errorf("%s: invalid store name (allowed: letters, digits, '_', '.', '-')", path)
			}
			entries := extra[typ][name]
			if len(entries) == 0 {
				return nil, fmt.Errorf("%s: no certificates given", path)
			}
			var certs []*x509.Certificate
			for i, e := range entries {
				c, err := load(e)
				if err != nil {
					return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
				}
				for _, cert := range c {
					if !cert.IsCA && !selfSigned(cert) {
						return nil, fmt.Errorf("%s[%d]: certificate %q is neither a CA nor self-signed", path, i, cert.Subject)
					}
				}
				certs = append(certs, c...)
			}
			s.certs[t][name] = certs
		}
	}
	return s, nil
}

// GetCertificates implements notation-go's X509TrustStore.
func (s *Store) GetCertificates(_ context.Context, t nstore.Type, name string) ([]*x509.Certificate, error) {
	certs, ok := s.certs[t][name]
	if !ok {
		return nil, nstore.TrustStoreError{Msg: fmt.Sprintf("trust store %s:%s is not configured (configured: %s)", t, name, strings.Join(s.Names(), ", "))}
	}
	return certs, nil
}

// Names lists the configured stores as "<type>:<name>", sorted.
func (s *Store) Names() []string {
	var out []string
	for t, byName := range s.certs {
		for n := range byName {
			out = append(out, string(t)+":"+n)
		}
	}
	sort.Strings(out)
	return out
}

// Fingerprint returns the lowercase hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// ParsePEM parses every CERTIFICATE block of data; it fails when there is none.
func ParsePEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// load reads an entry that is PEM text or an absolute path to a PEM file.
func load(entry string) ([]*x509.Certificate, error) {
	trimmed := strings.TrimSpace(entry)
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		return ParsePEM([]byte(trimmed))
	}
	if !filepath.IsAbs(trimmed) {
		return nil, fmt.Errorf("neither PEM text nor an absolute file path: %.40q", trimmed)
	}
	data, err := ReadFile(trimmed)
	if err != nil {
		return nil, err
	}
	certs, err := ParsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", trimmed, err)
	}
	return certs, nil
}

// MaxFileSize bounds a trust store file (a PEM bundle of every public CA
// is about 250 KiB).
const MaxFileSize = 1 << 20

// ReadFile reads a trust store file: a regular file (not a device, FIFO or
// directory, after links are followed) of at most MaxFileSize bytes, read
// once through a bound, so a path such as /dev/zero cannot make decoding
// read without end.
func ReadFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s); give a PEM file", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, over the %d-byte limit for a trust store file", path, fi.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past the %d-byte limit while read", path, MaxFileSize)
	}
	return data, nil
}

func selfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
