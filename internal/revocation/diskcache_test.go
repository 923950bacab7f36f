package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func testKey(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

func openTestCache(t testing.TB, dir string, opts DiskCacheOptions) *DiskCache {
	t.Helper()
	c, err := OpenDiskCache(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listDir returns the entry files and the temporary files in dir.
func listDir(t testing.TB, dir string) (entries, temps []string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		switch name := de.Name(); {
		case isEntryName(name):
			entries = append(entries, name)
		case strings.HasPrefix(name, tmpPrefix):
			temps = append(temps, name)
		}
	}
	return entries, temps
}

// fakeClock is a settable clock for single-goroutine tests.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

func TestDiskCacheRoundTripAndFileFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	clock := &fakeClock{time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := openTestCache(t, dir, DiskCacheOptions{Now: clock.now})
	if c.dir != dir {
		t.Fatalf("dir = %q, want %q", c.dir, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v %v, want mode 0700", fi.Mode(), err)
	}

	ok, revoked := testKey(1), testKey(2)
	c.Put(ok, Answer{Region: "us-west-2", Cached: true}, time.Minute)
	c.Put(revoked, Answer{Revoked: []string{"arn:aws:signer:us-west-2:1:/signing-jobs/j"}, Region: "eu-west-1"}, Forever)

	a, hit := c.Get(ok)
	if !hit || a.Cached || a.IsRevoked() || a.Region != "us-west-2" {
		t.Fatalf("Get(not revoked) = %+v %v", a, hit)
	}
	a, hit = c.Get(revoked)
	if !hit || a.Cached || !slices.Equal(a.Revoked, []string{"arn:aws:signer:us-west-2:1:/signing-jobs/j"}) || a.Region != "eu-west-1" {
		t.Fatalf("Get(revoked) = %+v %v", a, hit)
	}

	for key, wantExpires := range map[string]string{ok: "2030-01-02T03:05:05Z", revoked: ""} {
		p := filepath.Join(dir, key+".json")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(p)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if m["v"] != float64(1) || m["key"] != key {
			t.Errorf("%s: wrong version or key", data)
		}
		if got, _ := m["expires"].(string); got != wantExpires {
			t.Errorf("%s: expires %q, want %q", data, got, wantExpires)
		}
		if _, has := m["cached"]; has {
			t.Errorf("%s: stores the Cached flag", data)
		}
	}
	if entries, temps := listDir(t, dir); len(entries) != 2 || len(temps) != 0 {
		t.Fatalf("entries %v, temporary files %v", entries, temps)
	}
}

func TestDiskCacheExpiry(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{time.Unix(2e9, 0)}
	c := openTestCache(t, dir, DiskCacheOptions{Now: clock.now})
	ok, revoked, long := testKey(1), testKey(2), testKey(3)
	c.Put(ok, Answer{Region: "r"}, time.Minute)
	c.Put(revoked, Answer{Revoked: []string{"x"}}, Forever)
	c.Put(long, Answer{Region: "r"}, Forever-1) // about 292 years

	clock.t = clock.t.Add(time.Minute - time.Nanosecond)
	if _, hit := c.Get(ok); !hit {
		t.Fatal("miss before the TTL")
	}
	clock.t = clock.t.Add(time.Nanosecond)
	if _, hit := c.Get(ok); hit {
		t.Fatal("hit at the TTL")
	}
	if _, err := os.Stat(filepath.Join(dir, ok+".json")); !os.IsNotExist(err) {
		t.Fatalf("expired file kept: %v", err)
	}
	clock.t = clock.t.AddDate(290, 0, 0)
	if _, hit := c.Get(long); !hit {
		t.Fatal("miss for a long TTL")
	}
	clock.t = clock.t.AddDate(1000, 0, 0)
	if a, hit := c.Get(revoked); !hit || !a.IsRevoked() {
		t.Fatalf("revoked answer lost after 1000 years: %+v %v", a, hit)
	}
	if _, hit := c.Get(long); hit {
		t.Fatal("hit after a long TTL")
	}

	// An expiry past what RFC 3339 can write is clamped to year 9999.
	clock.t = time.Date(9900, 1, 1, 0, 0, 0, 0, time.UTC)
	c.Put(long, Answer{Region: "r"}, 200*365*24*time.Hour)
	if _, hit := c.Get(long); !hit {
		t.Fatal("miss for an expiry past year 9999")
	}

	for _, ttl := range []time.Duration{0, -time.Second} {
		k := testKey(10 + int(ttl))
		c.Put(k, Answer{}, ttl)
		if _, hit := c.Get(k); hit {
			t.Fatalf("ttl %v stored", ttl)
		}
	}
	if entries, _ := listDir(t, dir); len(entries) != 2 {
		t.Fatalf("entries %v, want the revoked and the long one", entries)
	}
}

func TestDiskCacheRejectsBadKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c := openTestCache(t, dir, DiskCacheOptions{})
	good := testKey(1)
	bad := []string{
		"",
		good[:63],
		good + "0",
		strings.ToUpper(good),
		"../" + good[3:],
		good[:60] + "/../",
		strings.Repeat("g", 64),
		good[:63] + "\x00",
		"..",
		"/etc/passwd",
	}
	for _, k := range bad {
		c.Put(k, Answer{Region: "r"}, time.Hour)
		if _, hit := c.Get(k); hit {
			t.Errorf("hit for bad key %q", k)
		}
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if de.Name() != counterName {
			t.Errorf("bad key wrote %s", de.Name())
		}
	}
	parent, _ := os.ReadDir(filepath.Dir(dir))
	if len(parent) != 1 {
		t.Errorf("files written outside the cache directory: %v", parent)
	}
}

func TestDiskCacheToleratesBadFiles(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir, DiskCacheOptions{})
	key := testKey(1)
	p := filepath.Join(dir, key+".json")
	c.Put(key, Answer{Region: "r"}, time.Hour)
	valid, _ := os.ReadFile(p)

	corrupt := map[string]string{
		"empty":          "",
		"garbage":        "\x00\xff garbage",
		"truncated":      string(valid[:len(valid)/2]),
		"trailing data":  string(valid) + "{}",
		"null":           "null",
		"array":          "[]",
		"string":         `"x"`,
		"no fields":      "{}",
		"wrong version":  strings.Replace(string(valid), `"v":1`, `"v":2`, 1),
		"other key":      strings.Replace(string(valid), key, testKey(2), 1),
		"revoked number": `{"v":1,"key":"` + key + `","revoked":5}`,
		"bad expiry":     `{"v":1,"key":"` + key + `","expires":"tomorrow"}`,
		"too large":      `{"v":1,"key":"` + key + `","region":"` + strings.Repeat("a", maxEntryBytes) + `"}`,
	}
	for name, content := range corrupt {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if a, hit := c.Get(key); hit {
			t.Errorf("%s: hit %+v", name, a)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: corrupt file not removed (%v)", name, err)
		}
	}

	// Not a regular file: a miss, left alone; a Put over it fails quietly
	// and leaves no temporary file.
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, hit := c.Get(key); hit {
		t.Error("hit for a directory")
	}
	c.Put(key, Answer{Region: "r"}, time.Hour)
	if _, temps := listDir(t, dir); len(temps) != 0 {
		t.Errorf("failed Put left %v", temps)
	}
	os.RemoveAll(p)

	// A file listed but gone when read (a dangling link stands for one
	// removed in between): a miss for Get, skipped by a prune.
	if err := os.Symlink(filepath.Join(dir, "gone"), p); err != nil {
		t.Fatal(err)
	}
	if _, hit := c.Get(key); hit {
		t.Error("hit for a vanished file")
	}
	c.max = 1
	c.Put(testKey(2), Answer{}, time.Hour)
	c.Put(testKey(3), Answer{}, time.Hour)
	c.prune()
	if entries, _ := listDir(t, dir); len(entries) > 2 { // the link and one entry
		t.Errorf("entries after prune: %v", entries)
	}
}

func TestDiskCacheBoundedOneInstance(t *testing.T) {
	dir := t.TempDir()
	const max = 5
	c := openTestCache(t, dir, DiskCacheOptions{MaxEntries: max})
	for i := 0; i < 60; i++ {
		c.Put(testKey(i), Answer{Region: strconv.Itoa(i)}, time.Hour)
		if entries, _ := listDir(t, dir); len(entries) > max {
			t.Fatalf("after Put %d: %d entries, bound is %d", i, len(entries), max)
		}
		if a, hit := c.Get(testKey(i)); !hit || a.Region != strconv.Itoa(i) {
			t.Fatalf("latest entry %d missing", i)
		}
	}
	if _, temps := listDir(t, dir); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

func TestDiskCacheBoundedTwoInstances(t *testing.T) {
	dir := t.TempDir()
	const max = 6
	a := openTestCache(t, dir, DiskCacheOptions{MaxEntries: max})
	b := openTestCache(t, dir, DiskCacheOptions{MaxEntries: max})
	for i := 0; i < 80; i++ {
		c := a
		if i%3 == 0 {
			c = b
		}
		c.Put(testKey(i), Answer{}, time.Hour)
		c.Put(testKey(i/2), Answer{}, time.Hour) // overwrites too
		if entries, _ := listDir(t, dir); len(entries) > max {
			t.Fatalf("after Put %d: %d entries, bound is %d", i, len(entries), max)
		}
	}
	// The counter file lost (or never made by an older version) is
	// recounted, not trusted as zero.
	os.Remove(filepath.Join(dir, counterName))
	for i := 100; i < 120; i++ {
		a.Put(testKey(i), Answer{}, time.Hour)
		if entries, _ := listDir(t, dir); len(entries) > max {
			t.Fatalf("without counter, after Put %d: %d entries", i, len(entries))
		}
	}
}

func TestDiskCacheDoesNotScanOnEveryPut(t *testing.T) {
	dir := t.TempDir()
	const max, puts = 64, 1000
	c := openTestCache(t, dir, DiskCacheOptions{MaxEntries: max})
	before := prunes.Load()
	for i := 0; i < puts; i++ {
		c.Put(testKey(i), Answer{}, time.Hour)
	}
	// The low mark is max-max/8, so one scan per max/8 Puts.
	limit := int64(puts/(max/8) + 2)
	if n := prunes.Load() - before; n > limit {
		t.Fatalf("%d scans for %d Puts of new keys, want at most %d", n, puts, limit)
	} else {
		t.Logf("%d Puts of new keys made %d scans", puts, n)
	}
	before = prunes.Load()
	for i := 0; i < puts; i++ {
		c.Put(testKey(i%max), Answer{}, time.Hour)
	}
	if n := prunes.Load() - before; n > limit {
		t.Fatalf("%d scans for %d overwrites, want at most %d", n, puts, limit)
	}
	if entries, _ := listDir(t, dir); len(entries) > max {
		t.Fatalf("%d entries", len(entries))
	}
}

func TestDiskCachePruneOrder(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{time.Now()}
	c := openTestCache(t, dir, DiskCacheOptions{MaxEntries: 4, Now: clock.now})
	age := func(key string, d time.Duration) {
		t.Helper()
		when := time.Now().Add(-d)
		if err := os.Chtimes(filepath.Join(dir, key+".json"), when, when); err != nil {
			t.Fatal(err)
		}
	}
	revoked, expired, old, mid, fresh, newest := testKey(1), testKey(2), testKey(3), testKey(4), testKey(5), testKey(6)
	c.Put(revoked, Answer{Revoked: []string{"x"}}, Forever)
	age(revoked, 5*time.Hour) // the oldest file
	c.Put(old, Answer{}, 10*time.Hour)
	age(old, 4*time.Hour)
	c.Put(mid, Answer{}, 10*time.Hour)
	age(mid, 3*time.Hour)
	c.Put(expired, Answer{}, time.Minute)
	age(expired, time.Hour) // newer than old and mid, but expired below

	clock.t = clock.t.Add(time.Hour)
	c.Put(fresh, Answer{}, 10*time.Hour) // 5 entries: the expired one goes
	if got, _ := listDir(t, dir); !slices.Equal(got, sortedNames(revoked, old, mid, fresh)) {
		t.Fatalf("after the 5th entry: %v", got)
	}
	c.Put(newest, Answer{}, 10*time.Hour) // the oldest not-revoked one goes
	if got, _ := listDir(t, dir); !slices.Equal(got, sortedNames(revoked, mid, fresh, newest)) {
		t.Fatalf("after the 6th entry: %v", got)
	}

	// All revoked: the oldest revoked one goes.
	dir2 := t.TempDir()
	c2 := openTestCache(t, dir2, DiskCacheOptions{MaxEntries: 2})
	for i := 0; i < 3; i++ {
		c2.Put(testKey(i), Answer{Revoked: []string{"x"}}, Forever)
		when := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(filepath.Join(dir2, testKey(i)+".json"), when, when)
	}
	if got, _ := listDir(t, dir2); !slices.Equal(got, sortedNames(testKey(1), testKey(2))) {
		t.Fatalf("all revoked: %v", got)
	}
}

func sortedNames(keys ...string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k+".json")
	}
	slices.Sort(out)
	return out
}

func TestDiskCacheRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir, DiskCacheOptions{})
	stale, live := filepath.Join(dir, tmpPrefix+"dead"), filepath.Join(dir, tmpPrefix+"busy")
	for _, p := range []string{stale, live} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	os.Chtimes(stale, old, old)
	c.prune()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temporary file kept")
	}
	if _, err := os.Stat(live); err != nil {
		t.Error("recent temporary file removed")
	}
}

// variant is answer j for key k in the concurrency tests: its region names
// both, so an answer served for the wrong key is caught.
func variant(k, j int) (Answer, time.Duration) {
	a := Answer{Region: fmt.Sprintf("region-%d-%d", k, j)}
	if j == 2 {
		a.Revoked = []string{fmt.Sprintf("arn:aws:signer:us-east-1:1:/signing-jobs/%d", k)}
		return a, Forever
	}
	return a, time.Hour
}

// checkAnswer tells what is wrong with a Get result for key k, if anything.
func checkAnswer(k int, a Answer, hit bool) error {
	if !hit {
		return nil
	}
	if a.Cached {
		return fmt.Errorf("key %d: Cached set by Get", k)
	}
	for j := 0; j < 3; j++ {
		want, _ := variant(k, j)
		if a.Region == want.Region && slices.Equal(a.Revoked, want.Revoked) {
			return nil
		}
	}
	return fmt.Errorf("key %d: answer never Put: %+v", k, a)
}

// exercise runs ops random Gets and Puts over keys keys.
func exercise(c *DiskCache, seed uint64, ops, keys int) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < ops; i++ {
		k := r.IntN(keys)
		if r.IntN(2) == 0 {
			a, ttl := variant(k, r.IntN(3))
			c.Put(testKey(k), a, ttl)
			continue
		}
		a, hit := c.Get(testKey(k))
		if err := checkAnswer(k, a, hit); err != nil {
			return err
		}
	}
	return nil
}

func TestDiskCacheConcurrentGoroutines(t *testing.T) {
	for _, max := range []int{0, 4} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			dir := t.TempDir()
			const goroutines, ops, keys = 16, 200, 8
			caches := []*DiskCache{
				openTestCache(t, dir, DiskCacheOptions{MaxEntries: max}),
				openTestCache(t, dir, DiskCacheOptions{MaxEntries: max}),
			}
			stop := make(chan struct{})
			var chaos sync.WaitGroup
			chaos.Add(1)
			go func() { // removes and garbles entries meanwhile
				defer chaos.Done()
				r := rand.New(rand.NewPCG(99, 2))
				for {
					select {
					case <-stop:
						return
					default:
					}
					p := filepath.Join(dir, testKey(r.IntN(keys))+".json")
					if r.IntN(2) == 0 {
						os.Remove(p)
					} else if f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
						f.Write([]byte(`{"v":1,"key":`))
						f.Close()
					}
					time.Sleep(200 * time.Microsecond)
				}
			}()
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- exercise(caches[g%2], uint64(g), ops, keys)
				}()
			}
			wg.Wait()
			close(stop)
			chaos.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			entries, temps := listDir(t, dir)
			if max > 0 && len(entries) > max {
				t.Errorf("%d entries, bound is %d", len(entries), max)
			}
			if len(temps) != 0 {
				t.Errorf("temporary files left: %v", temps)
			}
		})
	}
}

const helperEnv = "RATIFY_AWS_SIGNER_DISKCACHE_HELPER"

// TestDiskCacheHelperProcess is one of the processes of
// TestDiskCacheConcurrentProcesses; it does nothing on its own.
func TestDiskCacheHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("run by TestDiskCacheConcurrentProcesses")
	}
	dir, seed, _ := strings.Cut(spec, "|")
	n, _ := strconv.ParseUint(seed, 10, 64)
	c, err := OpenDiskCache(dir, DiskCacheOptions{MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := exercise(c, n, 400, 12); err != nil {
		t.Fatal(err)
	}
}

func TestDiskCacheConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	const procs = 4
	var wg sync.WaitGroup
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestDiskCacheHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", helperEnv, dir, i))
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	entries, temps := listDir(t, dir)
	if len(entries) > 8 {
		t.Errorf("%d entries, bound is 8", len(entries))
	}
	if len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
	c := openTestCache(t, dir, DiskCacheOptions{MaxEntries: 8})
	for k := 0; k < 12; k++ {
		a, hit := c.Get(testKey(k))
		if err := checkAnswer(k, a, hit); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenDiskCacheErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "cache")} {
		if _, err := OpenDiskCache(dir, DiskCacheOptions{}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("OpenDiskCache(%s): %v, want an error naming the path", dir, err)
		}
	}
	if _, err := OpenDiskCache("", DiskCacheOptions{}); err == nil {
		t.Error("empty directory name accepted")
	}

	// Ours but open to others: tightened.
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o700)
	os.Chmod(loose, 0o777)
	openTestCache(t, loose, DiskCacheOptions{})
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}

	if os.Geteuid() == 0 {
		// Root ignores permissions, but ownership still tells.
		foreign := filepath.Join(base, "foreign")
		os.Mkdir(foreign, 0o700)
		if err := os.Chown(foreign, 12345, 12345); err != nil {
			t.Skip(err)
		}
		if _, err := OpenDiskCache(foreign, DiskCacheOptions{}); err == nil || !strings.Contains(err.Error(), foreign) {
			t.Errorf("directory of another user: %v", err)
		}
		return
	}
	ro := filepath.Join(base, "ro")
	os.Mkdir(ro, 0o500)
	for _, dir := range []string{ro, filepath.Join(ro, "sub")} {
		if _, err := OpenDiskCache(dir, DiskCacheOptions{}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("OpenDiskCache(%s): %v, want an error naming the path", dir, err)
		}
	}
}

// counting is a Checker that counts calls and returns a fixed answer.
type counting struct {
	mu     sync.Mutex
	calls  int
	answer Answer
}

func (c *counting) Check(context.Context, Request) (Answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.answer, nil
}

func TestCachedSharesAnswersAcrossDiskCaches(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	req := Request{ProfileVersionARN: "arn:aws:signer:us-west-2:1:/signing-profiles/p/v", JobARN: "arn:aws:signer:us-west-2:1:/signing-jobs/j", SigningTime: time.Unix(1e9, 0), CertificateHashes: []string{"a"}}
	revokedReq := req
	revokedReq.JobARN += "2"

	// Two "processes", each with its own DiskCache on the same directory.
	next1 := &counting{answer: Answer{Region: "us-west-2"}}
	next2 := &counting{answer: Answer{Region: "us-west-2"}}
	p1 := &Cached{Next: next1, Cache: openTestCache(t, dir, DiskCacheOptions{}), TTL: time.Minute}
	p2 := &Cached{Next: next2, Cache: openTestCache(t, dir, DiskCacheOptions{}), TTL: time.Minute}

	a, err := p1.Check(ctx, req)
	if err != nil || a.Cached || next1.calls != 1 {
		t.Fatalf("first process: %+v %v calls=%d", a, err, next1.calls)
	}
	a, err = p2.Check(ctx, req)
	if err != nil || !a.Cached || a.Region != "us-west-2" || next2.calls != 0 {
		t.Fatalf("second process did not use the first's answer: %+v %v calls=%d", a, err, next2.calls)
	}

	next2.answer = Answer{Revoked: []string{revokedReq.JobARN}, Region: "us-west-2"}
	if a, _ := p2.Check(ctx, revokedReq); !a.IsRevoked() || a.Cached || next2.calls != 1 {
		t.Fatalf("revocation from Next: %+v calls=%d", a, next2.calls)
	}
	if a, _ := p1.Check(ctx, revokedReq); !a.IsRevoked() || !a.Cached || next1.calls != 1 {
		t.Fatalf("revocation not shared: %+v calls=%d", a, next1.calls)
	}
	if entries, _ := listDir(t, dir); !reflect.DeepEqual(entries, sortedNames(Key(req), Key(revokedReq))) {
		t.Fatalf("entries %v", entries)
	}
}

func BenchmarkDiskCacheGet(b *testing.B) {
	c := openTestCache(b, b.TempDir(), DiskCacheOptions{})
	key := testKey(1)
	c.Put(key, Answer{Revoked: []string{"arn:aws:signer:us-west-2:123456789012:/signing-jobs/0123456789abcdef"}, Region: "us-west-2"}, Forever)
	b.ReportAllocs()
	for b.Loop() {
		if _, hit := c.Get(key); !hit {
			b.Fatal("miss")
		}
	}
}

func BenchmarkDiskCachePut(b *testing.B) {
	c := openTestCache(b, b.TempDir(), DiskCacheOptions{})
	key := testKey(1)
	b.ReportAllocs()
	for b.Loop() {
		c.Put(key, Answer{Region: "us-west-2"}, time.Hour)
	}
}

// TestDiskCacheTrustsOnlyItsOwnEntries: a "not revoked" entry planted in
// the cache directory by someone else must never answer.
func TestDiskCacheTrustsOnlyItsOwnEntries(t *testing.T) {
	key := strings.Repeat("ab", 32)
	notRevoked := Answer{Region: "us-west-2"}
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, path string)
		want  string
	}{
		{"group and other can read and write", func(t *testing.T, path string) { os.Chmod(path, 0o666) }, "lets others read or write"},
		{"other can read", func(t *testing.T, path string) { os.Chmod(path, 0o644) }, "lets others read or write"},
		{"symbolic link to a good entry", func(t *testing.T, path string) {
			real := filepath.Join(t.TempDir(), "elsewhere.json")
			if err := os.Rename(path, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"owned by another user", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var warnings []string
			c, err := OpenDiskCache(dir, DiskCacheOptions{Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})
			if err != nil {
				t.Fatal(err)
			}
			c.Put(key, notRevoked, time.Hour)
			if _, ok := c.Get(key); !ok {
				t.Fatal("own entry not read")
			}
			tc.plant(t, c.path(key))
			if a, ok := c.Get(key); ok {
				t.Fatalf("planted entry answered %+v", a)
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], tc.want) {
				t.Fatalf("warnings %q, want one containing %q", warnings, tc.want)
			}
			// The next answer replaces the planted file with one of ours.
			c.Put(key, Answer{Revoked: []string{"arn:aws:signer:us-west-2:1:/signing-jobs/x"}}, Forever)
			if a, ok := c.Get(key); !ok || !a.IsRevoked() {
				t.Fatalf("after Put: %+v %v", a, ok)
			}
		})
	}
}
