package compose

import (
	"crypto/fips140"
	"fmt"
	"runtime/debug"
)

// fipsBuild returns the GOFIPS140 setting the binary was built with ("" or
// "off" for a regular build).
func fipsBuild() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "GOFIPS140" {
			return s.Value
		}
	}
	return ""
}

// checkFIPS refuses to build a verifier in a binary built with Go's FIPS
// 140-3 module (GOFIPS140, the release's -fips variant) that runs without
// FIPS mode, for example with GODEBUG=fips140=off: such a deployment
// asked for FIPS cryptography and would silently not get it.
func checkFIPS(build string, enabled bool) error {
	if build == "" || build == "off" || enabled {
		return nil
	}
	return fmt.Errorf("this is a FIPS build (GOFIPS140=%s) but Go's FIPS 140-3 module is not in FIPS mode; remove GODEBUG=fips140=off (or run the regular build)", build)
}

// FIPS describes the binary's FIPS 140-3 state, for `awssigner version`.
func FIPS() string {
	b := fipsBuild()
	switch {
	case b == "" || b == "off":
		return fmt.Sprintf("not a FIPS build (FIPS mode %t)", fips140.Enabled())
	case fips140.Enabled():
		return fmt.Sprintf("FIPS build (GOFIPS140=%s), FIPS mode on", b)
	}
	return fmt.Sprintf("FIPS build (GOFIPS140=%s), FIPS mode OFF: verification refuses to start", b)
}
