package serve

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
)

// BenchmarkCheckImagesTable measures one /checkimages call (one image,
// one connection kept, as a client that reuses it) against the real
// registry and emulator and prints medians: cold (nothing cached: resolve,
// list, read, verify, GetRevocationStatus, TokenReview), warm by tag and
// by digest (outcome and token caches), warm with every token reviewed
// (tokenCacheTTL 0s), and Gatekeeper's /verify warm by tag for comparison.
// A table, not an assertion:
//
//	go test -run '^$' -bench CheckImagesTable -benchtime 1x ./test/serve/
func BenchmarkCheckImagesTable(b *testing.B) {
	const cold, warm = 40, 300
	f := newFixtureWith(b, "5m", nil, fixtureOptions{kyverno: true})
	type image struct{ tag, digest string }
	images := make([]image, cold+1)
	for i := range images {
		ref, desc, _ := f.signed(fmt.Sprintf("bench/app%d", i), "v1", "")
		images[i] = image{ref, f.stack.Registry.Host + fmt.Sprintf("/bench/app%d@", i) + desc.Digest.String()}
	}
	body := func(ref string) []byte {
		return kbody(b, map[string]map[string]kyverno.Image{"containers": {"c": kimage(b, ref, "/spec/containers/0/image")}}, nil)
	}
	time1 := func(send func()) time.Duration {
		start := time.Now()
		send()
		return time.Since(start)
	}
	check := func(ref, token string) func() {
		bb := body(ref)
		return func() {
			if status, got, _ := f.checkImages(bb, token); status != 200 {
				b.Fatalf("HTTP %d %s", status, got)
			}
		}
	}
	type row struct {
		name string
		d    []time.Duration
	}
	var rows []row
	run := func(name string, n int, send func(i int) func()) {
		r := row{name: name}
		for i := 0; i < n; i++ {
			r.d = append(r.d, time1(send(i)))
		}
		rows = append(rows, r)
	}
	check(images[cold].tag, f.token)() // connection, token cached
	for b.Loop() {
		rows = nil
		run("cold: new image, token cached", cold, func(i int) func() { return check(images[i].tag, f.token) })
		run("warm, by tag", warm, func(int) func() { return check(images[0].tag, f.token) })
		run("warm, by digest", warm, func(int) func() { return check(images[0].digest, f.token) })
		run("Gatekeeper /verify, warm, by tag", warm, func(int) func() {
			return func() { f.query(provider.VerifyPath, images[0].tag) }
		})
		run("warm, by tag, new token (1 TokenReview)", 40, func(int) func() {
			return check(images[0].tag, f.reviewer.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "awssigner"))
		})
	}
	f.writeConfig(f.config("strict", nil, "5m", map[string]any{"kyverno": map[string]any{"tokenCacheTTL": "0s"}}))
	f.srv.Reload()
	run("warm, by tag, tokenCacheTTL 0s (TokenReview each)", warm, func(int) func() { return check(images[0].tag, f.token) })

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "/checkimages, one image\tn\tmedian ms\tp90 ms\tmax ms\t× warm by tag\t")
	var base time.Duration
	for _, r := range rows {
		slices.Sort(r.d)
		if r.name == "warm, by tag" {
			base = r.d[len(r.d)/2]
		}
	}
	for _, r := range rows {
		med := r.d[len(r.d)/2]
		ratio := fmt.Sprintf("%.2f", float64(med)/float64(base))
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t\n", r.name, len(r.d), ms(med), ms(r.d[len(r.d)*9/10]), ms(r.d[len(r.d)-1]), ratio)
	}
	w.Flush()
}
