package provider

import (
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifygo"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

func TestImageRef(t *testing.T) {
	for key, want := range map[string]string{
		"nginx":                                 "docker.io/library/nginx:latest",
		"nginx:1.27":                            "docker.io/library/nginx:1.27",
		"[prod]registry.example/app:v1":         "registry.example/app:v1",
		"127.0.0.1:5000/team/app@sha256:" + sha: "127.0.0.1:5000/team/app@sha256:" + sha,
	} {
		if got, err := imageRef(key); err != nil || got != want {
			t.Errorf("%s → %s, %v; want %s", key, got, err, want)
		}
	}
	for _, bad := range []string{"", "[prod]", "[prod", "registry.example/UPPER", "a b"} {
		if got, err := imageRef(bad); err == nil {
			t.Errorf("%q accepted as %s", bad, got)
		}
	}
}

const sha = "c8a1a5c5b3dfc86c1de2595aa06cfde0e20ff847cf958be25fedde1efb0b5052"

func TestOutcomesExpiryAndBound(t *testing.T) {
	o := NewOutcomes(2)
	now := time.Unix(1000, 0)
	o.now = func() time.Time { return now }
	k := func(i int) ratifygo.OutcomeKey { return ratifygo.OutcomeKey{Generation: uint64(i), Repository: "r"} }
	o.Put(k(1), verification.Report{Verdict: "verified"}, time.Minute)
	o.Put(k(2), verification.Report{Verdict: "refused"}, time.Second)
	o.Put(k(3), verification.Report{}, 0) // not kept
	if _, ok := o.Get(k(3)); ok || o.Len() != 2 {
		t.Fatal("a zero TTL was kept")
	}
	if r, ok := o.Get(k(1)); !ok || r.Verdict != "verified" {
		t.Fatal("miss")
	}
	now = now.Add(2 * time.Second)
	if _, ok := o.Get(k(2)); ok {
		t.Fatal("expired entry served")
	}
	o.Put(k(4), verification.Report{}, time.Minute)
	o.Put(k(5), verification.Report{}, time.Minute) // evicts k(1), the least recently used
	if _, ok := o.Get(k(1)); ok || o.Len() != 2 {
		t.Fatalf("bound not kept: %d entries", o.Len())
	}
	o.Clear()
	if o.Len() != 0 {
		t.Fatal("not cleared")
	}
}
