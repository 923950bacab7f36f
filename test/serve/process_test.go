package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithPlugin(m, func(p string) { binary = p }))
}

// The built binary's serve subcommand as Kubernetes runs it: started with
// a configuration file, ready on /readyz, queried as Gatekeeper does over
// mTLS, stopped by SIGTERM (exit 0, JSON logs).
func TestServeProcess(t *testing.T) {
	f := newFixture(t, "5m", nil) // the stack and PKI; its in-process server is not used
	ref, _, _ := f.signed("team/app", "v1", "")
	unsigned := f.unsigned("team/app", "unsigned")
	addr, err := harness.FreeAddr()
	fatalIf(t, err)
	health, err := harness.FreeAddr()
	fatalIf(t, err)
	cfg := f.config("strict", nil, "5m", map[string]any{"address": addr, "healthAddress": health})
	b, _ := json.Marshal(cfg)
	file := filepath.Join(f.dir, "serve.json")
	fatalIf(t, os.WriteFile(file, b, 0o600))

	var logs bytes.Buffer
	cmd := exec.Command(binary, "serve", "--config", file)
	cmd.Env = harness.Env(f.dir)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	fatalIf(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready within 20s")
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv := &harness.Server{URL: "https://" + addr + provider.VerifyPath}
	tlsCfg, err := f.pki.ClientTLS(true)
	fatalIf(t, err)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, httpResp, err := srv.Query(ctxT(t), client, ref, unsigned)
	fatalIf(t, err)
	if httpResp.TLS == nil || httpResp.TLS.Version != 0x0304 || len(resp.Response.Items) != 2 {
		t.Fatalf("response %+v", resp.Response)
	}
	for _, it := range resp.Response.Items {
		ok := strings.Contains(string(it.Value), `"succeeded":true`)
		if ok != (it.Key == ref) {
			t.Errorf("%s: %s %s", it.Key, it.Value, it.Error)
		}
	}

	fatalIf(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
		lines++
	}
	if lines == 0 || !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("log (%d lines) lacks the stop", lines)
	}

}
