package revocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DiskCache is a Cache kept as one small JSON file per key in a directory,
// so that the many short-lived plugin processes Ratify starts share answers.
// It is safe for concurrent use by goroutines and by processes sharing the
// directory (on a local file system). Every I/O failure is a miss or a
// no-op: the cache never makes a check fail.
type DiskCache struct {
	dir     string
	max     int
	now     func() time.Time
	warn    func(format string, args ...any)
	counter string // path of the entry-count hint file
}

// DiskCacheOptions tunes a DiskCache. The zero value is usable.
type DiskCacheOptions struct {
	// MaxEntries bounds the entry files kept (DefaultDiskCacheEntries if <= 0).
	MaxEntries int
	// Now is the clock (time.Now if nil); for tests.
	Now func() time.Time
	// Warn is told of entries that are ignored because this process did
	// not write them (may be nil).
	Warn func(format string, args ...any)
}

// DefaultDiskCacheEntries is the MaxEntries used when none is given.
const DefaultDiskCacheEntries = 4096

const (
	diskFormat    = 1
	entrySuffix   = ".json"
	tmpPrefix     = ".tmp-"
	counterName   = ".count"
	maxEntryBytes = 1 << 20
	// staleTemp is the age after which a temporary file is taken to be left
	// over by a process that died between creating and renaming it.
	staleTemp = time.Hour
	// prunePasses bounds the rescans one prune makes when other writers
	// keep adding entries while it runs.
	prunePasses = 3
)

// maxExpiry is the latest expiry JSON can carry (RFC 3339 stops at 9999).
var maxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// pruneMu serialises prunes within this process (across all DiskCaches):
// see noteAdded for why a prune must not be skipped.
var pruneMu sync.Mutex

// prunes counts prunes (directory scans), for tests.
var prunes atomic.Int64

// diskEntry is the file format.
type diskEntry struct {
	V       int        `json:"v"`
	Key     string     `json:"key"`
	Revoked []string   `json:"revoked,omitempty"`
	Region  string     `json:"region,omitempty"`
	Expires *time.Time `json:"expires,omitempty"` // nil: never
}

func (e *diskEntry) expired(now time.Time) bool {
	return e.Expires != nil && !now.Before(*e.Expires)
}

// OpenDiskCache prepares dir (created with mode 0700 if missing) and checks
// that entries can be written there. It refuses a directory owned by another
// user, and removes group and other write permission from one it owns, since
// whoever can write entries can hide a revocation. The caller is expected to
// run without a cache when it fails.
func OpenDiskCache(dir string, opts DiskCacheOptions) (*DiskCache, error) {
	if dir == "" {
		return nil, errors.New("revocation cache: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("revocation cache directory %s cannot be created: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("revocation cache directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("revocation cache directory %s is not a directory", dir)
	}
	if uid, ok := fileOwner(fi); ok {
		if me := os.Geteuid(); me >= 0 && uid != me {
			return nil, fmt.Errorf("revocation cache directory %s is owned by uid %d, not by this process (uid %d); use a directory of its own", dir, uid, me)
		}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		if err := os.Chmod(dir, perm&^0o022); err != nil {
			return nil, fmt.Errorf("revocation cache directory %s is writable by other users and cannot be restricted: %w", dir, err)
		}
	}
	probe, err := os.CreateTemp(dir, tmpPrefix+"probe-*")
	if err != nil {
		return nil, fmt.Errorf("revocation cache directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	c := &DiskCache{dir: dir, max: opts.MaxEntries, now: opts.Now, warn: opts.Warn, counter: filepath.Join(dir, counterName)}
	if c.max <= 0 {
		c.max = DefaultDiskCacheEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	if _, err := os.Lstat(c.counter); errors.Is(err, fs.ErrNotExist) {
		c.prune() // first use of the directory: count what is there
	}
	return c, nil
}

// Get implements Cache. It reads one file; expired and unreadable entries
// are misses, and expired or corrupt files are removed. An entry this user
// did not write (another owner, group or other permissions, a symbolic
// link, not a regular file) is a miss, with a warning: whoever can plant
// an entry could otherwise hide a revocation.
func (c *DiskCache) Get(key string) (Answer, bool) {
	if !validKey(key) {
		return Answer{}, false
	}
	p := c.path(key)
	e, fi, err := readEntry(p, key)
	if err != nil {
		switch {
		case errors.Is(err, errCorrupt):
			removeIfSame(p, fi)
		case errors.Is(err, errNotOurs), errors.Is(err, errNotRegular):
			if c.warn != nil {
				c.warn("revocation cache entry %s ignored: %v; AWS Signer is asked instead (remove files of other users from %s)", p, err, c.dir)
			}
		}
		return Answer{}, false
	}
	if e.expired(c.now()) {
		removeIfSame(p, fi)
		return Answer{}, false
	}
	return Answer{Revoked: e.Revoked, Region: e.Region}, true
}

// Put implements Cache. ttl == Forever never expires; ttl <= 0 stores
// nothing. The entry is written to a temporary file and renamed into place,
// so readers see the old or the new entry, never part of one.
func (c *DiskCache) Put(key string, a Answer, ttl time.Duration) {
	if !validKey(key) || ttl <= 0 {
		return
	}
	e := diskEntry{V: diskFormat, Key: key, Revoked: a.Revoked, Region: a.Region}
	if ttl != Forever {
		exp := c.now().Add(ttl).UTC()
		if exp.After(maxExpiry) {
			exp = maxExpiry
		}
		e.Expires = &exp
	}
	data, err := json.Marshal(e)
	if err != nil || len(data) > maxEntryBytes {
		return
	}
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+"*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if err := os.Rename(tmp.Name(), c.path(key)); err != nil {
		os.Remove(tmp.Name())
		return
	}
	c.noteAdded()
}

// noteAdded keeps the counter, whose size is a shared, lock-free upper bound
// on the number of entry files: each Put appends one byte after its rename
// (O_APPEND, so concurrent processes lose no appends; overwrites count too,
// as telling them apart races with removals), removals never shrink it, and
// a prune replaces it by a count. A Put whose append leaves it above
// MaxEntries prunes; a prune leaves at most 7/8 of MaxEntries, so the
// directory is listed about once per MaxEntries/8 Puts, not on every Put.
//
// An append can land in a counter file a concurrent prune has just
// replaced; that file was already above the bound (or gone), so the
// appender prunes too, and the recount at the end of every prune covers
// entries renamed into place while it ran.
func (c *DiskCache) noteAdded() {
	f, err := openAppendNoFollow(c.counter)
	if err != nil {
		c.prune() // missing (or a link, which prune replaces): count afresh
		return
	}
	_, werr := f.Write([]byte{'+'})
	fi, serr := f.Stat()
	f.Close()
	if werr != nil || serr != nil || fi.Size() > int64(c.max) {
		c.prune()
	}
}

// prune brings the directory down to a low mark of 7/8 of MaxEntries
// entries (MaxEntries when below 8) when it holds more, so the next prune
// is some Puts away: expired and corrupt entries go first, then not-revoked
// entries oldest (by modification time) first, then revoked ones. It also
// removes stale temporary files and rewrites the counter.
func (c *DiskCache) prune() {
	pruneMu.Lock()
	defer pruneMu.Unlock()
	prunes.Add(1)
	for pass := 1; ; pass++ {
		kept, ok := c.prunePass()
		if !ok {
			return
		}
		c.writeCounter(kept)
		// Entries created during the pass may be missing from kept, and
		// their appends may have gone to the replaced counter: recount.
		n, ok := c.countEntries()
		if !ok {
			return
		}
		if n <= c.max || pass == prunePasses {
			if n > kept {
				c.appendCounter(n - kept)
			}
			return
		}
	}
}

// prunePass scans once and returns how many entries it left.
func (c *DiskCache) prunePass() (int, bool) {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, false
	}
	var names []string
	for _, de := range des {
		name := de.Name()
		switch {
		case isEntryName(name):
			names = append(names, name)
		case strings.HasPrefix(name, tmpPrefix):
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				os.Remove(filepath.Join(c.dir, name))
			}
		}
	}
	low := c.max - c.max/8
	if len(names) <= low {
		return len(names), true
	}

	type candidate struct {
		path    string
		mod     time.Time
		revoked bool
	}
	now := c.now()
	var cands []candidate
	unreadable := 0
	for _, name := range names {
		p := filepath.Join(c.dir, name)
		e, fi, err := readEntry(p, strings.TrimSuffix(name, entrySuffix))
		switch {
		case err == nil && e.expired(now):
			removeIfSame(p, fi)
		case err == nil:
			cands = append(cands, candidate{p, fi.ModTime(), len(e.Revoked) > 0})
		case errors.Is(err, errCorrupt), errors.Is(err, errNotOurs):
			removeIfSame(p, fi)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotRegular):
			// Gone since the listing, or not an entry file.
		default:
			unreadable++ // counted, to stay an upper bound
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].revoked != cands[j].revoked {
			return !cands[i].revoked
		}
		return cands[i].mod.Before(cands[j].mod)
	})
	drop := min(max(len(cands)+unreadable-low, 0), len(cands))
	for _, cand := range cands[:drop] {
		os.Remove(cand.path)
	}
	return len(cands) - drop + unreadable, true
}

// countEntries counts entry file names, reading no file.
func (c *DiskCache) countEntries() (int, bool) {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, false
	}
	n := 0
	for _, de := range des {
		if isEntryName(de.Name()) {
			n++
		}
	}
	return n, true
}

// writeCounter replaces the counter by one of size n (a sparse file).
func (c *DiskCache) writeCounter(n int) {
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+"count-*")
	if err != nil {
		return
	}
	terr := tmp.Truncate(int64(n))
	cerr := tmp.Close()
	if terr != nil || cerr != nil || os.Rename(tmp.Name(), c.counter) != nil {
		os.Remove(tmp.Name())
	}
}

func (c *DiskCache) appendCounter(n int) {
	f, err := openAppendNoFollow(c.counter)
	if err != nil {
		return
	}
	f.Write([]byte(strings.Repeat("+", n)))
	f.Close()
}

func (c *DiskCache) path(key string) string {
	return filepath.Join(c.dir, key+entrySuffix)
}

var (
	errCorrupt    = errors.New("corrupt revocation cache entry")
	errNotRegular = errors.New("revocation cache entry is not a regular file")
	errNotOurs    = errors.New("revocation cache entry was not written by this user")
)

// readEntry reads and checks one entry file. fi (the opened file's) is set
// whenever the file could be opened, so a corrupt file can be removed
// without removing a good one renamed over it since.
func readEntry(path, key string) (*diskEntry, fs.FileInfo, error) {
	f, err := openNoFollow(path)
	if err != nil {
		if isSymlinkErr(err) {
			fi, _ := os.Lstat(path)
			return nil, fi, fmt.Errorf("%w: %s is a symbolic link", errNotOurs, path)
		}
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fi, errNotRegular
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return nil, fi, fmt.Errorf("%w: owned by uid %d, not %d", errNotOurs, uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fi, fmt.Errorf("%w: mode %v lets others read or write it (entries are written 0600)", errNotOurs, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntryBytes+1))
	if err != nil {
		return nil, fi, err
	}
	var e diskEntry
	if len(data) > maxEntryBytes || json.Unmarshal(data, &e) != nil || e.V != diskFormat || e.Key != key {
		return nil, fi, errCorrupt
	}
	return &e, fi, nil
}

// removeIfSame removes path if it is still the file fi describes.
func removeIfSame(path string, fi fs.FileInfo) {
	if fi == nil {
		return
	}
	if cur, err := os.Lstat(path); err == nil && os.SameFile(cur, fi) {
		os.Remove(path)
	}
}

// validKey accepts what Key returns: 64 lowercase hex digits.
func validKey(key string) bool {
	if len(key) != 64 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; (b < '0' || b > '9') && (b < 'a' || b > 'f') {
			return false
		}
	}
	return true
}

func isEntryName(name string) bool {
	return strings.HasSuffix(name, entrySuffix) && validKey(strings.TrimSuffix(name, entrySuffix))
}
