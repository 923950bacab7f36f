//go:build unix

package revocation

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens a cache entry for reading without following a
// symbolic link and without waiting on a FIFO.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// openAppendNoFollow opens the counter for appending, never through a link.
func openAppendNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// isSymlinkErr tells the error O_NOFOLLOW gives for a link.
func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }

// fileOwner returns the uid owning the file.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
