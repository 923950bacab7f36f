package harness

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// CA is a throw-away certificate authority issuing loopback certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate; File is where it was written.
	PEM  []byte
	File string
}

// NewCA creates a CA valid for a day and writes it to dir/ca.crt.
func NewCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "harness CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), File: filepath.Join(dir, "ca.crt")}
	return ca, os.WriteFile(ca.File, ca.PEM, 0o600)
}

// Issue writes a certificate for 127.0.0.1/localhost with the given
// extended key usages, and its key, as PEM files.
func (ca *CA) Issue(certFile, keyFile, cn string, usages ...x509.ExtKeyUsage) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// IssueDir is Issue into dir/tls.crt and dir/tls.key, the names servers
// such as ratify serve and Gatekeeper look for.
func (ca *CA) IssueDir(dir, cn string, usages ...x509.ExtKeyUsage) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return ca.Issue(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), cn, usages...)
}

// PKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in Dir.
type PKI struct {
	Dir string
	// CA, server (tls.crt/tls.key, the names ratify serve wants) and client.
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
	CAPEM                                                []byte
}

// NewPKI writes the files under dir.
func NewPKI(dir string) (*PKI, error) {
	ca, err := NewCA(dir)
	if err != nil {
		return nil, err
	}
	p := &PKI{Dir: dir, CAFile: ca.File, CAPEM: ca.PEM, ServerCert: filepath.Join(dir, "tls.crt"), ServerKey: filepath.Join(dir, "tls.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key")}
	if err := ca.Issue(p.ServerCert, p.ServerKey, "127.0.0.1", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if err := ca.Issue(p.ClientCert, p.ClientKey, "gatekeeper", x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	return p, nil
}

// ClientTLS is the TLS configuration of a client (as Gatekeeper) of a
// server certified by this PKI.
func (p *PKI) ClientTLS(withCert bool) (*tls.Config, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		pair, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Server is a running `ratify serve`.
type Server struct {
	URL     string // https://127.0.0.1:PORT/ratify/gatekeeper/v1/verify
	PKI     *PKI
	cmd     *exec.Cmd
	done    chan struct{}
	LogFile string
}

// FreePort returns a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns "127.0.0.1:PORT" with a free port.
func FreeAddr() (string, error) {
	port, err := FreePort()
	return fmt.Sprintf("127.0.0.1:%d", port), err
}

// StartRatifyServe starts `ratify serve` over HTTPS (TLS 1.3, client
// certificates required) with config, and waits until it accepts requests.
func StartRatifyServe(ctx context.Context, ratify, dir, config string) (*Server, error) {
	pki, err := NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	health, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "https://" + addr + "/ratify/gatekeeper/v1/verify", PKI: pki, done: make(chan struct{}), LogFile: filepath.Join(dir, "ratify-serve.log")}
	logf, err := os.Create(s.LogFile)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(ratify, "serve", "--http", addr, "-c", config, "--cert-dir", pki.Dir, "--ca-cert-file", pki.CAFile, "--health-port", health)
	s.cmd.Env = Env(dir)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	tlsCfg, _ := pki.ClientTLS(true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.Dial("tcp", addr, tlsCfg)
		if err == nil {
			conn.Close()
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.LogFile)
			return nil, fmt.Errorf("ratify serve exited: %s", log)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("ratify serve did not accept TLS connections on %s within 30s", addr)
		}
	}
}

// Stop ends the server (and any plugin it runs) and waits for it.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
}

// ProviderResponse is Gatekeeper's external-data response.
type ProviderResponse struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Response   struct {
		Items []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
			Error string          `json:"error"`
		} `json:"items"`
		SystemError string `json:"systemError"`
	} `json:"response"`
}

// Query sends one external-data request with keys, as Gatekeeper does.
func (s *Server) Query(ctx context.Context, client *http.Client, keys ...string) (*ProviderResponse, *http.Response, error) {
	body, _ := json.Marshal(map[string]any{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest", "request": map[string]any{"keys": keys}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var pr ProviderResponse
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		return nil, resp, fmt.Errorf("decode provider response (HTTP %d): %w", resp.StatusCode, err)
	}
	return &pr, resp, nil
}
