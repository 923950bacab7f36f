package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// Process is a running `awssigner serve` (the built binary), for tests
// that drive it as Gatekeeper or Kyverno does (this package,
// test/gatekeeper, test/kyverno).
type Process struct {
	// VerifyURL and MutateURL are the provider's endpoints ("" with
	// WithoutGatekeeper); Health is "127.0.0.1:PORT" of /healthz, /readyz
	// and /metrics.
	VerifyURL, MutateURL, Health string
	// CheckImagesURL is the Kyverno endpoint (WithKyverno; else "").
	// Kyverno's apiCall reaches it with service.caBundle = PKI.CAPEM and
	// a bearer token: KyvernoToken, also in the file KyvernoTokenFile
	// (for KYVERNO_SCOPED_TOKEN_PATH), a token of Kyverno's admission
	// controller with serve's audience.
	CheckImagesURL, KyvernoToken, KyvernoTokenFile string
	// Reviewer is the fake TokenReview API serve asks (WithKyverno without
	// WithTokenReview): Issue more tokens, count reviews, make it fail.
	Reviewer *TokenReviewer
	// PKI issued the serving certificate and Gatekeeper's client
	// certificate (PKI.ClientTLS(true)).
	PKI     *harness.PKI
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	once    sync.Once
}

// Option changes how Start runs serve.
type Option func(*options)

type options struct {
	kyverno, noGatekeeper bool
	tokenReview           map[string]any
	server                map[string]any
}

// WithKyverno enables the Kyverno listener (CheckImagesURL), its callers
// checked by TokenReview against a fake of that API (Process.Reviewer)
// unless WithTokenReview names a real one.
func WithKyverno() Option { return func(o *options) { o.kyverno = true } }

// WithoutGatekeeper turns Gatekeeper's mTLS listener off
// (server.gatekeeper.enabled: false; no client CA configured).
func WithoutGatekeeper() Option { return func(o *options) { o.noGatekeeper = true } }

// WithTokenReview sends TokenReviews to a real API server (its URL, the CA
// of its certificate, and a token allowed to create TokenReviews); the
// test then issues Kyverno's token itself (Process.KyvernoToken is "").
func WithTokenReview(apiServer, caFile, tokenFile string) Option {
	return func(o *options) {
		o.tokenReview = map[string]any{"apiServer": apiServer, "caFile": caFile, "tokenFile": tokenFile}
	}
}

// WithServer merges keys into the server section (e.g. "maxKeys"; a
// "kyverno" object is merged into server.kyverno).
func WithServer(extra map[string]any) Option {
	return func(o *options) {
		if o.server == nil {
			o.server = map[string]any{}
		}
		for k, v := range extra {
			o.server[k] = v
		}
	}
}

// mergeServer merges extra into the server section srv; a "kyverno"
// object is merged into srv's.
func mergeServer(srv, extra map[string]any) {
	for k, v := range extra {
		if more, ok := v.(map[string]any); ok && k == "kyverno" && srv["kyverno"] != nil {
			for kk, vv := range more {
				srv["kyverno"].(map[string]any)[kk] = vv
			}
			continue
		}
		srv[k] = v
	}
}

// Start writes cfg (a verifier configuration document; its server section
// is set here: loopback addresses, the PKI's files, plain-HTTP registries,
// and what the options say) under dir, starts binary serve with it and
// harness.Env(dir), and waits until /readyz answers 200.
func Start(ctx context.Context, binary, dir string, cfg map[string]any, opts ...Option) (*Process, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	pki, err := harness.NewPKI(filepath.Join(dir, "serve-pki"))
	if err != nil {
		return nil, err
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	health, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	c := map[string]any{}
	for k, v := range cfg {
		c[k] = v
	}
	srv := map[string]any{"address": addr, "healthAddress": health,
		"tls":      map[string]any{"certFile": pki.ServerCert, "keyFile": pki.ServerKey, "clientCAFile": pki.CAFile},
		"registry": map[string]any{"plainHTTP": true}}
	p := &Process{Health: health, PKI: pki, LogFile: filepath.Join(dir, "serve.log"), done: make(chan struct{})}
	if o.noGatekeeper {
		srv["gatekeeper"] = map[string]any{"enabled": false}
		delete(srv["tls"].(map[string]any), "clientCAFile")
	} else {
		p.VerifyURL, p.MutateURL = "https://"+addr+provider.VerifyPath, "https://"+addr+provider.MutatePath
	}
	if o.kyverno {
		kaddr, err := harness.FreeAddr()
		if err != nil {
			return nil, err
		}
		review := o.tokenReview
		if review == nil {
			if p.Reviewer, err = NewTokenReviewer(filepath.Join(dir, "serve-tokenreview")); err != nil {
				return nil, err
			}
			review = map[string]any{"apiServer": p.Reviewer.URL, "caFile": p.Reviewer.CAFile, "tokenFile": p.Reviewer.TokenFile}
			p.KyvernoToken = p.Reviewer.Issue(config.DefaultKyvernoCallers()[0], config.DefaultKyvernoAudience)
			p.KyvernoTokenFile = filepath.Join(dir, "kyverno-token")
			if err := os.WriteFile(p.KyvernoTokenFile, []byte(p.KyvernoToken), 0o600); err != nil {
				p.Reviewer.Close()
				return nil, err
			}
		}
		srv["kyverno"] = map[string]any{"enabled": true, "address": kaddr, "tokenReview": review}
		p.CheckImagesURL = "https://" + kaddr + kyverno.Path
	}
	mergeServer(srv, o.server)
	c["server"] = srv
	started := false
	defer func() {
		if !started && p.Reviewer != nil {
			p.Reviewer.Close()
		}
	}()
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "serve-config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(p.LogFile)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(binary, "serve", "--config", file)
	p.cmd.Env = harness.Env(dir)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				started = true
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("awssigner serve exited (%v): %s", p.err, p.Log())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("awssigner serve not ready within 30s: %s", p.Log())
		}
	}
}

// Log is what the process wrote so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(bytes.TrimSpace(b))
}

// Stop sends SIGTERM (SIGKILL after 15 s) and returns the exit error.
func (p *Process) Stop() error {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	if p.Reviewer != nil {
		p.Reviewer.Close()
	}
	return p.err
}

// Client is an HTTP client presenting Gatekeeper's certificate.
func (p *Process) Client() (*http.Client, error) {
	cfg, err := p.PKI.ClientTLS(true)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}, nil
}

// KyvernoClient is an HTTP client as Kyverno's apiCall is: it trusts the
// serving certificate's CA (service.caBundle) and presents no certificate.
func (p *Process) KyvernoClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.PKI.CAPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

// CheckImages POSTs body to CheckImagesURL with KyvernoToken, as Kyverno's
// apiCall does (no Content-Type), and returns the status and body.
func (p *Process) CheckImages(ctx context.Context, client *http.Client, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.CheckImagesURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if p.KyvernoToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.KyvernoToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }
