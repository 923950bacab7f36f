//go:build !unix

package revocation

import (
	"io/fs"
	"os"
)

// openNoFollow opens a cache entry; this platform has no O_NOFOLLOW, so a
// link is refused by a prior Lstat.
func openNoFollow(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.Open(path)
}

// openAppendNoFollow opens the counter for appending.
func openAppendNoFollow(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}

type symlinkError struct{}

func (symlinkError) Error() string { return "is a symbolic link" }

var errSymlink error = symlinkError{}

func isSymlinkErr(err error) bool { return err == errSymlink }

// fileOwner is unknown where the platform does not expose it.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
