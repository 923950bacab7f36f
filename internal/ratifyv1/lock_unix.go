//go:build unix

package ratifyv1

import (
	"fmt"
	"os"
	"syscall"
)

// held keeps the lock files open (and referenced, so no finalizer closes
// them) for the rest of the process; the kernel releases the locks when the
// process exits, however it exits.
var held []*os.File

// lockSlot takes an exclusive, non-blocking flock on path and keeps it for
// the rest of the process.
func lockSlot(path string) bool {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	held = append(held, f)
	return true
}

// ownPrivateDir accepts a real directory (not a link) owned by this user
// that no other user can write.
func ownPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is owned by uid %d, not %d", dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by other users", dir)
	}
	return nil
}
