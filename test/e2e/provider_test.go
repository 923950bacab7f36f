package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// creator makes the test's kubectl-equivalent creates through the API
// server, logging each.
type creator struct {
	ctx  context.Context
	kube *Kube
	logf func(string, ...any)
	mu   sync.Mutex
	n    int
}

func (c *creator) name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("p%d", c.n)
}

// create creates a Pod of the given containers (initContainers first when
// init is set) and returns what the API server stored.
func (c *creator) create(ns string, init []string, images ...string) (*corev1.Pod, error) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c.name(), Namespace: ns}}
	for i, img := range init {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: fmt.Sprintf("init%d", i), Image: img})
	}
	for i, img := range images {
		name := "app"
		if i > 0 {
			name = fmt.Sprintf("app%d", i)
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: img})
	}
	t0 := time.Now()
	got, err := c.kube.Client.CoreV1().Pods(ns).Create(c.ctx, p, metav1.CreateOptions{})
	c.logf("  create pod %s/%s image %s: %s (%v)", ns, p.Name, strings.Join(append(append([]string{}, init...), images...), ", "), result(err), time.Since(t0).Round(time.Millisecond))
	return got, err
}

func (c *creator) pod(ns, img string) error {
	_, err := c.create(ns, nil, img)
	return err
}

// admitted creates a Pod with img and fails t unless it is admitted; it
// returns the stored Pod (nil when denied).
func (c *creator) admitted(t *testing.T, ns, img string) *corev1.Pod {
	t.Helper()
	p, err := c.create(ns, nil, img)
	if err != nil {
		t.Errorf("pod with %s in %s denied: %v", img, ns, err)
		return nil
	}
	return p
}

// denied creates a Pod with img and fails t unless Gatekeeper denies it
// with every want in the message; it returns the message.
func (c *creator) denied(t *testing.T, ns, img string, want ...string) string {
	t.Helper()
	err := c.pod(ns, img)
	if err == nil {
		t.Errorf("pod with %s in %s admitted, want denied", img, ns)
		return ""
	}
	for _, w := range append([]string{denyPrefix}, want...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("pod with %s in %s: error %q does not contain %q", img, ns, err, w)
		}
	}
	return err.Error()
}

// notAllowed is the start of the policy's message about img in the
// container "app".
func notAllowed(img string) string {
	return fmt.Sprintf("image %q in container \"app\" (containers) is not allowed", img)
}

// images are the test's images: references and digests by tag, and the
// signing jobs.
type images struct {
	ref, digest, job map[string]string
}

// pinned is the image as the provider path's mutation stores it:
// <registry>/<repository>@<digest>.
func (im images) pinned(tag string) string {
	ref := im.ref[tag]
	return ref[:strings.LastIndex(ref, ":")] + "@" + im.digest[tag]
}

// providerEnv is what the provider path's cases share.
type providerEnv struct {
	ctx     context.Context
	stack   *harness.Stack
	cluster *Cluster
	path    *ProviderPath
	cr      *creator
	im      images
	// vals are the chart values the path runs with; doc builds the trust
	// policy document of vals for a list of trusted identities.
	vals                                  map[string]any
	doc                                   func(ids ...string) map[string]any
	teamARN, otherARN, strangerARN, later string
	// behindAuth is the signed image through a front that wants
	// credentials serve does not have; warns the API server's warnings.
	behindAuth string
	warns      *warnings
}

// providerCases are TestAdmission's assertions against Gatekeeper →
// awssigner serve (no Ratify), and the provider path's own: tag → digest
// pinning, a configuration change without restart, serve restarted.
func providerCases(t *testing.T, e *providerEnv) {
	cr := e.cr
	t.Run("provider: signed by the trusted profile is admitted and stored with the verified digest", func(t *testing.T) {
		p, err := cr.create(nsProvider, []string{e.im.ref["signed2"]}, e.im.ref["signed"])
		if err != nil {
			t.Fatalf("pod with %s denied: %v", e.im.ref["signed"], err)
		}
		if got, want := p.Spec.Containers[0].Image, e.im.pinned("signed"); got != want {
			t.Errorf("container stored as %s, want the verified digest %s", got, want)
		}
		if got, want := p.Spec.InitContainers[0].Image, e.im.pinned("signed2"); got != want {
			t.Errorf("init container stored as %s, want the verified digest %s", got, want)
		}
		t.Logf("  stored: containers %s, initContainers %s", p.Spec.Containers[0].Image, p.Spec.InitContainers[0].Image)
	})
	t.Run("provider: unsigned is denied: it has no signature", func(t *testing.T) {
		msg := cr.denied(t, nsProvider, e.im.ref["unsigned"], notAllowed(e.im.ref["unsigned"]), `it has no signature: the provider "`+VerifyProvider+`" found no Notation signature attached to it`)
		t.Logf("  message: %s", msg)
	})
	t.Run("provider: signed by an untrusted profile is denied, naming it", func(t *testing.T) {
		msg := cr.denied(t, nsProvider, e.im.ref["stranger"], notAllowed(e.im.ref["stranger"]), `the "awssigner" verifier refused it`, e.strangerARN)
		t.Logf("  message: %s", msg)
	})
	t.Run("provider: namespace restricted to one profile", func(t *testing.T) {
		cr.admitted(t, nsProvider, e.im.ref["other"]) // serve trusts Other
		cr.admitted(t, nsProviderTeam, e.im.ref["signed2"])
		// Verified, so pinned by the mutation; then refused by the
		// restriction, the message naming the pinned image.
		msg := cr.denied(t, nsProviderTeam, e.im.ref["other"], notAllowed(e.im.pinned("other")), "allowedSigningProfiles", e.otherARN)
		t.Logf("  message: %s", msg)
	})
	t.Run("provider: Deployments are checked and pinned at the Deployment", func(t *testing.T) {
		deploy := func(name, img string) (*appsv1.Deployment, error) {
			replicas := int32(1)
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: nsProvider}, Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img}}}},
			}}
			got, err := e.cluster.Kube.Client.AppsV1().Deployments(nsProvider).Create(e.ctx, d, metav1.CreateOptions{})
			t.Logf("  create deployment %s/%s image %s: %s", nsProvider, name, img, result(err))
			return got, err
		}
		if _, err := deploy("bad", e.im.ref["unsigned"]); err == nil || !strings.Contains(err.Error(), denyPrefix) || !strings.Contains(err.Error(), e.im.ref["unsigned"]) {
			t.Errorf("Deployment with an unsigned image: got %v, want a denial naming the image", err)
		}
		d, err := deploy("good", e.im.ref["signed"])
		if err != nil {
			t.Fatalf("Deployment with a signed image denied: %v", err)
		}
		if got, want := d.Spec.Template.Spec.Containers[0].Image, e.im.pinned("signed"); got != want {
			t.Errorf("Deployment's pod template stored as %s, want %s", got, want)
		}
	})
	t.Run("provider: registry refuses serve's credentials: the registry cause", func(t *testing.T) {
		// The registry answers 401 and serve has no credential for it.
		// (The message's cause is not yet the registry_auth_failed one: the
		// registry client's "basic credential not found" is redacted to
		// "basic [redacted] not found" and the hint says to check the
		// reference; reported, not asserted.)
		msg := cr.denied(t, nsProvider, e.behindAuth, notAllowed(e.behindAuth)+`: the provider "`+VerifyProvider+`" `, "could not check "+e.behindAuth, "/v2/team/app/manifests/signed")
		t.Logf("  message: %s", msg)
	})
	t.Run("provider: warn-only restriction admits with a warning", func(t *testing.T) {
		e.warns.take()
		cr.admitted(t, nsProviderWarn, e.im.ref["unsigned"])
		ws := e.warns.take()
		t.Logf("  warnings: %q", ws)
		if !slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, notAllowed(e.im.ref["unsigned"])) }) {
			t.Errorf("no warning naming %s: %q", e.im.ref["unsigned"], ws)
		}
	})
	t.Run("provider: awssigner serve requires Gatekeeper's client certificate (mTLS)", func(t *testing.T) {
		requiresClientCert(t, e.cluster, e.path.Serve.URL+provider.VerifyPath, e.im.ref["signed"])
	})
	t.Run("provider: an invalid configuration file is refused, the last good one keeps serving", func(t *testing.T) {
		_, good, err := e.path.render(e.ctx, e.vals)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Merge(good, map[string]any{"revocation": map[string]any{"ttl": "5m"}})
		ok, refused, err := e.path.Serve.Reloads()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.path.Serve.WriteConfig(cfg); err != nil {
			t.Fatal(err)
		}
		if err := e.path.Serve.WaitReload(ok, refused, false, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + e.path.Serve.Health + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("  /readyz: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(body))
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("revocation.ttl")) {
			t.Errorf("/readyz: HTTP %d %s, want 200 naming the refused key revocation.ttl", resp.StatusCode, body)
		}
		if p := cr.admitted(t, nsProvider, e.im.ref["signed"]); p != nil && p.Spec.Containers[0].Image != e.im.pinned("signed") {
			t.Errorf("stored as %s, want %s", p.Spec.Containers[0].Image, e.im.pinned("signed"))
		}
		cr.denied(t, nsProvider, e.im.ref["stranger"], notAllowed(e.im.ref["stranger"]))
		// The file back to the configuration in use: no new generation,
		// the refusal cleared.
		gen, _ := e.path.Serve.Metric("awssigner_config_generation")
		if err := e.path.Serve.WriteConfig(good); err != nil {
			t.Fatal(err)
		}
		if err := Poll(15*time.Second, "serve clears the refusal", func() (bool, error) {
			v, err := e.path.Serve.Metric("awssigner_last_reload_success", `what="config"`)
			return err == nil && v == 1, err
		}); err != nil {
			t.Fatal(err)
		}
		if g, _ := e.path.Serve.Metric("awssigner_config_generation"); g != gen {
			t.Errorf("configuration generation %v after the file went back to the one in use, want %v", g, gen)
		}
	})
	t.Run("provider: revoked through the emulator is denied on the next create", func(t *testing.T) {
		img := e.im.ref["p-revocable"]
		cr.admitted(t, nsProvider, img)
		if err := e.stack.Emulator.RevokeJob(e.im.job["p-revocable"]); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		// Caches: Gatekeeper 0s; serve's revocation answers 1s, its
		// verified outcomes no longer than the answer they rest on.
		var last error
		if err := Poll(20*time.Second, "revocation takes effect", func() (bool, error) {
			last = cr.pod(nsProvider, img)
			return last != nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("  revocation took effect after %v: %v", time.Since(t0).Round(time.Millisecond), last)
		// The Pod names the image as written or, when the mutation's check
		// still had the verified outcome (kept at most 1 s), as pinned.
		for _, w := range []string{denyPrefix, "revoked", e.im.job["p-revocable"]} {
			if !strings.Contains(last.Error(), w) {
				t.Errorf("revoked image: error %q lacks %q", last, w)
			}
		}
		if !strings.Contains(last.Error(), notAllowed(img)) && !strings.Contains(last.Error(), notAllowed(e.im.pinned("p-revocable"))) {
			t.Errorf("revoked image: error %q names neither %s nor its pinned form", last, img)
		}
	})
	t.Run("provider: a configuration change trusting another profile takes effect without a restart", func(t *testing.T) {
		img := e.im.ref["later"]
		cr.denied(t, nsProvider, img, notAllowed(img), e.later)
		pid := e.path.Serve.Proc.cmd.Process.Pid
		e.vals = Merge(e.vals, map[string]any{"trustPolicyDoc": e.doc(e.teamARN, e.otherARN, e.later)})
		t0 := time.Now()
		if err := e.path.Reconfigure(e.ctx, e.vals); err != nil {
			t.Fatal(err)
		}
		t.Logf("  serve reloaded its configuration file after %v", time.Since(t0).Round(time.Millisecond))
		if p := cr.admitted(t, nsProvider, img); p != nil && p.Spec.Containers[0].Image != e.im.pinned("later") {
			t.Errorf("stored as %s, want %s", p.Spec.Containers[0].Image, e.im.pinned("later"))
		}
		if e.path.Serve.Proc.Exited() || e.path.Serve.Proc.cmd.Process.Pid != pid {
			t.Errorf("serve was restarted (pid %d)", pid)
		}
	})
	t.Run("provider: serve stopped: denied (fail closed); started again: admitted", func(t *testing.T) {
		e.path.Serve.Stop()
		msg := cr.denied(t, nsProvider, e.im.ref["signed"], notAllowed(e.im.ref["signed"]), `the external data provider "`+VerifyProvider+`" returned a system error`)
		t.Logf("  message: %s", msg)
		t0 := time.Now()
		if err := e.path.Serve.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("  serve ready again after %v", time.Since(t0).Round(time.Millisecond))
		if p := cr.admitted(t, nsProvider, e.im.ref["signed"]); p != nil && p.Spec.Containers[0].Image != e.im.pinned("signed") {
			t.Errorf("stored as %s, want %s", p.Spec.Containers[0].Image, e.im.pinned("signed"))
		}
	})
}

// loadEnv is what the load and fault runs of one path need.
type loadEnv struct {
	path string
	// ns is where the strict images are created, permNS the permissive
	// ones; perm are images verified at level permissive there.
	ns, permNS string
	// signed, unsigned, untrusted: the 20 + 5 + 5 images; front: signed
	// images through the registry front.
	signed, unsigned, untrusted, front, perm []LoadImage
	// checksPerCreate is how many checks one create makes (the provider
	// path: mutate, then verify; Ratify: verify).
	checksPerCreate int
	// cacheWait is how long a cached answer of the path may outlive a
	// fault (Ratify's verify cache); the provider path caches no failure.
	cacheWait time.Duration
	// registryDown is what a denial says when the registry is stopped.
	registryDown []string
	// providerTime is serve's request time and count (provider path).
	providerTime func() (float64, float64)
}

// drain is how long checks that started while a fault was on can still
// answer after it is cleared: revocation.timeout (2 s) and a margin. A
// request that joins such a check in flight gets its answer (could not
// check); the recovery runs start after it.
const drain = 2200 * time.Millisecond

func cacheNote(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf(", then Ratify's verify cache, %v", d)
}

// loadCases runs the path's load and fault phases, recording each in table.
func loadCases(t *testing.T, ctx context.Context, client kubernetes.Interface, e loadEnv, emu *signeremu.Emulator, fr *Front) {
	t.Helper()
	calls := func() int { return emu.Count(signeremu.OpGetRevocationStatus) }
	phase := func(t *testing.T, name, ns string, creates int, imgs []LoadImage, note string) LoadResult {
		conc := 20
		if creates <= 40 && strings.Contains(name, "one at a time") {
			conc = 1
		}
		r := RunLoad(ctx, client, LoadSpec{Path: e.path, Phase: name, Namespace: ns, Images: imgs, Creates: creates, Concurrency: conc, SignerCalls: calls, ProviderTime: e.providerTime})
		r.Note = note
		loadTable.Add(r)
		t.Logf("  %s / %s: %d creates, %d right, %d wrong, %d timeouts, %d unpinned; median %v, p99 %v, max %v; %d Signer calls; %v",
			r.Path, r.Phase, r.Creates, r.Right, r.Wrong, r.Timeouts, r.Unpinned, r.Median, r.P99, r.Max, r.SignerCalls, r.Wall.Round(time.Millisecond))
		for _, f := range r.Failures {
			t.Errorf("  wrong verdict: %s", f)
		}
		if r.Wrong != 0 || r.Timeouts != 0 {
			t.Errorf("%s / %s: %d wrong verdicts, %d timeouts, want none", r.Path, r.Phase, r.Wrong, r.Timeouts)
		}
		return r
	}
	var mix []LoadImage
	mix = append(append(append(mix, e.signed...), e.unsigned...), e.untrusted...)
	couldNotCheck := func(imgs []LoadImage) []LoadImage {
		out := make([]LoadImage, len(imgs))
		for i, img := range imgs {
			out[i] = LoadImage{Ref: img.Ref, Class: img.Class + ", Signer slow", Expect: Expect{Want: []string{denyPrefix, notAllowed(img.Ref)},
				AnyOf: []string{"AWS Signer could not be asked", "could not check"}}}
		}
		return out
	}
	// Let every cached revocation answer (1 s) and outcome expire.
	expire := func() { time.Sleep(1200*time.Millisecond + e.cacheWait) }

	t.Run(e.path+": 200 creates at concurrency 20 over 20 signed, 5 unsigned, 5 untrusted images", func(t *testing.T) {
		phase(t, "steady", e.ns, 200, mix, "")
		phase(t, "steady, one at a time", e.ns, 30, mix, "")
	})
	t.Run(e.path+": AWS Signer slow (3 s): strict denies in time, could not check; recovers with no stale denial", func(t *testing.T) {
		emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Latency: 3 * time.Second})
		expire()
		phase(t, "Signer slow 3 s", e.ns, 40, couldNotCheck(e.signed), "")
		emu.ClearFault(signeremu.OpGetRevocationStatus)
		time.Sleep(drain + e.cacheWait)
		phase(t, "Signer recovered", e.ns, 40, e.signed, fmt.Sprintf("recovery run started %v after the fault was cleared (checks in flight end within revocation.timeout%s)", drain+e.cacheWait, cacheNote(e.cacheWait)))
	})
	t.Run(e.path+": registry stopped: denials name the registry; recovery afterwards", func(t *testing.T) {
		fr.Stop()
		down := make([]LoadImage, len(e.front))
		for i, img := range e.front {
			down[i] = LoadImage{Ref: img.Ref, Class: "signed, registry down", Expect: Expect{Want: append([]string{denyPrefix, notAllowed(img.Ref)}, e.registryDown...)}}
		}
		time.Sleep(e.cacheWait)
		phase(t, "registry stopped", e.ns, 40, down, "")
		if err := fr.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(e.cacheWait)
		phase(t, "registry back", e.ns, 40, e.front, "")
	})
	t.Run(e.path+": Signer throttling (429): no retry storm, verdicts per level", func(t *testing.T) {
		emu.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 429, Code: signeremu.CodeTooManyRequests, Message: "Rate exceeded"})
		defer emu.ClearFault(signeremu.OpGetRevocationStatus)
		expire()
		strict := couldNotCheck(e.signed)
		for i := range strict {
			strict[i].Class = "signed, strict, throttled"
		}
		perm := make([]LoadImage, len(e.perm))
		for i, img := range e.perm {
			perm[i] = img
			perm[i].Class = "signed, permissive, throttled"
		}
		r := phase(t, "Signer 429, strict", e.ns, 40, strict, "")
		bound := 40 * e.checksPerCreate * 3
		r2 := phase(t, "Signer 429, permissive", e.permNS, 40, perm, "")
		for _, x := range []LoadResult{r, r2} {
			if x.SignerCalls > bound {
				t.Errorf("%s: %d Signer calls for 40 creates: a retry storm (at most %d: %d checks per create, 3 attempts each)", x.Phase, x.SignerCalls, bound, e.checksPerCreate)
			}
		}
	})
}
