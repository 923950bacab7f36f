package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// maxPEMFile bounds a certificate, key or CA file.
const maxPEMFile = 1 << 20

// tlsFiles serves the certificate and key, and trusts the client CA, as
// they are on disk: reload swaps them when their content changes, keeping
// the last good ones when the new ones do not load. clientCA is "" when
// Gatekeeper's mTLS listener is off (a Kyverno-only deployment).
type tlsFiles struct {
	cert, key, clientCA string
	// current is Gatekeeper's listener's configuration (nil without a
	// client CA); pair the certificate both listeners serve.
	current atomic.Pointer[tls.Config]
	pair    atomic.Pointer[tls.Certificate]
	sum     [sha256.Size]byte
}

func (t *tlsFiles) load() (changed bool, err error) {
	var all bytes.Buffer
	read := func(path, what string) ([]byte, error) {
		b, err := readBounded(path, maxPEMFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		all.Write(b)
		all.WriteByte(0)
		return b, nil
	}
	certPEM, err := read(t.cert, "server.tls.certFile")
	if err != nil {
		return false, err
	}
	keyPEM, err := read(t.key, "server.tls.keyFile")
	if err != nil {
		return false, err
	}
	var caPEM []byte
	if t.clientCA != "" {
		if caPEM, err = read(t.clientCA, "server.tls.clientCAFile"); err != nil {
			return false, err
		}
	}
	sum := sha256.Sum256(all.Bytes())
	if t.pair.Load() != nil && sum == t.sum {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("server.tls.certFile %s and keyFile %s: %w", t.cert, t.key, err)
	}
	var mtls *tls.Config
	if t.clientCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("server.tls.clientCAFile %s holds no PEM certificate", t.clientCA)
		}
		mtls = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			NextProtos:   []string{"h2", "http/1.1"},
		}
	}
	t.current.Store(mtls)
	t.pair.Store(&pair)
	t.sum = sum
	return true, nil
}

// loaded tells whether a certificate is being served.
func (t *tlsFiles) loaded() bool { return t.pair.Load() != nil }

// kyvernoConfig is the Kyverno listener's configuration: the same
// certificate, TLS 1.2 or later, no client certificate asked (callers are
// authenticated by their bearer token).
func (t *tlsFiles) kyvernoConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.pair.Load(), nil
		},
	}
}

// config is the listener's configuration: every handshake takes the
// files' current state.
func (t *tlsFiles) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.current.Load(), nil
		},
	}
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
