// Package hostile runs the real awssigner plugin binary the way Ratify runs
// it (three environment variables, one JSON document on stdin) against
// hostile inputs: a registry of our own that hangs, drips, sends endless,
// oversize, short or wrong bodies, redirects and refuses; envelopes with
// duplicate header keys, wrong algorithms and curves, wrong certificate
// roles and chains; an AWS Signer endpoint that answers bad JSON, huge
// bodies, resets, late answers and errors; hostile configuration; hostile
// cache directories and entries; and many concurrent or killed runs on one
// cache. Every run is checked for what Ratify relies on: the verdict, an
// answer before Ratify's deadline, exactly one JSON line on stdout (at most
// 64 KiB), no stderr line Ratify could take as JSON, no panic, no
// credential in the output, and peak memory under the bound.
//
// Each table case is a verifying baseline (a good signature in an honest
// registry, the emulator answering, a strict policy) changed in one thing.
// A table's plugin runs go first, a few at a time, then each case is
// checked as a subtest; `go test -v` prints a summary (case, verdict, ms,
// MiB) and the worst peak RSS. Cases whose expected answer the product does
// not give yet are marked with the gap they show (want.gap): they log
// "KNOWN GAP" instead of failing, and fail with HOSTILE_NO_GAPS=1.
//
// FuzzCacheEntry fuzzes revocation cache entry files (make fuzz).
package hostile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

var (
	plugin   string
	runCount atomic.Int64
	// tmpDir is every run's TMPDIR, so the plugin's private ORAS cache
	// slots (and content caches) are the suite's own, shared by its runs.
	tmpDir string
)

func TestMain(m *testing.M) {
	if bin := os.Getenv(envWrap); bin != "" {
		os.Exit(wrap(bin))
	}
	flag.Parse()
	// The tables run in parallel (their plugin runs share the slots):
	// let them all, unless -parallel says otherwise.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	if fuzzing() {
		// Fuzz targets need no plugin; fuzz workers re-run TestMain.
		os.Exit(m.Run())
	}
	var err error
	if tmpDir, err = os.MkdirTemp("", "awssigner-hostile-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := harness.MainWithPlugin(m, func(p string) { plugin = p })
	printSummary()
	closeWorld()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return (f != nil && f.Value.String() != "") || (w != nil && w.Value.String() == "true")
}

// Recognisable credentials: the plugin is given them and they must never
// appear in what it prints.
const (
	awsAccessKeyID     = "AKIDHOSTILE0SECRET7"
	awsSecretAccessKey = "hostile-aws-secret-Zq8Wx3"
	registryUser       = "hostile-user"
	registryPassword   = "hostile-registry-password-Kp4Rt9"
)

var secrets = []string{
	awsAccessKeyID,
	awsSecretAccessKey,
	registryPassword,
	base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + registryPassword)),
}

// Bounds every run is held to.
const (
	// ratifyDeadline is Ratify's default request deadline; with the default
	// revocation budget the plugin must answer before it.
	ratifyDeadline = 2900 * time.Millisecond
	// loadMargin is what the plugin must leave of Ratify's deadline for
	// starting and ending its process; on a machine so loaded that these
	// take longer, up to loadSlack more, an answer late by Ratify's clock
	// but on time by the plugin's own is logged, not failed.
	loadMargin = 300 * time.Millisecond
	loadSlack  = time.Second
	// maxRSSKiB is the peak resident memory one run may use.
	maxRSSKiB = 128 << 10
	// maxStdout bounds the answer: whatever a registry or AWS says, the
	// result Ratify keeps (and Gatekeeper shows) stays small.
	maxStdout = 64 << 10
	// parallelRuns is how many plugin processes the tables run at once (all
	// tables together: they run in parallel and share slots).
	parallelRuns = 6
)

// slots holds one token per plugin run the tables have going.
var slots = make(chan struct{}, parallelRuns)

// Peak RSS is measured through a wrapper: this test binary re-executed
// with envWrap naming the plugin. Go starts children with vfork, and Linux
// carries the parent's high-water RSS into a vforked child's ru_maxrss at
// exec, so measured directly every run would report at least this test
// process's peak. The wrapper is a small fresh process; it starts the
// plugin with the same stdin, stdout and stderr, waits, and writes the
// plugin's rusage and run time to the file envRusage names. The wrapper's
// own high-water mark (about 10 MiB: /bin/true measures so) is the floor
// of every figure, below the plugin's own.
const (
	envWrap   = "HOSTILE_WRAP_PLUGIN"
	envRusage = "HOSTILE_RUSAGE_FILE"
	// addressSpace caps a wrapped plugin's virtual memory.
	addressSpace = 3 << 30
)

func wrap(bin string) int {
	out := os.Getenv(envRusage)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envWrap+"=") && !strings.HasPrefix(kv, envRusage+"=") {
			env = append(env, kv)
		}
	}
	// A plugin that reads without bound must not take the machine with
	// it: its address space is capped (far above maxRSSKiB; the run then
	// fails with Go's out-of-memory error instead).
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: addressSpace, Max: addressSpace}); err != nil {
		fmt.Fprintln(os.Stderr, "hostile wrapper: address space limit:", err)
		return 125
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "hostile wrapper:", err)
		return 125
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	if out != "" {
		_ = os.WriteFile(out, []byte(fmt.Sprintf("%d %d\n", rss, took.Nanoseconds())), 0o600)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// invocation is one plugin run as Ratify starts it.
type invocation struct {
	subject string
	stdin   []byte
	// dir is the run's HOME (Docker config, default caches).
	dir string
	// env is added to the environment.
	env []string
	// killAfter, when set, SIGKILLs the process after that long.
	killAfter time.Duration
	// limit is how long a run may take before it is killed as hung
	// (default 20 s).
	limit time.Duration
}

// outcome is what one run did.
type outcome struct {
	stdout, stderr string
	code           int
	killed         bool
	took           time.Duration
	rssKiB         int64
	// result is stdout parsed, when it is one JSON object; oneLine tells
	// whether it was exactly one line (results must be; skel prints error
	// objects indented).
	result  map[string]any
	oneLine bool
	err     error
}

func (o outcome) ext() map[string]any {
	e, _ := o.result["extensions"].(map[string]any)
	return e
}

func (o outcome) str(key string) string {
	s, _ := o.ext()[key].(string)
	return s
}

// run starts the plugin, feeds it stdin and waits (at most 20 s, then it
// is killed and the run is a failure). Runs to be killed start the plugin
// directly; the others go through the wrapper, which measures them.
func run(inv invocation) outcome {
	if plugin == "" {
		return outcome{err: errors.New("the plugin was not built (fuzzing)")}
	}
	cmd := exec.Command(plugin)
	rusageFile := ""
	if inv.killAfter == 0 {
		self, err := os.Executable()
		if err != nil {
			return outcome{err: err}
		}
		rusageFile = fmt.Sprintf("%s/rusage-%d", inv.dir, runCount.Add(1))
		cmd = exec.Command(self)
		cmd.Env = append(cmd.Env, envWrap+"="+plugin, envRusage+"="+rusageFile)
	}
	cmd.Env = append(cmd.Env, harness.Env(inv.dir)...)
	cmd.Env = append(cmd.Env,
		"RATIFY_VERIFIER_COMMAND=VERIFY",
		"RATIFY_VERIFIER_SUBJECT="+inv.subject,
		"RATIFY_VERIFIER_VERSION=1.0.0",
		"AWS_ACCESS_KEY_ID="+awsAccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+awsSecretAccessKey,
		"DOCKER_CONFIG="+inv.dir+"/docker",
		"TMPDIR="+tmpDir,
	)
	cmd.Env = append(cmd.Env, inv.env...)
	cmd.Stdin = bytes.NewReader(inv.stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return outcome{err: err}
	}
	limit := 20 * time.Second
	if inv.limit > 0 {
		limit = inv.limit
	}
	if inv.killAfter > 0 {
		limit = inv.killAfter
	}
	var killed bool
	var mu sync.Mutex
	timer := time.AfterFunc(limit, func() {
		mu.Lock()
		killed = true
		mu.Unlock()
		_ = cmd.Process.Kill()
	})
	err := cmd.Wait()
	timer.Stop()
	o := outcome{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	mu.Lock()
	o.killed = killed
	mu.Unlock()
	o.code = cmd.ProcessState.ExitCode()
	if rusageFile != "" {
		var ns int64
		b, rerr := os.ReadFile(rusageFile)
		if _, serr := fmt.Sscan(string(b), &o.rssKiB, &ns); rerr != nil || serr != nil {
			if !o.killed {
				o.err = fmt.Errorf("the wrapper reported no rusage (exit %d): %v %v\n%s", o.code, rerr, serr, o.stderr)
			}
		} else {
			o.took = time.Duration(ns)
		}
	}
	if o.killed && inv.killAfter == 0 {
		o.err = fmt.Errorf("no answer after %s: killed", limit)
	} else if _, ok := err.(*exec.ExitError); err != nil && !ok {
		o.err = err
	}
	var v map[string]any
	if json.Unmarshal([]byte(o.stdout), &v) == nil {
		o.result = v
		o.oneLine = strings.Count(o.stdout, "\n") == 1 && strings.HasSuffix(o.stdout, "\n")
	}
	return o
}

// want is what a run must have done.
type want struct {
	// success is the isSuccess Ratify reads.
	success bool
	// verdict and reason (any of reasons) of the report; empty: not checked.
	verdict string
	reasons []string
	// revocation is the report's revocationStatus; empty: not checked.
	revocation string
	// cached, when set, is the report's revocationCached.
	cached *bool
	// errorCode, when non-zero, wants an error object with that code
	// (exit 1) instead of a result.
	errorCode float64
	// warn is a substring of a WARN line on stderr.
	warn string
	// deadline overrides ratifyDeadline.
	deadline time.Duration
	// gap, when set, names a known gap (issue 11) in the product: a wrong
	// isSuccess, verdict, reason, revocation status, cache use or warning
	// is then logged as a gap instead of failing, unless HOSTILE_NO_GAPS=1.
	// The deadline, one JSON line, no panic, no credential and the memory
	// bound are always enforced.
	gap string
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// check asserts w and everything every run must do.
func check(t *testing.T, name string, o outcome, w want) {
	t.Helper()
	record(name, o)
	noGaps := os.Getenv("HOSTILE_NO_GAPS") == "1"
	if o.err != nil {
		t.Fatalf("run: %v\nstdout %s\nstderr %s", o.err, o.stdout, tail(o.stderr))
	}
	deadline := w.deadline
	if deadline == 0 {
		deadline = ratifyDeadline
	}
	if o.took >= deadline {
		// The plugin's own figure (from its main to its answer) tells a
		// plugin that overran its deadline from a machine so loaded that
		// starting and ending a process took the margin.
		own := time.Duration(0)
		if ms, ok := o.ext()["durationMs"].(float64); ok {
			own = time.Duration(ms) * time.Millisecond
		}
		if own > 0 && own <= deadline-loadMargin && o.took < deadline+loadSlack {
			t.Logf("LOADED MACHINE: answered after %s, %s of it in the plugin; Ratify gives up at %s", o.took.Round(time.Millisecond), own, deadline)
		} else {
			t.Errorf("answered after %s (%s of it in the plugin); Ratify gives up at %s", o.took.Round(time.Millisecond), own, deadline)
		}
	}
	if o.rssKiB > maxRSSKiB {
		t.Errorf("peak RSS %.1f MiB, over %d MiB", float64(o.rssKiB)/1024, maxRSSKiB>>10)
	}
	if strings.Contains(o.stderr, "panic:") || strings.Contains(o.stderr, "goroutine ") {
		t.Errorf("panic on stderr:\n%s", tail(o.stderr))
	}
	for _, s := range secrets {
		if strings.Contains(o.stdout, s) || strings.Contains(o.stderr, s) {
			t.Errorf("credential %q appears in the output", s)
		}
	}
	// Ratify reads stderr with stdout and tries any line with a brace as
	// JSON: hostile content echoed in a log line must not make one.
	for _, line := range strings.Split(o.stderr, "\n") {
		if strings.ContainsAny(line, "{}") {
			t.Errorf("stderr line with a brace (Ratify would try it as JSON): %.300q", line)
		}
	}
	if len(o.stdout) > maxStdout {
		t.Errorf("stdout is %d bytes, over %d", len(o.stdout), maxStdout)
	}
	if o.result == nil || (w.errorCode == 0 && !o.oneLine) {
		t.Fatalf("stdout is not exactly one JSON line (exit %d):\n%q\nstderr %s", o.code, tail(o.stdout), tail(o.stderr))
	}
	soft := t.Errorf
	if w.gap != "" && !noGaps {
		soft = func(format string, args ...any) {
			t.Logf("KNOWN GAP (%s): "+format, append([]any{w.gap}, args...)...)
			noteGap(name)
		}
	}
	if w.warn != "" && !warned(o.stderr, w.warn) {
		soft("no WARN line mentioning %q on stderr:\n%s", w.warn, tail(o.stderr))
	}
	if w.errorCode != 0 {
		if o.code != 1 || o.result["code"] == nil {
			t.Errorf("want an error object (exit 1), got exit %d: %s", o.code, o.stdout)
		} else if w.errorCode > 0 && o.result["code"] != w.errorCode {
			soft("error code %v, want %v: %s", o.result["code"], w.errorCode, o.stdout)
		}
		return
	}
	if o.code != 0 {
		t.Fatalf("exit %d, want 0 with a result: %s\nstderr %s", o.code, o.stdout, tail(o.stderr))
	}
	if got := o.result["isSuccess"]; got != w.success {
		soft("isSuccess %v, want %v: %s", got, w.success, o.result["message"])
	}
	if w.verdict != "" && o.str("verdict") != w.verdict {
		soft("verdict %q, want %q (reason %q): %s", o.str("verdict"), w.verdict, o.str("reason"), o.result["message"])
	}
	if len(w.reasons) > 0 && !slices.Contains(w.reasons, o.str("reason")) {
		soft("reason %q, want one of %q: %s", o.str("reason"), w.reasons, o.result["message"])
	}
	if w.revocation != "" && o.str("revocationStatus") != w.revocation {
		soft("revocationStatus %q, want %q: %s", o.str("revocationStatus"), w.revocation, o.result["message"])
	}
	if w.cached != nil {
		if got, _ := o.ext()["revocationCached"].(bool); got != *w.cached {
			soft("revocationCached %v, want %v: %s", got, *w.cached, o.result["message"])
		}
	}
}

// Shorthands for the usual expectations.
func verified() want { return want{success: true, verdict: "verified"} }
func refused(reasons ...string) want {
	return want{verdict: "refused", reasons: reasons}
}
func couldNotCheck(reasons ...string) want {
	return want{verdict: "couldNotCheck", reasons: reasons}
}

// gapped marks w as a known gap.
func gapped(w want, gap string) want {
	w.gap = gap
	return w
}

func warned(stderr, about string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "WARN") && strings.Contains(strings.ToLower(line), strings.ToLower(about)) {
			return true
		}
	}
	return false
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// The summary of every checked run, printed after the tests.
type row struct {
	name, verdict string
	ms            int64
	mib           float64
}

var (
	rowsMu sync.Mutex
	rows   []row
	gaps   = map[string]bool{}
)

func noteGap(name string) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	gaps[name] = true
}

func record(name string, o outcome) {
	v := "-"
	switch {
	case o.killed:
		v = "killed"
	case o.result != nil && o.result["code"] != nil && o.result["isSuccess"] == nil:
		v = fmt.Sprintf("error code %v", o.result["code"])
	case o.result != nil:
		v = o.str("verdict")
		if r := o.str("reason"); r != "" {
			v += " " + r
		}
	case o.err != nil:
		v = "no answer"
	}
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, row{name: name, verdict: v, ms: o.took.Milliseconds(), mib: float64(o.rssKiB) / 1024})
}

func printSummary() {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-72s %-36s %7s %7s\n", "case", "verdict", "ms", "MiB")
	var worst, worstHeld row
	for _, r := range rows {
		if gaps[r.name] {
			r.verdict += " (GAP)"
		} else if r.mib > worstHeld.mib {
			worstHeld = r
		}
		fmt.Fprintf(&b, "%-72s %-36s %7d %7.1f\n", r.name, r.verdict, r.ms, r.mib)
		if r.mib > worst.mib {
			worst = r
		}
	}
	fmt.Fprintf(&b, "%d checked runs, %d known gaps; worst peak RSS %.1f MiB (%s); outside the known gaps %.1f MiB (%s)\n",
		len(rows), len(gaps), worst.mib, worst.name, worstHeld.mib, worstHeld.name)
	if testing.Verbose() {
		fmt.Print(b.String())
	}
}
