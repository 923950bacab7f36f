package compose

import (
	"strings"
	"testing"
)

func TestCheckFIPS(t *testing.T) {
	for _, tc := range []struct {
		build   string
		enabled bool
		refuse  bool
	}{
		{"", false, false}, {"off", false, false}, {"", true, false},
		{"v1.0.0", true, false}, {"latest", true, false},
		{"v1.0.0", false, true}, {"latest", false, true},
	} {
		err := checkFIPS(tc.build, tc.enabled)
		if (err != nil) != tc.refuse || (err != nil && !strings.Contains(err.Error(), "GOFIPS140="+tc.build)) {
			t.Errorf("build %q enabled %t: %v", tc.build, tc.enabled, err)
		}
	}
}
