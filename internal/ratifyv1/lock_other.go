//go:build !unix

package ratifyv1

// lockSlot has no portable implementation; every run then gets a temporary
// directory.
func lockSlot(string) bool { return false }
