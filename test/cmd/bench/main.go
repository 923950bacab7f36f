// Command bench measures what admission pays for the awssigner plugin and
// prints a table: the plugin process alone (warm caches), a whole
// `ratify verify` with the plugin, and, as the anchor, a whole
// `ratify verify` of an equivalent image through Ratify's built-in notation
// verifier (x509 "ca" trust store, no plugin); plus the plugin's peak RSS
// and the GetRevocationStatus calls 100 verifications make. Two anchors
// measured in the same run make the figures comparable across machines
// (absolute times differ about 1.5× between them): the exec of a static
// no-op binary, and the P-384 floor (5 bare verifications). -compare runs a
// second plugin binary interleaved with the first (before/after a change).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

var (
	verbose *bool
	compare string
)

func main() {
	bin := flag.String("bin", "bin", "directory holding ratify and awssigner")
	runs := flag.Int("runs", 200, "runs per measurement")
	verbose = flag.Bool("v", false, "print the plugin's log of one warm run")
	flag.StringVar(&compare, "compare", "", "another awssigner binary to time interleaved with bin/awssigner (e.g. the previous commit's)")
	flag.Parse()
	if err := run(*bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type stats struct {
	name     string
	samples  []time.Duration
	maxRSSKB int64
}

func (s *stats) add(d time.Duration) { s.samples = append(s.samples, d) }

func (s *stats) pct(p float64) time.Duration {
	v := append([]time.Duration(nil), s.samples...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	i := int(p*float64(len(v)-1) + 0.5)
	return v[i]
}

func run(bin string, runs int) error {
	ctx := context.Background()
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	ratify, plugin := filepath.Join(bin, "ratify"), filepath.Join(bin, "awssigner")
	dir, err := os.MkdirTemp("", "awssigner-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return err
	}
	defer s.Close()

	// The AWS Signer image and its signature.
	ref, desc, err := s.PushImage(ctx, "bench/app", "v1")
	if err != nil {
		return err
	}
	sig, _, err := s.Sign(ctx, "bench/app", desc, "")
	if err != nil {
		return err
	}
	cacheDir := filepath.Join(dir, "revocation-cache")
	awsCfg := s.VerifierConfig("verifier-awssigner", "strict", nil, map[string]any{
		"revocation": map[string]any{"timeout": "2s", "cacheTTL": "1h", "cacheDir": cacheDir},
	})
	// The equivalent image signed for Ratify's built-in notation verifier.
	signer, err := harness.NewNotationSigner(dir)
	if err != nil {
		return err
	}
	certFile := signer.CertFile
	nref, _, err := signer.Push(ctx, s, "bench/notation")
	if err != nil {
		return err
	}
	notationCfg := map[string]any{
		"name": "verifier-notation", "type": "notation", "artifactTypes": signature.ArtifactType,
		"verificationCerts": []string{certFile},
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
			"name": "all", "registryScopes": []string{"*"}, "signatureVerification": map[string]any{"level": "strict"},
			"trustStores": []string{"ca:certs"}, "trustedIdentities": []string{"*"},
		}}},
	}

	// (i) the plugin process alone, as Ratify runs it, caches warm.
	stdin, _ := json.Marshal(map[string]any{
		"config":        awsCfg,
		"storeConfig":   map[string]any{"version": "1.0.0", "pluginBinDirs": nil, "store": map[string]any{"name": "oras", "useHttp": true, "localCachePath": filepath.Join(dir, "oras-cache")}},
		"referenceDesc": map[string]any{"mediaType": sig.MediaType, "digest": sig.Digest, "size": sig.Size, "artifactType": signature.ArtifactType},
	})
	env := append(harness.Env(dir), "RATIFY_VERIFIER_COMMAND=VERIFY", "RATIFY_VERIFIER_SUBJECT="+ref, "RATIFY_VERIFIER_VERSION=1.0.0")
	pluginStats := &stats{name: "plugin process alone (warm caches)"}
	noop, err := buildNoop(dir)
	if err != nil {
		return err
	}
	noopStats := &stats{name: "anchor: exec of a static no-op binary"}
	measured := []struct {
		st   *stats
		path string
	}{{pluginStats, plugin}, {noopStats, noop}}
	if compare != "" {
		measured = append(measured, struct {
			st   *stats
			path string
		}{&stats{name: "-compare plugin " + compare}, compare})
	}
	for i := 0; i < runs+5; i++ {
		for _, m := range measured {
			d, rss, out, err := execPlugin(m.path, env, stdin)
			if err != nil {
				return err
			}
			if m.path != noop && !bytes.Contains(out, []byte(`"isSuccess":true`)) {
				return fmt.Errorf("%s did not verify: %s", m.path, out)
			}
			if i >= 5 { // warm-up runs fill the caches
				m.st.add(d)
				m.st.maxRSSKB = max(m.st.maxRSSKB, rss)
			}
		}
	}
	floor := p384Floor(runs)

	if *verbose {
		cmd := exec.Command(plugin)
		cmd.Env, cmd.Stdin = env, bytes.NewReader(stdin)
		var se bytes.Buffer
		cmd.Stderr = &se
		cmd.Run()
		fmt.Fprintf(os.Stderr, "plugin stderr of one warm run:\n%s\n", se.String())
	}

	// (ii) and (iii), interleaved so both see the same machine.
	awsConfig, err := s.RatifyConfig(bin, "all", awsCfg)
	if err != nil {
		return err
	}
	notationConfig, err := s.RatifyConfig(bin, "all", notationCfg)
	if err != nil {
		return err
	}
	withPlugin := &stats{name: "ratify verify, awssigner plugin"}
	builtin := &stats{name: "ratify verify, built-in notation"}
	for i := 0; i < runs+3; i++ {
		for _, m := range []struct {
			st       *stats
			cfg, ref string
		}{{withPlugin, awsConfig, ref}, {builtin, notationConfig, nref}} {
			out, err := harness.RatifyVerify(ctx, ratify, dir, m.cfg, m.ref)
			if err != nil {
				return err
			}
			if !out.IsSuccess {
				return fmt.Errorf("%s: not verified: %s", m.st.name, out.Stdout)
			}
			if i >= 3 {
				m.st.add(out.Duration)
			}
		}
	}

	// Signer calls for 100 verifications of one image with a fresh cache.
	os.RemoveAll(cacheDir)
	s.Emulator.ResetCounts()
	for i := 0; i < 100; i++ {
		if _, _, out, err := execPlugin(plugin, env, stdin); err != nil || !bytes.Contains(out, []byte(`"isSuccess":true`)) {
			return fmt.Errorf("verification %d: %v %s", i, err, out)
		}
	}
	calls := s.Emulator.Count("GetRevocationStatus")

	fmt.Printf("| measurement (%d runs each) | median | p99 | median / no-op exec |\n|---|---|---|---|\n", runs)
	all := []*stats{pluginStats, withPlugin, builtin, noopStats, floor}
	for _, m := range measured[2:] {
		all = append(all, m.st)
	}
	for _, st := range all {
		fmt.Printf("| %s | %.2f ms | %.2f ms | %.2f× |\n", st.name, ms(st.pct(0.5)), ms(st.pct(0.99)), float64(st.pct(0.5))/float64(noopStats.pct(0.5)))
	}
	fmt.Printf("\n| ratio | value | target |\n|---|---|---|\n")
	fmt.Printf("| plugin alone / (no-op exec + P-384 floor), medians | %.2f× | |\n", float64(pluginStats.pct(0.5))/float64(noopStats.pct(0.5)+floor.pct(0.5)))
	for _, m := range measured[2:] {
		fmt.Printf("| plugin alone / -compare plugin, medians | %.3f× | ≤ 1 (no slower) |\n", float64(pluginStats.pct(0.5))/float64(m.st.pct(0.5)))
	}
	fmt.Printf("| plugin alone, median | %.1f ms | ≤ 30 ms |\n", ms(pluginStats.pct(0.5)))
	fmt.Printf("| ratify+plugin / ratify built-in notation (medians) | %.2f× | ≤ 1.5× |\n", float64(withPlugin.pct(0.5))/float64(builtin.pct(0.5)))
	fmt.Printf("| plugin peak RSS | %.1f MiB | ≤ 64 MiB |\n", float64(pluginStats.maxRSSKB)/1024)
	fmt.Printf("| GetRevocationStatus calls for 100 verifications (cacheTTL 1h) | %d | 1 |\n", calls)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func execPlugin(plugin string, env []string, stdin []byte) (time.Duration, int64, []byte, error) {
	cmd := exec.Command(plugin)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, 0, out.Bytes(), fmt.Errorf("plugin: %v: %s", err, out.Bytes())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return d, rss, out.Bytes(), nil
}

// buildNoop builds a static binary that exits at once: the floor of any
// plugin run (fork, exec, Go runtime start) on this machine.
func buildNoop(dir string) (string, error) {
	src := filepath.Join(dir, "noop")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module noop\n\ngo 1.22\n"), 0o600); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "noop-bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the no-op anchor: %v: %s", err, b)
	}
	return out, nil
}

// p384Floor times the P-384 floor runs times.
func p384Floor(runs int) *stats {
	st := &stats{name: "anchor: P-384 floor, 5 verifications in-process"}
	floor := harness.P384Floor()
	for i := 0; i < runs; i++ {
		st.add(floor())
	}
	return st
}
