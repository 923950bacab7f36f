package ratifygo

import (
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// How long an outcome may be reused decides how late a revocation is seen.
func TestKeep(t *testing.T) {
	now := time.Unix(1000, 0)
	v := &Verifier{outcomeTTL: 10 * time.Minute, revocationTTL: 5 * time.Minute, now: func() time.Time { return now }}
	start := now.Add(-time.Second)
	rep := func(verdict, revocation string, cached bool, expiry time.Time) verification.Report {
		return verification.Report{Verdict: verdict, Result: &verification.Result{RevocationStatus: revocation, RevocationCached: cached, Expiry: expiry}}
	}
	for _, tc := range []struct {
		name string
		r    verification.Report
		want time.Duration
	}{
		{"verified, fresh revocation answer", rep("verified", "notRevoked", false, time.Time{}), 5*time.Minute - time.Second},
		{"verified, revocation answer of unknown age", rep("verified", "notRevoked", true, time.Time{}), 0},
		{"verified, AWS unavailable (permissive)", rep("verified", "unavailable", false, time.Time{}), 0},
		{"verified, revocation skipped", rep("verified", "skipped", false, time.Time{}), 10 * time.Minute},
		{"verified, expires sooner", rep("verified", "skipped", false, now.Add(time.Minute)), time.Minute},
		{"refused: revoked", rep("refused", "revoked", false, time.Time{}), 10 * time.Minute},
		{"could not check", rep("couldNotCheck", "unavailable", false, time.Time{}), 0},
	} {
		if got := v.keep(tc.r, start); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	v.revocationTTL = 0
	if got := v.keep(rep("verified", "notRevoked", false, time.Time{}), start); got > 0 {
		t.Errorf("kept %s with no revocation cache", got)
	}
}
