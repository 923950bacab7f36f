package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(harness.MainWithPlugin(m, func(p string) { binary = p }))
}

// The built binary's serve subcommand as Kubernetes runs it: started with
// a configuration file, ready on /readyz, queried as Gatekeeper does over
// mTLS (verify and mutate), stopped by SIGTERM (exit 0, JSON logs).
func TestServeProcess(t *testing.T) {
	f := newFixture(t, "5m", nil) // the stack; its in-process server is not used
	ref, desc, _ := f.signed("team/app", "v1", "")
	unsigned := f.unsigned("team/app", "unsigned")
	p, err := Start(ctxT(t), binary, f.dir, f.stack.VerifierConfig("awssigner", "strict", nil, nil))
	fatalIf(t, err)
	defer func() {
		p.Stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", p.Log())
		}
	}()
	client, err := p.Client()
	fatalIf(t, err)
	defer client.CloseIdleConnections()
	resp, httpResp, err := (&harness.Server{URL: p.VerifyURL}).Query(ctxT(t), client, ref, unsigned)
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
	mresp, _, err := (&harness.Server{URL: p.MutateURL}).Query(ctxT(t), client, ref)
	fatalIf(t, err)
	if want := `"` + f.stack.Registry.Host + "/team/app@" + desc.Digest.String() + `"`; len(mresp.Response.Items) != 1 || string(mresp.Response.Items[0].Value) != want {
		t.Errorf("mutate: %+v, want %s", mresp.Response.Items, want)
	}

	if err := p.Stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	logs := p.Log()
	sc := bufio.NewScanner(bytes.NewReader([]byte(logs)))
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
		lines++
	}
	if lines == 0 || !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("log (%d lines) lacks the stop", lines)
	}
}
