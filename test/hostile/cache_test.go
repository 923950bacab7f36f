package hostile

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cacheRun is a signature in its own registry and the run that verifies
// it under a strict policy with the on-disk revocation cache in cacheDir.
type cacheRun struct {
	a   *artifact
	reg *hreg
	inv invocation
}

func newCacheRun(w *world, parent, cacheDir, orasCache string, reg *hreg) (*cacheRun, error) {
	a, err := w.sign(signOpts{})
	if err != nil {
		return nil, err
	}
	c := &cacheRun{a: a, reg: reg}
	if c.reg == nil {
		c.reg = newRegistry(nil, nil)
	}
	c.reg.addArtifact(a)
	dir, err := runDir(parent, c.reg.host)
	if err != nil {
		return nil, err
	}
	if orasCache == "" {
		orasCache = filepath.Join(dir, "oras")
	}
	cfg := w.config("strict", "", map[string]any{"revocation": map[string]any{"timeout": "2s", "cacheTTL": "5m", "cacheDir": cacheDir}})
	in, err := stdinDoc(cfg, a.referenceDesc(), orasCache)
	if err != nil {
		return nil, err
	}
	c.inv = invocation{subject: c.reg.subjectRef(a), stdin: in, dir: dir}
	return c, nil
}

var entryName = regexp.MustCompile(`^[0-9a-f]{64}\.json$`)

// entries lists the revocation cache's entry files.
func entries(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if entryName.MatchString(de.Name()) {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	return out, nil
}

const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another uid")
	}
}

// revokedWant: the signature was revoked after its "not revoked" answer
// was cached; the entry is not the plugin's own, so AWS is asked again.
func revokedWant(warn string) want {
	w := refused(reasonRevoked)
	w.revocation = "revoked"
	w.warn = warn
	return w
}

// TestHostileCache plants a "not revoked" entry for a revoked signature
// (the plugin's own answer from before the revocation, then given to
// another uid, opened to others, or replaced): the revoked signature must
// be refused. The control case leaves the entry alone and shows it would
// otherwise be used.
func TestHostileCache(t *testing.T) {
	needRoot(t)
	w := getWorld(t)
	base := t.TempDir()
	copyTo := func(src, dst string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	}
	cases := []struct {
		name   string
		tamper func(dir, entry string) error
		want   want
	}{
		{"control: the plugin's own entry", func(string, string) error { return nil },
			want{success: true, verdict: "verified", revocation: "notRevoked", cached: yes()}},
		{"entry owned by another uid", func(_, e string) error { return os.Chown(e, nobody, nobody) }, revokedWant("cache")},
		{"entry mode 0666", func(_, e string) error { return os.Chmod(e, 0o666) }, revokedWant("cache")},
		{"entry mode 0644", func(_, e string) error { return os.Chmod(e, 0o644) }, revokedWant("cache")},
		{"entry mode 0640", func(_, e string) error { return os.Chmod(e, 0o640) }, revokedWant("cache")},
		{"entry a symlink to a copy", func(d, e string) error {
			cp := filepath.Join(filepath.Dir(d), "planted.json")
			if err := copyTo(e, cp); err != nil {
				return err
			}
			if err := os.Remove(e); err != nil {
				return err
			}
			return os.Symlink(cp, e)
		}, revokedWant("cache")},
		{"entry a hard link from outside the directory", func(d, e string) error {
			cp := filepath.Join(filepath.Dir(d), "planted.json")
			if err := copyTo(e, cp); err != nil {
				return err
			}
			if err := os.Chown(cp, nobody, nobody); err != nil {
				return err
			}
			if err := os.Remove(e); err != nil {
				return err
			}
			return os.Link(cp, e)
		}, revokedWant("cache")},
		{"entry a FIFO", func(_, e string) error {
			if err := os.Remove(e); err != nil {
				return err
			}
			return syscall.Mkfifo(e, 0o600)
		}, revokedWant("")},
		{"entry a directory", func(_, e string) error {
			if err := os.Remove(e); err != nil {
				return err
			}
			return os.Mkdir(e, 0o700)
		}, revokedWant("")},
		{"cache directory owned by another uid", func(d, _ string) error { return os.Chown(d, nobody, nobody) }, revokedWant("cache")},
		{"cache directory world-writable, entry of another uid", func(d, e string) error {
			if err := os.Chmod(d, 0o777); err != nil {
				return err
			}
			return os.Chown(e, nobody, nobody)
		}, revokedWant("cache")},
	}
	type res struct {
		prime, o outcome
		err      error
	}
	out := make([]res, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			r := &out[i]
			caseDir, err := os.MkdirTemp(base, "case-")
			if err != nil {
				r.err = err
				return
			}
			cacheDir := filepath.Join(caseDir, "revocation")
			cr, err := newCacheRun(w, caseDir, cacheDir, "", nil)
			if err != nil {
				r.err = err
				return
			}
			defer cr.reg.close()
			r.prime = run(cr.inv)
			es, err := entries(cacheDir)
			if err != nil || len(es) != 1 {
				r.err = fmt.Errorf("after the first run the cache holds %d entries (%v), want 1", len(es), err)
				return
			}
			if err := w.emu.RevokeJob(cr.a.jobARN); err != nil {
				r.err = err
				return
			}
			if err := c.tamper(cacheDir, es[0]); err != nil {
				r.err = err
				return
			}
			r.o = run(cr.inv)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := out[i]
			if r.prime.result != nil {
				check(t, t.Name()+" (priming)", r.prime, want{success: true, verdict: "verified", cached: no()})
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			check(t, t.Name(), r.o, c.want)
		})
	}
}

// TestConcurrentRunsOneCache starts 40 plugin runs at once on one
// revocation cache and one ORAS cache (4 good and 4 revoked signatures,
// 5 runs each); every verdict must be right, and so must the next runs.
func TestConcurrentRunsOneCache(t *testing.T) {
	w := getWorld(t)
	base := t.TempDir()
	cacheDir, orasCache := filepath.Join(base, "revocation"), filepath.Join(base, "oras")
	reg := newRegistry(nil, nil)
	defer reg.close()
	var runs []*cacheRun
	for i := range 8 {
		cr, err := newCacheRun(w, base, cacheDir, orasCache, reg)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := w.emu.RevokeJob(cr.a.jobARN); err != nil {
				t.Fatal(err)
			}
		}
		runs = append(runs, cr)
	}
	wantFor := func(i int) want {
		if i%2 == 1 {
			return revokedWant("")
		}
		return verified()
	}
	const n = 40
	outs := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i] = run(runs[i%len(runs)].inv)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent runs in %s", n, time.Since(t0).Round(time.Millisecond))
	for i, o := range outs {
		t.Run(fmt.Sprintf("run %02d signature %d", i, i%len(runs)), func(t *testing.T) { check(t, t.Name(), o, wantFor(i%len(runs))) })
	}
	for i, cr := range runs {
		t.Run(fmt.Sprintf("after, signature %d", i), func(t *testing.T) {
			wt := wantFor(i)
			if i%2 == 0 {
				wt.cached = yes()
			}
			check(t, t.Name(), run(cr.inv), wt)
		})
	}
}

// TestKilledRunsOneCache SIGKILLs 30 runs 1 to 40 ms after they start, on
// one revocation cache and one ORAS cache; then a good signature still
// verifies and a revoked one is still refused.
func TestKilledRunsOneCache(t *testing.T) {
	w := getWorld(t)
	base := t.TempDir()
	cacheDir, orasCache := filepath.Join(base, "revocation"), filepath.Join(base, "oras")
	reg := newRegistry(nil, nil)
	defer reg.close()
	good, err := newCacheRun(w, base, cacheDir, orasCache, reg)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := newCacheRun(w, base, cacheDir, orasCache, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.emu.RevokeJob(revoked.a.jobARN); err != nil {
		t.Fatal(err)
	}
	const kills = 30
	killed := 0
	for i := range kills {
		inv := good.inv
		if i%2 == 1 {
			inv = revoked.inv
		}
		inv.killAfter = time.Millisecond + time.Duration(i)*39*time.Millisecond/(kills-1)
		if o := run(inv); o.killed {
			killed++
		} else if o.err != nil {
			t.Fatalf("run %d: %v", i, o.err)
		}
	}
	t.Logf("%d of %d runs killed before they answered", killed, kills)
	for round := range 2 {
		t.Run(fmt.Sprintf("good after kills %d", round), func(t *testing.T) { check(t, t.Name(), run(good.inv), verified()) })
		t.Run(fmt.Sprintf("revoked after kills %d", round), func(t *testing.T) { check(t, t.Name(), run(revoked.inv), revokedWant("")) })
	}
}
