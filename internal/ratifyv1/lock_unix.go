//go:build unix

package ratifyv1

import (
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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
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
