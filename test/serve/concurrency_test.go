package serve

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// Hundreds of parallel requests on loopback over a mix of images, each
// key spelled as a tag or as a digest: every answer is the right verdict,
// at most maxConcurrency validations run at once, and AWS Signer is asked
// once per signature within the revocation TTL.
func TestConcurrentRequests(t *testing.T) {
	const (
		requests = 400
		clients  = 64
	)
	// The budget is generous: this test is about verdicts and call counts
	// (under -race on 2 cores a request can wait seconds for a slot).
	f := newFixture(t, "5m", map[string]any{"maxConcurrency": 8, "verifyTimeout": "20s"})
	type image struct {
		keys []string
		want string // verified, unsigned, revoked
	}
	var images []image
	for i := 0; i < 24; i++ {
		tag := fmt.Sprintf("v%d", i)
		switch i % 4 {
		case 0:
			ref := f.unsigned("team/app", tag)
			images = append(images, image{keys: []string{ref}, want: "unsigned"})
		case 1:
			ref, desc, job := f.signed("team/app", tag, "")
			fatalIf(t, f.stack.Emulator.RevokeJob(job))
			images = append(images, image{keys: []string{ref, f.stack.Registry.Host + "/team/app@" + desc.Digest.String()}, want: string(verification.ReasonRevoked)})
		default:
			ref, desc, _ := f.signed("team/app", tag, "")
			images = append(images, image{keys: []string{ref, f.stack.Registry.Host + "/team/app@" + desc.Digest.String()}, want: "verified"})
		}
	}
	signatures := 0
	for _, im := range images {
		if im.want != "unsigned" {
			signatures++
		}
	}
	want := map[string]string{}
	for _, im := range images {
		for _, k := range im.keys {
			want[k] = im.want
		}
	}
	// A little Signer latency so that checks overlap.
	f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Latency: 20 * time.Millisecond})

	var next atomic.Int64
	var wrong, answered atomic.Int64
	var mu sync.Mutex
	var firstWrong []string
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for next.Add(1) <= requests {
				n := 1 + r.IntN(6)
				keys := make([]string, n)
				for i := range keys {
					im := images[r.IntN(len(images))]
					keys[i] = im.keys[r.IntN(len(im.keys))]
				}
				status, pr := f.post(provider.VerifyPath, requestBody(keys...))
				if status != 200 || pr.Response.SystemError != "" {
					wrong.Add(1)
					continue
				}
				for _, it := range pr.Response.Items {
					answered.Add(1)
					got := "error: " + it.Error
					if it.Error == "" {
						b, _ := json.Marshal(it.Value)
						got = outcomeOf(b)
					}
					if got != want[it.Key] {
						wrong.Add(1)
						mu.Lock()
						if len(firstWrong) < 5 {
							firstWrong = append(firstWrong, it.Key+": "+got+", want "+want[it.Key])
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if wrong.Load() != 0 {
		t.Errorf("%d wrong answers of %d: %s", wrong.Load(), answered.Load(), strings.Join(firstWrong, "; "))
	}
	if n := f.signerCalls(); n != signatures {
		t.Errorf("%d GetRevocationStatus calls for %d signatures within the TTL, want %d", n, signatures, signatures)
	}
	t.Logf("%d requests (%d keys) from %d clients in %s", requests, answered.Load(), clients, took)
}

func outcomeOf(raw []byte) string {
	var v struct {
		Succeeded       bool `json:"succeeded"`
		ArtifactReports []struct {
			Results []struct {
				Detail string `json:"detail"`
			} `json:"results"`
		} `json:"artifactReports"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return "malformed"
	}
	if v.Succeeded {
		return "verified"
	}
	if len(v.ArtifactReports) == 0 {
		return "unsigned"
	}
	var d verification.Report
	if len(v.ArtifactReports[0].Results) == 0 || json.Unmarshal([]byte(v.ArtifactReports[0].Results[0].Detail), &d) != nil {
		return "malformed"
	}
	return string(d.Reason)
}
