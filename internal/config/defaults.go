package config

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Every default and bound of the configuration, in one place. Nothing else
// in the product defines a value a user could configure.
const (
	// DefaultRevocationTimeout is the budget of one whole GetRevocationStatus
	// check, retries included.
	DefaultRevocationTimeout = 2 * time.Second
	// MaxRevocationTimeout bounds revocation.timeout.
	MaxRevocationTimeout = 30 * time.Second
	// DefaultCacheTTL is how long a "not revoked" answer is kept.
	DefaultCacheTTL = 5 * time.Minute
	// MaxCacheTTL bounds revocation.cacheTTL.
	MaxCacheTTL = 7 * 24 * time.Hour
	// DefaultMaxAttempts is how many times one Signer call is tried.
	DefaultMaxAttempts = 3
	// DefaultMaxBackoff bounds the wait between attempts, so retries fit in
	// the revocation budget.
	DefaultMaxBackoff = 300 * time.Millisecond
	// DefaultClockSkew is how far in the future a signing time may be.
	DefaultClockSkew = 5 * time.Minute
	// MaxClockSkew bounds clockSkew.
	MaxClockSkew = time.Hour
	// MinDeadline is the least time one Ratify plugin run may take; with the
	// default revocation budget it answers before Ratify's 2.9 s deadline.
	MinDeadline = 2500 * time.Millisecond
	// DeadlineMargin is added to revocation.timeout for the run's deadline,
	// so registry reads and the answer fit after a full revocation budget.
	DeadlineMargin = 500 * time.Millisecond
)

// Deadline is how long one plugin run may take with a revocation budget:
// max(MinDeadline, timeout + DeadlineMargin).
func Deadline(revocationTimeout time.Duration) time.Duration {
	return max(MinDeadline, revocationTimeout+DeadlineMargin)
}

// RatifyCacheRoot is the volume Ratify's Helm chart mounts (an emptyDir),
// writable in Ratify's distroless image; a variable for tests.
var RatifyCacheRoot = "/.ratify/local_oras_cache"

// DefaultCacheDir returns the on-disk revocation cache directory to use when
// revocation.cacheDir is unset, and why it was chosen (for a log line):
// $XDG_CACHE_HOME/ratify-aws-signer when XDG_CACHE_HOME is set (to an
// absolute path, as the XDG specification requires); else
// RatifyCacheRoot/awssigner-revocation when that volume is writable, which
// is the case in Ratify's image with HOME unset; else
// ratify-aws-signer-<uid> in the temporary directory.
func DefaultCacheDir() (dir string, why string) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "ratify-aws-signer"), "XDG_CACHE_HOME is set"
	}
	if dirWritable(RatifyCacheRoot) {
		return filepath.Join(RatifyCacheRoot, "awssigner-revocation"), "Ratify's cache volume " + RatifyCacheRoot + " is writable"
	}
	name := "ratify-aws-signer"
	if uid := os.Getuid(); uid >= 0 {
		name += "-" + strconv.Itoa(uid)
	}
	return filepath.Join(os.TempDir(), name), "XDG_CACHE_HOME is unset and " + RatifyCacheRoot + " is not a writable directory; using the temporary directory"
}

// dirWritable tells whether a file can be created in dir.
func dirWritable(dir string) bool {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return false
	}
	f, err := os.CreateTemp(dir, ".ratify-aws-signer-probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
