//go:build !unix

package ratifyv1

import (
	"fmt"
	"os"
)

// lockSlot has no portable implementation; every run then gets a temporary
// directory.
func lockSlot(string) bool { return false }

// ownPrivateDir accepts a real directory; ownership is not portable.
func ownPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
