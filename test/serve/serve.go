package serve

import (
	"bytes"
	"context"
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

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// Process is a running `awssigner serve` (the built binary), for tests
// that drive it as Gatekeeper does (this package, test/gatekeeper).
type Process struct {
	// VerifyURL and MutateURL are the provider's endpoints; Health is
	// "127.0.0.1:PORT" of /healthz, /readyz and /metrics.
	VerifyURL, MutateURL, Health string
	// PKI issued the serving certificate and Gatekeeper's client
	// certificate (PKI.ClientTLS(true)).
	PKI     *harness.PKI
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	once    sync.Once
}

// Start writes cfg (a verifier configuration document; its server section
// is set here: loopback addresses, the PKI's files, plain-HTTP registries)
// under dir, starts binary serve with it and harness.Env(dir), and waits
// until /readyz answers 200.
func Start(ctx context.Context, binary, dir string, cfg map[string]any) (*Process, error) {
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
	c["server"] = map[string]any{"address": addr, "healthAddress": health,
		"tls":      map[string]any{"certFile": pki.ServerCert, "keyFile": pki.ServerKey, "clientCAFile": pki.CAFile},
		"registry": map[string]any{"plainHTTP": true}}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "serve-config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err
	}
	p := &Process{VerifyURL: "https://" + addr + provider.VerifyPath, MutateURL: "https://" + addr + provider.MutatePath, Health: health,
		PKI: pki, LogFile: filepath.Join(dir, "serve.log"), done: make(chan struct{})}
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

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }
