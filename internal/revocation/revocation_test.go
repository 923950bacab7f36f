package revocation

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// The expected TBS hashes of testdata/chain.pem (leaf first) were computed
// outside Go: openssl asn1parse -strparse 4 -out tbs.der, then sha384sum.
var katTBS = []string{
	"7e8b7e537fbb82043b3e6343a6a97347888d89af626f2e04fdde58c5651c40c89fa08ed3ec79527589eaa27c2445bf28",
	"447ed6beb4ce9773ac56b60a603d826b19970b5977bbe4216fe22799c55dd205b5fe68925a9a711efb96203d8c09a72b",
	"89a117dd8e92a2cbffb08b36cbc0566650a122e2b9a10db69b4e430b94d690b8990f2c509a98a62118fdf1509d44975a",
	"0d0ada356e31c6fcca3556fb105ff8cbbb7d61cc05ce23514adb888e31ac12fed62fe6e65a0607e766a183e09a6b46c9",
}

func knownChain(t testing.TB) [][]byte {
	data, err := os.ReadFile("testdata/chain.pem")
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		chain = append(chain, b.Bytes)
	}
	return chain
}

func TestCertificateHashesKnownChain(t *testing.T) {
	got, err := CertificateHashes(knownChain(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		katTBS[0] + katTBS[1], // leaf ‖ regional CA
		katTBS[1] + katTBS[2], // regional CA ‖ intermediate
		katTBS[2] + katTBS[3], // intermediate ‖ root
		katTBS[3] + katTBS[3], // root ‖ root
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got[i], want[i])
		}
		if len(got[i]) != 192 {
			t.Errorf("entry %d has %d hex chars, want 192", i, len(got[i]))
		}
	}
}

func TestCertificateHashesErrors(t *testing.T) {
	if _, err := CertificateHashes(nil); err == nil {
		t.Error("empty chain accepted")
	}
	chain := knownChain(t)
	chain[2] = []byte("not DER")
	if _, err := CertificateHashes(chain); err == nil || !strings.Contains(err.Error(), "certificate 2") {
		t.Errorf("bad DER: got %v", err)
	}
}

func TestAnswerReason(t *testing.T) {
	for _, tc := range []struct {
		revoked []string
		want    string
	}{
		{nil, "Signature is not revoked."},
		{[]string{"arn:aws:signer:us-west-2:1:/signing-jobs/j"}, "Resource(s) arn:aws:signer:us-west-2:1:/signing-jobs/j have been revoked."},
		{[]string{"arn:a", "arn:b"}, "Resource(s) arn:a, arn:b have been revoked."},
		{[]string{strings.Repeat("ab", 96)}, "Certificate(s) have been revoked."},
		{[]string{"arn:a", strings.Repeat("ab", 96)}, "Resource(s) arn:a have been revoked. Certificate(s) have been revoked."},
	} {
		if got := (Answer{Revoked: tc.revoked}).Reason(); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.revoked, got, tc.want)
		}
	}
}

// scripted is a Checker fake that returns queued answers and counts calls.
type scripted struct {
	answers []Answer
	errs    []error
	calls   int
}

func (s *scripted) Check(context.Context, Request) (Answer, error) {
	i := s.calls
	s.calls++
	return s.answers[i], s.errs[i]
}

func TestCachedKeepsNotRevokedForTTLRevokedForeverErrorsNever(t *testing.T) {
	req := Request{ProfileVersionARN: "arn:aws:signer:us-west-2:1:/signing-profiles/p/v", JobARN: "arn:aws:signer:us-west-2:1:/signing-jobs/j", SigningTime: time.Unix(1e9, 0), CertificateHashes: []string{"b", "a"}}
	boom := errors.New("boom")
	next := &scripted{
		answers: []Answer{{}, {}, {}, {Revoked: []string{req.JobARN}}},
		errs:    []error{boom, nil, nil, nil},
	}
	mem := NewMemoryCache(0)
	now := time.Unix(2e9, 0)
	mem.now = func() time.Time { return now }
	c := &Cached{Next: next, Cache: mem, TTL: time.Minute}
	ctx := context.Background()

	if _, err := c.Check(ctx, req); !errors.Is(err, boom) {
		t.Fatalf("first call: %v", err)
	}
	a, err := c.Check(ctx, req) // error was not cached: asks again
	if err != nil || a.Cached || next.calls != 2 {
		t.Fatalf("after error: %+v %v calls=%d", a, err, next.calls)
	}
	// Same question with hashes in another order hits the cache.
	req2 := req
	req2.CertificateHashes = []string{"a", "b"}
	if a, _ := c.Check(ctx, req2); !a.Cached || next.calls != 2 {
		t.Fatalf("cache miss for the same question: %+v calls=%d", a, next.calls)
	}
	now = now.Add(2 * time.Minute) // TTL passed
	if a, _ := c.Check(ctx, req); a.Cached || next.calls != 3 {
		t.Fatalf("expired entry served: %+v calls=%d", a, next.calls)
	}
	now = now.Add(2 * time.Minute)
	if a, _ := c.Check(ctx, req); !a.IsRevoked() || next.calls != 4 {
		t.Fatalf("want revoked from Next: %+v", a)
	}
	now = now.Add(1000 * time.Hour) // revoked stays
	if a, _ := c.Check(ctx, req); !a.IsRevoked() || !a.Cached || next.calls != 4 {
		t.Fatalf("revoked answer not kept: %+v calls=%d", a, next.calls)
	}
	other := req
	other.JobARN += "x"
	if Key(other) == Key(req) {
		t.Fatal("different jobs share a cache key")
	}
}

func TestMemoryCacheBounded(t *testing.T) {
	m := NewMemoryCache(3)
	for i := 0; i < 10; i++ {
		m.Put(string(rune('a'+i)), Answer{}, time.Hour)
	}
	if len(m.entries) > 3 {
		t.Fatalf("%d entries, bound is 3", len(m.entries))
	}
	if _, ok := m.Get("j"); !ok {
		t.Fatal("latest entry missing")
	}
}
