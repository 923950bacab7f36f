package truststore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	nstore "github.com/notaryproject/notation-go/verifier/truststore"
)

func TestEmbeddedRootsArePinned(t *testing.T) {
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{AWSSignerStore: AWSSignerRootSHA256, AWSUSGovSignerStore: AWSUSGovSignerRootSHA256} {
		certs, err := s.GetCertificates(context.Background(), nstore.TypeSigningAuthority, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != 1 {
			t.Fatalf("%s: %d certificates, want 1", name, len(certs))
		}
		if got := Fingerprint(certs[0]); got != want {
			t.Errorf("%s: fingerprint %s, want %s", name, got, want)
		}
		if !certs[0].IsCA || certs[0].Subject.String() != certs[0].Issuer.String() {
			t.Errorf("%s: not a self-issued CA: %s", name, certs[0].Subject)
		}
	}
}

func selfSignedPEM(t *testing.T, cn string, isCA bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestExtraStores(t *testing.T) {
	inline := selfSignedPEM(t, "inline", true)
	file := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(file, []byte(selfSignedPEM(t, "file", true)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(map[string]map[string][]string{
		"signingAuthority": {AWSSignerStore: {inline}, "team": {inline, file}},
		"ca":               {"other": {file}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	over, _ := s.GetCertificates(ctx, nstore.TypeSigningAuthority, AWSSignerStore)
	if len(over) != 1 || over[0].Subject.CommonName != "inline" {
		t.Fatalf("override by name did not replace the embedded root: %v", over)
	}
	gov, _ := s.GetCertificates(ctx, nstore.TypeSigningAuthority, AWSUSGovSignerStore)
	if len(gov) != 1 || Fingerprint(gov[0]) != AWSUSGovSignerRootSHA256 {
		t.Fatal("the GovCloud root must stay when only the commercial store is overridden")
	}
	team, _ := s.GetCertificates(ctx, nstore.TypeSigningAuthority, "team")
	if len(team) != 2 {
		t.Fatalf("team store has %d certs, want 2", len(team))
	}
	if _, err := s.GetCertificates(ctx, nstore.TypeSigningAuthority, "missing"); err == nil || !strings.Contains(err.Error(), "signingAuthority:aws-signer-ts") {
		t.Fatalf("missing store error should list configured stores, got %v", err)
	}
}

func TestExtraStoreErrors(t *testing.T) {
	leaf := selfSignedPEM(t, "x", false) // self-signed is accepted
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, append([]byte(leaf), make([]byte, MaxFileSize)...), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		in   map[string]map[string][]string
		want string
	}{
		"bad type":       {map[string]map[string][]string{"x509": {"a": {leaf}}}, "trustStores.x509: unknown trust store type"},
		"bad name":       {map[string]map[string][]string{"ca": {"a b": {leaf}}}, "trustStores.ca.a b: invalid store name"},
		"empty":          {map[string]map[string][]string{"ca": {"a": {}}}, "trustStores.ca.a: no certificates"},
		"relative":       {map[string]map[string][]string{"ca": {"a": {"certs/root.pem"}}}, "trustStores.ca.a[0]: neither PEM text nor an absolute file path"},
		"missing file":   {map[string]map[string][]string{"ca": {"a": {"/nonexistent/root.pem"}}}, "trustStores.ca.a[0]: read /nonexistent/root.pem"},
		"endless device": {map[string]map[string][]string{"ca": {"a": {"/dev/zero"}}}, "trustStores.ca.a[0]: /dev/zero is not a regular file"},
		"fifo":           {map[string]map[string][]string{"ca": {"a": {fifo}}}, "is not a regular file"},
		"directory":      {map[string]map[string][]string{"ca": {"a": {dir}}}, "is not a regular file"},
		"huge file":      {map[string]map[string][]string{"ca": {"a": {big}}}, "over the 1048576-byte limit"},
		"garbage pem":    {map[string]map[string][]string{"ca": {"a": {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}}}, "trustStores.ca.a[0]: parse certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}
