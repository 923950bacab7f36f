package contract

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// TestSameOutcomeAsTheCommandLine: the plugin (as Ratify runs it) and
// `awssigner verify` read signatures through the same pipeline, so the
// same registry misbehaviour gives the same verdict and reason on both.
func TestSameOutcomeAsTheCommandLine(t *testing.T) {
	s := newStack(t)
	var mode atomic.Value // "", "blob500", "corrupt"
	mode.Store("")
	target, _ := url.Parse("http://" + s.Registry.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, "/blobs/") || resp.Request.Method != http.MethodGet {
			return nil
		}
		switch mode.Load() {
		case "blob500":
			resp.StatusCode, resp.Status = http.StatusInternalServerError, "500 Internal Server Error"
		case "corrupt":
			resp.Body = corrupt{resp.Body}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	ref := strings.Replace(s.ref, s.Registry.Host, strings.TrimPrefix(front.URL, "http://"), 1)

	cfg := s.VerifierConfig("verifier-awssigner", "strict", nil, nil)
	cfgFile := filepath.Join(s.Dir, "verifier.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The good case last: the plugin keeps verified content in its cache
	// slot, and a later run would not ask the registry again.
	for _, tc := range []struct{ mode, verdict, reason string }{
		{"blob500", "couldNotCheck", "registryUnavailable"},
		{"corrupt", "refused", "integrity"},
		{"", "verified", ""},
	} {
		t.Run("registry "+tc.mode, func(t *testing.T) {
			mode.Store(tc.mode)
			r := runPlugin(t, ratifyEnv(ref, "1.0.0"), s.stdin(t, cfg))
			v := oneJSONLine(t, r)
			ext, _ := v["extensions"].(map[string]any)
			if ext["verdict"] != tc.verdict || (tc.reason != "" && ext["reason"] != tc.reason) {
				t.Fatalf("plugin: %v", v)
			}

			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(c, plugin, "verify", ref, "--config", cfgFile, "--plain-http", "-o", "json")
			cmd.Env = harness.Env(t.TempDir())
			out, _ := cmd.Output()
			var rep struct {
				Signatures []struct {
					Verdict, Reason string
				}
			}
			if err := json.Unmarshal(out, &rep); err != nil || len(rep.Signatures) != 1 {
				t.Fatalf("command line: %v\n%s", err, out)
			}
			if got := rep.Signatures[0]; got.Verdict != tc.verdict || got.Reason != tc.reason {
				t.Fatalf("command line says %s/%s, plugin %s/%s", got.Verdict, got.Reason, ext["verdict"], ext["reason"])
			}
		})
	}
}

// corrupt flips the first byte of a body, keeping its length.
type corrupt struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
}

func (c corrupt) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}
func (c corrupt) Close() error { return c.rc.Close() }
