package hostile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// hostileSlots gives the run a TMPDIR whose ORAS cache base (the
// plugin's private slots, ratify-aws-signer-oras-<uid>) another uid created
// first, world-writable, and planted each slot with plant.
func hostileSlots(plant func(s *setup, slot string) error) func(s *setup) error {
	return func(s *setup) error {
		tmp := filepath.Join(s.dir, "tmp")
		base := filepath.Join(tmp, fmt.Sprintf("ratify-aws-signer-oras-%d", os.Getuid()))
		if err := os.MkdirAll(base, 0o777); err != nil {
			return err
		}
		s.env = append(s.env, "TMPDIR="+tmp)
		for i := range 8 {
			if err := plant(s, filepath.Join(base, fmt.Sprintf("slot-%d", i))); err != nil {
				return err
			}
		}
		return chownTree(base, nobody)
	}
}

// chownTree gives dir and everything in it (links themselves) to uid.
func chownTree(dir string, uid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

func slotIndex(make func(p string) error) func(s *setup, slot string) error {
	return func(s *setup, slot string) error {
		if err := os.MkdirAll(slot, 0o777); err != nil {
			return err
		}
		return make(filepath.Join(slot, "index.json"))
	}
}

// slotCases: the plugin's private ORAS cache base has a predictable name
// in the world-writable temporary directory; another uid that made it
// first could plant links, FIFOs or a huge index.json in its slots. The
// plugin must not use such a base (nor follow what is in it) and verify
// all the same.
func slotCases() []hcase {
	return []hcase{
		// Not a link to /dev/zero: that is read without end (3.4 GB resident
		// after 3 s, measured by hand), too much for a shared machine.
		{name: "ORAS slots of another uid, index.json a 256 MiB sparse file", prepare: hostileSlots(slotIndex(func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(256 << 20)
		})), limit: 4 * time.Second, want: verified()},
		{name: "ORAS slots of another uid, index.json a FIFO", prepare: hostileSlots(slotIndex(func(p string) error { return syscall.Mkfifo(p, 0o666) })),
			limit: 4 * time.Second, want: verified()},
		{name: "ORAS slots of another uid, slots links to a victim directory", prepare: hostileSlots(func(s *setup, slot string) error {
			victim := filepath.Join(s.dir, "victim")
			if err := os.MkdirAll(victim, 0o700); err != nil {
				return err
			}
			return os.Symlink(victim, slot)
		}), limit: 4 * time.Second, want: verified(), after: func(t *testing.T, s *setup, _ outcome) {
			if des, _ := os.ReadDir(filepath.Join(s.dir, "victim")); len(des) != 0 {
				t.Errorf("the plugin wrote %d entries into the directory a planted slot link points at", len(des))
			}
		}},
	}
}

func TestHostileSlots(t *testing.T) {
	needRoot(t)
	runTable(t, slotCases())
}
