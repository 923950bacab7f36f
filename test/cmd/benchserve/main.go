// Command benchserve measures awssigner serve against `ratify serve`
// v1.4.6 with the awssigner plugin and against `ratify serve` with Ratify's
// built-in notation verifier on an equivalent x509 signature (Ratify's
// verify-result cache off in both, so each request verifies), all in one
// run on the same registry and AWS Signer emulator, and prints a table:
// per-request latency (median, p99) for one image cold (revocation not
// cached), warm, a 10-container Pod, and 100 concurrent Pods; peak RSS of
// awssigner serve with 1,000 distinct images cached; GetRevocationStatus
// calls per 100 simultaneous admissions; and the floor a cold verification
// cannot go under (the registry round trips it makes plus 5 bare P-384
// verifications), measured in the same run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	servetest "github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding ratify and awssigner")
	runs := flag.Int("runs", 100, "requests per single-image measurement")
	rssImages := flag.Int("rss-images", 1000, "distinct images cached for the RSS measurement")
	flag.Parse()
	if err := run(*bin, *runs, *rssImages); err != nil {
		fmt.Fprintln(os.Stderr, "benchserve:", err)
		os.Exit(1)
	}
}

type stats struct {
	samples []time.Duration
	errors  int
}

func (s *stats) add(d time.Duration) { s.samples = append(s.samples, d) }

func (s *stats) pct(p float64) time.Duration {
	if len(s.samples) == 0 {
		return 0
	}
	v := append([]time.Duration(nil), s.samples...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[int(p*float64(len(v)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// target is one provider under test.
type target struct {
	name    string
	url     string
	client  *http.Client
	success string // the marker of a verified value
	pid     int
	stop    func()
	logFile string
	// restart starts a provider that died again (ratify serve v1.4.6
	// panics when a request times out); crashes counts them.
	restart func() error
	mu      sync.Mutex
	crashes int
	// cold and warm images (references), the 10 of a Pod.
	cold             []string
	warm, warmDigest string
	pod              []string
	// measurements
	coldS, warmS, digestS, podS, concS stats
}

func run(bin string, runs, rssImages int) error {
	ctx := context.Background()
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	ratify, plugin := filepath.Join(bin, "ratify"), filepath.Join(bin, "awssigner")
	for _, p := range []string{ratify, plugin} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run make build tools", p)
		}
	}
	dir, err := os.MkdirTemp("", "awssigner-benchserve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return err
	}
	defer s.Close()

	fmt.Fprintf(os.Stderr, "signing %d images through the emulator and %d x509 images...\n", 2*runs+22+rssImages+2, runs+11)
	digested := map[string]string{} // tag reference → digest reference
	// Each image in a repository of its own: the test registry answers a
	// referrers listing by scanning the whole repository, which a real
	// registry does not, so a shared repository would bill every request
	// for the other images.
	sign := func(prefix string, n int) ([]string, error) {
		refs := make([]string, n)
		for i := range refs {
			repo := prefix + "-" + strconv.Itoa(i)
			ref, desc, err := s.PushImage(ctx, repo, "v1")
			if err != nil {
				return nil, err
			}
			if _, _, err := s.Sign(ctx, repo, desc, ""); err != nil {
				return nil, err
			}
			refs[i] = ref
			digested[ref] = s.Registry.Host + "/" + repo + "@" + desc.Digest.String()
		}
		return refs, nil
	}
	ours, err := sign("bench/serve", runs+11)
	if err != nil {
		return err
	}
	viaPlugin, err := sign("bench/plugin", runs+11)
	if err != nil {
		return err
	}
	x509Refs, certFile, err := notationImages(ctx, s, dir, runs+11, digested)
	if err != nil {
		return err
	}
	merge, err := sign("bench/merge", 2)
	if err != nil {
		return err
	}
	rssRefs, err := sign("bench/rss", rssImages)
	if err != nil {
		return err
	}

	cacheDir := filepath.Join(dir, "revocation-cache")
	awsCfg := s.VerifierConfig("awssigner", "strict", nil, map[string]any{
		"revocation": map[string]any{"timeout": "2s", "cacheTTL": "1h", "cacheDir": cacheDir},
	})
	notationCfg := map[string]any{
		"name": "verifier-notation", "type": "notation", "artifactTypes": signature.ArtifactType,
		"verificationCerts": []string{certFile},
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
			"name": "all", "registryScopes": []string{"*"}, "signatureVerification": map[string]any{"level": "strict"},
			"trustStores": []string{"ca:certs"}, "trustedIdentities": []string{"*"},
		}}},
	}

	serve, err := startServe(ctx, plugin, dir, awsCfg)
	if err != nil {
		return err
	}
	defer serve.stop()
	serve.cold, serve.warm, serve.pod = ours[:runs], ours[runs], ours[runs+1:runs+11]

	withPlugin, err := startRatify(ctx, ratify, bin, s, filepath.Join(dir, "ratify-plugin"), "ratify serve + awssigner plugin", awsCfg)
	if err != nil {
		return err
	}
	defer withPlugin.stop()
	withPlugin.cold, withPlugin.warm, withPlugin.pod = viaPlugin[:runs], viaPlugin[runs], viaPlugin[runs+1:runs+11]

	builtin, err := startRatify(ctx, ratify, bin, s, filepath.Join(dir, "ratify-notation"), "ratify serve + built-in notation (x509)", notationCfg)
	if err != nil {
		return err
	}
	defer builtin.stop()
	builtin.cold, builtin.warm, builtin.pod = x509Refs[:runs], x509Refs[runs], x509Refs[runs+1:runs+11]

	targets := []*target{serve, withPlugin, builtin}
	// Warm-up: the warm image and the Pod's images verified once.
	for _, t := range targets {
		t.warmDigest = digested[t.warm]
		if _, err := t.query(ctx, append([]string{t.warm}, t.pod...)...); err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	floor := &stats{}
	p384 := harness.P384Floor()
	rtt := &stats{}
	warmRTT := &stats{}
	for i := 0; i < runs; i++ {
		for _, t := range targets {
			t.measure(ctx, &t.coldS, t.cold[i])
			t.measure(ctx, &t.warmS, t.warm)
			t.measure(ctx, &t.digestS, t.warmDigest)
			t.measure(ctx, &t.podS, t.pod...)
		}
		floor.add(p384())
		d, err := registryTrips(ctx, ours[i])
		if err != nil {
			return err
		}
		rtt.add(d)
		d, err = warmTrips(ctx, serve.warm)
		if err != nil {
			return err
		}
		warmRTT.add(d)
	}
	for _, t := range targets {
		if st := t.coldS.errors + t.warmS.errors + t.podS.errors; st > runs/2 && t.restart == nil {
			return fmt.Errorf("%s failed %d requests; its log ends with:\n%s", t.name, st, tail(t.logFile))
		}
	}
	for _, t := range targets {
		for round := 0; round < 3; round++ {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var one stats
					t.measure(ctx, &one, t.pod[i%len(t.pod)])
					mu.Lock()
					t.concS.samples = append(t.concS.samples, one.samples...)
					t.concS.errors += one.errors
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
	}

	// GetRevocationStatus calls for 100 simultaneous admissions of one
	// image nothing has cached.
	calls := func(t *target, ref string) (int, error) {
		s.Emulator.ResetCounts()
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := t.query(ctx, ref); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return s.Emulator.Count(signeremu.OpGetRevocationStatus), failed
	}
	serveCalls, err := calls(serve, merge[0])
	if err != nil {
		return err
	}
	pluginCalls, pluginErr := calls(withPlugin, merge[1])

	// Peak RSS of awssigner serve with rssImages distinct images cached.
	// (10 keys per request, as a Pod's; a key that timed out on this
	// loaded machine is asked again.)
	for i := 0; i < len(rssRefs); i += 10 {
		batch := rssRefs[i:min(i+10, len(rssRefs))]
		if _, err := serve.query(ctx, batch...); err != nil {
			if _, err := serve.query(ctx, batch...); err != nil {
				return fmt.Errorf("RSS images: %w", err)
			}
		}
	}
	rss, err := peakRSS(serve.pid)
	if err != nil {
		return err
	}

	fmt.Printf("| per request (%d requests each; 100 concurrent: 3 rounds) | awssigner serve | ratify serve + plugin | ratify serve + built-in notation (x509) |\n|---|---|---|---|\n", runs)
	row := func(name string, get func(*target) *stats) {
		fmt.Printf("| %s |", name)
		for _, t := range targets {
			st := get(t)
			errs := ""
			if st.errors > 0 {
				errs = fmt.Sprintf(", %d failed", st.errors)
			}
			fmt.Printf(" %.2f / %.2f ms%s |", ms(st.pct(0.5)), ms(st.pct(0.99)), errs)
		}
		fmt.Println()
	}
	row("one image, cold (median / p99)", func(t *target) *stats { return &t.coldS })
	row("one image by tag, warm", func(t *target) *stats { return &t.warmS })
	row("one image by digest (as after mutation), warm", func(t *target) *stats { return &t.digestS })
	row("10-container Pod (one request, 10 keys), warm", func(t *target) *stats { return &t.podS })
	row("100 concurrent one-image Pods, warm", func(t *target) *stats { return &t.concS })
	fmt.Printf("| provider crashes (restarted) |")
	for _, t := range targets {
		fmt.Printf(" %d |", t.crashes)
	}
	fmt.Println()
	fmt.Printf("| floor: the registry round trips of a cold check + 5 P-384 verifications | %.2f ms (%.2f + %.2f) | | |\n",
		ms(rtt.pct(0.5)+floor.pct(0.5)), ms(rtt.pct(0.5)), ms(floor.pct(0.5)))

	fmt.Printf("| the 2 registry round trips of a warm check by tag (resolve, list referrers) | %.2f ms | | |\n", ms(warmRTT.pct(0.5)))

	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	pluginNote := ""
	if pluginErr != nil {
		pluginNote = fmt.Sprintf(" (some admissions failed: %v)", pluginErr)
	}
	fmt.Printf("\n| figure | measured | target |\n|---|---|---|\n")
	fmt.Printf("| warm, median: by tag / by digest | %.3f ms / %.3f ms | ≤ 1 ms |\n", ms(serve.warmS.pct(0.5)), ms(serve.digestS.pct(0.5)))
	fmt.Printf("| warm by tag / its 2 registry round trips, medians | %.2f× | |\n", ratio(serve.warmS.pct(0.5), warmRTT.pct(0.5)))
	fmt.Printf("| cold / floor, medians | %.2f× | ≤ 1.3× |\n", ratio(serve.coldS.pct(0.5), rtt.pct(0.5)+floor.pct(0.5)))
	fmt.Printf("| ratify serve + plugin / awssigner serve, cold medians | %.1f× | ≥ 5× |\n", ratio(withPlugin.coldS.pct(0.5), serve.coldS.pct(0.5)))
	fmt.Printf("| ratify serve + plugin / awssigner serve, warm medians | %.1f× | ≥ 50× |\n", ratio(withPlugin.warmS.pct(0.5), serve.warmS.pct(0.5)))
	fmt.Printf("| awssigner serve / ratify built-in notation, cold medians | %.2f× | ≤ 1 (no slower) |\n", ratio(serve.coldS.pct(0.5), builtin.coldS.pct(0.5)))
	fmt.Printf("| awssigner serve peak RSS, %d distinct images cached | %.1f MiB | ≤ 128 MiB |\n", len(rssRefs), float64(rss)/1024)
	fmt.Printf("| GetRevocationStatus calls, 100 simultaneous admissions of one uncached image | awssigner serve %d, ratify serve + plugin %d%s | 1 |\n", serveCalls, pluginCalls, pluginNote)
	return nil
}

// measure sends one request with keys and records its latency, or an
// error when a key is not verified.
func (t *target) measure(ctx context.Context, st *stats, keys ...string) {
	start := time.Now()
	_, err := t.query(ctx, keys...)
	if err != nil {
		st.errors++
		fmt.Fprintf(os.Stderr, "%s: %v\n", t.name, err)
		if strings.Contains(err.Error(), "connection refused") && t.restart != nil {
			t.mu.Lock()
			defer t.mu.Unlock()
			if _, err := t.query(ctx, keys...); err != nil && strings.Contains(err.Error(), "connection refused") {
				t.crashes++
				fmt.Fprintf(os.Stderr, "%s died; its log ends with:\n%s\nrestarting it\n", t.name, tail(t.logFile))
				if err := t.restart(); err != nil {
					fmt.Fprintf(os.Stderr, "%s: restart: %v\n", t.name, err)
				}
			}
		}
		return
	}
	st.add(time.Since(start))
}

// query asks the provider about keys as Gatekeeper does (the whole body
// read, so the connection is reused as Gatekeeper's client reuses it);
// every key must be answered as verified.
func (t *target) query(ctx context.Context, keys ...string) (*harness.ProviderResponse, error) {
	body, _ := json.Marshal(map[string]any{"apiVersion": provider.APIVersion, "kind": provider.KindRequest, "request": map[string]any{"keys": keys}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	httpResp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(httpResp.Body)
	httpResp.Body.Close()
	if err != nil {
		return nil, err
	}
	var resp harness.ProviderResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("HTTP %d: %v: %s", httpResp.StatusCode, err, truncate(raw))
	}
	if resp.Response.SystemError != "" {
		return nil, errors.New(resp.Response.SystemError)
	}
	if len(resp.Response.Items) != len(keys) {
		return nil, fmt.Errorf("%d items for %d keys", len(resp.Response.Items), len(keys))
	}
	for _, it := range resp.Response.Items {
		if it.Error != "" || !bytes.Contains(it.Value, []byte(t.success)) {
			return nil, fmt.Errorf("%s not verified: %s %s", it.Key, it.Error, truncate(it.Value))
		}
	}
	return &resp, nil
}

// tail is the end of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// startServe starts the built awssigner serve (test/serve.Start) with
// cfg, revocation answers kept for an hour in memory.
func startServe(ctx context.Context, plugin string, dir string, cfg map[string]any) (*target, error) {
	c := map[string]any{}
	for k, v := range cfg {
		c[k] = v
	}
	c["revocation"] = map[string]any{"timeout": "2s", "cacheTTL": "1h"}
	p, err := servetest.Start(ctx, plugin, dir, c)
	if err != nil {
		return nil, err
	}
	client, err := clientFor(p.PKI)
	if err != nil {
		p.Stop()
		return nil, err
	}
	return &target{name: "awssigner serve", url: p.VerifyURL, client: client, success: `"succeeded":true`, pid: p.PID(),
		stop: func() { p.Stop() }, logFile: p.LogFile}, nil
}

func startRatify(ctx context.Context, ratify, pluginDir string, s *harness.Stack, dir, name string, verifier map[string]any) (*target, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg, err := s.RatifyConfig(pluginDir, "all", verifier)
	if err != nil {
		return nil, err
	}
	t := &target{name: name, success: `"isSuccess":true`}
	start := func() error {
		srv, err := harness.StartRatifyServe(ctx, ratify, dir, cfg)
		if err != nil {
			return err
		}
		client, err := clientFor(srv.PKI)
		if err != nil {
			srv.Stop()
			return err
		}
		t.url, t.client, t.stop, t.logFile = srv.URL, client, srv.Stop, srv.LogFile
		return nil
	}
	if err := start(); err != nil {
		return nil, err
	}
	t.restart = func() error { t.stop(); return start() }
	return t, nil
}

func clientFor(pki *harness.PKI) (*http.Client, error) {
	tlsCfg, err := pki.ClientTLS(true)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}, nil
}

// notationImages pushes n images signed for Ratify's built-in notation
// verifier (harness.NotationSigner), each in a repository of its own.
func notationImages(ctx context.Context, s *harness.Stack, dir string, n int, digested map[string]string) ([]string, string, error) {
	signer, err := harness.NewNotationSigner(dir)
	if err != nil {
		return nil, "", err
	}
	refs := make([]string, n)
	for i := range refs {
		repo := "bench/notation-" + strconv.Itoa(i)
		ref, desc, err := signer.Push(ctx, s, repo)
		if err != nil {
			return nil, "", err
		}
		refs[i] = ref
		digested[ref] = s.Registry.Host + "/" + repo + "@" + desc.Digest.String()
	}
	return refs, signer.CertFile, nil
}

// registryTrips times the registry requests a cold check of ref makes
// (resolve, list referrers, signature manifest, envelope, referrers of
// the signature) with a plain oras-go client on a fresh connection.
func registryTrips(ctx context.Context, ref string) (time.Duration, error) {
	repo, err := remote.NewRepository(ref[:strings.LastIndex(ref, ":")])
	if err != nil {
		return 0, err
	}
	repo.PlainHTTP = true
	repo.Client = &http.Client{Transport: &http.Transport{}}
	start := time.Now()
	desc, err := repo.Resolve(ctx, ref[strings.LastIndex(ref, ":")+1:])
	if err != nil {
		return 0, err
	}
	var sigs []ocispec.Descriptor
	if err := repo.Referrers(ctx, desc, signature.ArtifactType, func(r []ocispec.Descriptor) error { sigs = append(sigs, r...); return nil }); err != nil {
		return 0, err
	}
	if len(sigs) == 0 {
		return 0, fmt.Errorf("%s has no signature", ref)
	}
	raw, err := content.FetchAll(ctx, repo, sigs[0])
	if err != nil {
		return 0, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		return 0, fmt.Errorf("signature manifest: %v", err)
	}
	if _, err := content.FetchAll(ctx, repo.Blobs(), m.Layers[0]); err != nil {
		return 0, err
	}
	if err := repo.Referrers(ctx, sigs[0], signature.ArtifactType, func([]ocispec.Descriptor) error { return nil }); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// warmTrips times what a warm check by tag asks the registry: resolve the
// tag and list the image's referrers, on a kept-alive connection as the
// provider's.
func warmTrips(ctx context.Context, ref string) (time.Duration, error) {
	repo, err := remote.NewRepository(ref[:strings.LastIndex(ref, ":")])
	if err != nil {
		return 0, err
	}
	repo.PlainHTTP = true
	repo.Client = warmClient
	start := time.Now()
	desc, err := repo.Resolve(ctx, ref[strings.LastIndex(ref, ":")+1:])
	if err != nil {
		return 0, err
	}
	if err := repo.Referrers(ctx, desc, signature.ArtifactType, func([]ocispec.Descriptor) error { return nil }); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

var warmClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// peakRSS reads a process's peak resident set (KiB).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, errors.New("VmHWM not found")
}
