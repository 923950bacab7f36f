package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Expect is the verdict an image must get.
type Expect struct {
	// Admit: admitted; else denied with a message holding every Want and,
	// when AnyOf is set, one of AnyOf.
	Admit bool
	Want  []string
	AnyOf []string
	// Pinned, when set, is the image an admitted Pod must be stored with
	// (the provider path's tag → digest mutation).
	Pinned string
}

// LoadImage is one image of a load run and its expected verdict.
type LoadImage struct {
	Ref, Class string
	// Namespace, when set, replaces the run's.
	Namespace string
	Expect
}

// LoadSpec is a bounded load run: Creates Pod creates, Concurrency at a
// time, over Images in turn, in Namespace.
type LoadSpec struct {
	Path, Phase, Namespace string
	Images                 []LoadImage
	Creates, Concurrency   int
	// SignerCalls counts the AWS Signer calls so far (the emulator's
	// GetRevocationStatus count).
	SignerCalls func() int
	// ProviderTime, when set, returns the provider's total request time
	// (seconds) and request count so far (serve's duration histogram).
	ProviderTime func() (float64, float64)
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Path, Phase string
	Creates     int
	Concurrency int
	// Right verdicts; Wrong ones (a Failures line each, the first few
	// kept); Timeouts: a webhook or provider call that ran out of time;
	// Unpinned: admitted but not stored with the expected digest.
	Right, Wrong, Timeouts, Unpinned int
	Median, P99, Max                 time.Duration
	SignerCalls                      int
	// ProviderMean is the provider's own mean time per request
	// (ProviderRequests of them), when measured.
	ProviderMean     time.Duration
	ProviderRequests int
	Wall             time.Duration
	Failures         []string
	Note             string
}

// Timeout reports whether a create's error is a webhook or provider call
// that failed or ran out of time, rather than a decision: the API server's
// "failed calling webhook" (its webhook deadline), or Gatekeeper's provider
// request past the Provider's timeout.
func Timeout(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "failed calling webhook") ||
		(strings.Contains(s, "failed to send external data request") && (strings.Contains(s, "Client.Timeout exceeded") || strings.Contains(s, "deadline exceeded")))
}

// LoadClient is a client for load runs: its own rate limit high enough
// that client-go never queues a create (the latency is the API server's
// and its webhooks').
func LoadClient(cfg *rest.Config) (kubernetes.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 1000, 1000
	return kubernetes.NewForConfig(c)
}

// RunLoad runs spec and returns what it measured; every verdict is checked
// against the image's Expect.
func RunLoad(ctx context.Context, client kubernetes.Interface, spec LoadSpec) LoadResult {
	res := LoadResult{Path: spec.Path, Phase: spec.Phase, Creates: spec.Creates, Concurrency: spec.Concurrency}
	calls0 := 0
	if spec.SignerCalls != nil {
		calls0 = spec.SignerCalls()
	}
	var sum0, n0 float64
	if spec.ProviderTime != nil {
		sum0, n0 = spec.ProviderTime()
	}
	var mu sync.Mutex
	took := make([]time.Duration, 0, spec.Creates)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	prefix := podPrefix(spec.Path + "-" + spec.Phase)
	for w := 0; w < spec.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				img := spec.Images[i%len(spec.Images)]
				ns := spec.Namespace
				if img.Namespace != "" {
					ns = img.Namespace
				}
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%03d", prefix, i), Namespace: ns},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img.Ref}}}}
				t0 := time.Now()
				got, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				d := time.Since(t0)
				fail := check(img, got, err)
				mu.Lock()
				took = append(took, d)
				switch {
				case Timeout(err):
					res.Timeouts++
					res.Wrong++
				case fail != "" && strings.HasPrefix(fail, "unpinned"):
					res.Unpinned++
					res.Wrong++
				case fail != "":
					res.Wrong++
				default:
					res.Right++
				}
				if fail != "" && len(res.Failures) < 5 {
					res.Failures = append(res.Failures, fmt.Sprintf("%s (%s) after %v: %s", img.Ref, img.Class, d.Round(time.Millisecond), fail))
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < spec.Creates; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	res.Wall = time.Since(start)
	if spec.SignerCalls != nil {
		res.SignerCalls = spec.SignerCalls() - calls0
	}
	if spec.ProviderTime != nil {
		sum, n := spec.ProviderTime()
		if res.ProviderRequests = int(n - n0); res.ProviderRequests > 0 {
			res.ProviderMean = time.Duration((sum - sum0) / (n - n0) * float64(time.Second))
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	if n := len(took); n > 0 {
		res.Median = took[n/2]
		res.P99 = took[min(n-1, (n*99+99)/100-1)]
		res.Max = took[n-1]
	}
	return res
}

// podPrefix makes a Pod name prefix of s: lower case, runs of anything
// but letters and digits as one "-".
func podPrefix(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// check returns "" when the create's outcome is what img expects, else
// why not ("unpinned…" when admitted but stored with another image).
func check(img LoadImage, got *corev1.Pod, err error) string {
	if img.Admit {
		if err != nil {
			return "denied, want admitted: " + err.Error()
		}
		if img.Pinned != "" && got.Spec.Containers[0].Image != img.Pinned {
			return fmt.Sprintf("unpinned: admitted and stored as %s, want %s", got.Spec.Containers[0].Image, img.Pinned)
		}
		return ""
	}
	if err == nil {
		return "admitted, want denied"
	}
	var missing []string
	for _, w := range img.Want {
		if !strings.Contains(err.Error(), w) {
			missing = append(missing, fmt.Sprintf("%q", w))
		}
	}
	if len(img.AnyOf) > 0 && !slices.ContainsFunc(img.AnyOf, func(w string) bool { return strings.Contains(err.Error(), w) }) {
		missing = append(missing, fmt.Sprintf("one of %q", img.AnyOf))
	}
	if len(missing) > 0 {
		return fmt.Sprintf("denial lacks %s: %s", strings.Join(missing, ", "), err)
	}
	return ""
}

// LoadTable collects load results to print at the end of the run.
type LoadTable struct {
	mu   sync.Mutex
	rows []LoadResult
}

// Add records r.
func (t *LoadTable) Add(r LoadResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, r)
}

// Print writes the table (nothing when empty).
func (t *LoadTable) Print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nAdmission under load and faults (Pod creates through the API server, loopback, 2-core machine):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "path\tphase\tcreates\tconc.\tright\twrong\ttimeouts\tunpinned\tmedian\tp99\tmax\tSigner calls\tserve, per request\twall\tcreates/s\t")
	for _, r := range t.rows {
		prov := "-"
		if r.ProviderRequests > 0 {
			prov = fmt.Sprintf("%s (%d)", msec(r.ProviderMean), r.ProviderRequests)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%.0f\t\n", r.Path, r.Phase, r.Creates, r.Concurrency, r.Right, r.Wrong, r.Timeouts, r.Unpinned,
			msec(r.Median), msec(r.P99), msec(r.Max), r.SignerCalls, prov, r.Wall.Round(100*time.Millisecond), float64(r.Creates)/r.Wall.Seconds())
	}
	tw.Flush()
	for _, r := range t.rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s / %s: %s\n", r.Path, r.Phase, r.Note)
		}
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s / %s wrong: %s\n", r.Path, r.Phase, f)
		}
	}
}

func msec(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// Front is a TCP forwarder on a loopback port in front of a server (the
// registry): Stop closes its listener and every connection, so clients
// get "connection refused" as from a stopped registry; Start listens on
// the same port again.
type Front struct {
	Addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]bool
}

// StartFront listens on a free loopback port and forwards to target
// ("host:port").
func StartFront(target string) (*Front, error) {
	f := &Front{target: target, conns: map[net.Conn]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.Addr = l.Addr().String()
	f.serve(l)
	return f, nil
}

// Start listens again on Addr.
func (f *Front) Start() error {
	l, err := net.Listen("tcp", f.Addr)
	if err != nil {
		return err
	}
	f.serve(l)
	return nil
}

func (f *Front) serve(l net.Listener) {
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.forward(c)
		}
	}()
}

func (f *Front) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	if f.l == nil {
		f.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	f.conns[c], f.conns[up] = true, true
	f.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	f.mu.Lock()
	delete(f.conns, c)
	delete(f.conns, up)
	f.mu.Unlock()
}

// Stop closes the listener and every forwarded connection.
func (f *Front) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.l != nil {
		f.l.Close()
		f.l = nil
	}
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}
