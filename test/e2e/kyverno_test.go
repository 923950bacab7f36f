package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
)

// Kyverno's admission controller as the test runs it.
const (
	kyvernoModule    = "github.com/kyverno/kyverno@v1.19.1"
	kyvernoNamespace = "kyverno"
	kyvernoAdmission = "kyverno-admission-controller"
	// kyvernoCASecret and kyvernoTLSSecret are the Secrets Kyverno serves
	// its webhooks with (names from its Service, kyverno-svc); the test
	// creates them, so Kyverno's certificate controller is off.
	kyvernoCASecret  = "kyverno-svc.kyverno.svc.kyverno-tls-ca"
	kyvernoTLSSecret = "kyverno-svc.kyverno.svc.kyverno-tls-pair"
	// kyvernoBlocklist is Kyverno's default --httpBlocklist without
	// loopback, where serve listens.
	kyvernoBlocklist = "169.254.169.254/32,169.254.169.253/32,fd00:ec2::254/128,metadata.google.internal"
	// kyvernoPolicyFile, its service URL placeholder and name; the
	// GlobalContextEntry it reads.
	kyvernoPolicyFile  = "policies/kyverno/awssigner-verified-images.yaml"
	kyvernoTrustFile   = "policies/kyverno/awssigner-trust-policies.yaml"
	kyvernoTrustEntry  = "awssigner-trust-policies"
	kyvernoPlaceholder = "https://awssigner.awssigner.svc:6002/checkimages"
	kyvernoPolicy      = "awssigner-verified-images"
	kyvernoTrustLabel  = "ratify-aws-signer.github.io/trust-policy"
	kyvernoDenied      = `admission webhook "mutate.kyverno.svc-fail" denied the request`
	// kyvernoRuns is how many Pods each latency figure is the median of.
	kyvernoRuns = 15
)

var (
	gvrClusterPolicy = schema.GroupVersionResource{Group: "kyverno.io", Version: "v1", Resource: "clusterpolicies"}
	// kyvernoTokenTTL is the lifetime of Kyverno's apiCall token (its
	// chart's apiCallToken.expirationSeconds default).
	kyvernoTokenTTL = int64(3600)
)

// TestKyverno: Kyverno's admission controller (bin/kyverno, a plain
// process, webhooks registered by URL) in front of its own kube-apiserver,
// the ClusterPolicy of policies/kyverno calling the real awssigner serve
// with a TokenRequest token that serve checks by TokenReview against the
// same API server. Pods are created for real: signed ones are stored with
// their digest, unsigned and untrusted ones are denied with serve's
// reason; the namespace label picks the trust policy. It prints the
// admission latency of one Pod through Kyverno.
func TestKyverno(t *testing.T) {
	start := time.Now()
	step := func(name string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), name) }
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	apiserver, kyverno := filepath.Join(root, "bin", "kube-apiserver"), filepath.Join(root, "bin", "kyverno")
	for _, p := range []string{apiserver, kyverno} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("REQUIRE_INTEGRATION") == "1" {
				t.Fatalf("missing %s: run `make e2e` (builds it into bin/)", p)
			}
			t.Skipf("missing %s: run `make e2e`", p)
		}
	}
	var ps Procs
	dir := runDir(t, "awssigner-e2e-kyverno-", ps.StopAll)
	logDir := filepath.Join(dir, "logs")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	step("registry + AWS Signer emulator + images")
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	t.Cleanup(ps.StopAll) // before stack.Close
	otherARN, _, err := stack.Emulator.CreateProfile("Other", 12)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	image := func(tag, profile string) string {
		ref, desc, err := stack.PushImage(ctx, "team/app", tag)
		if err != nil {
			t.Fatal(err)
		}
		digests[ref] = desc.Digest.String()
		if profile != "" {
			if _, _, err := stack.Sign(ctx, "team/app", desc, profile); err != nil {
				t.Fatal(err)
			}
		}
		return ref
	}
	signed, unsigned, other := image("signed", stack.ProfileARN), image("unsigned", ""), image("other", otherARN)
	var cold []string
	for i := 0; i < 5; i++ {
		cold = append(cold, image(fmt.Sprintf("cold-%d", i), stack.ProfileARN))
	}
	plugin, err := harness.PluginBinary(binDir)
	if err != nil {
		t.Fatal(err)
	}

	step("etcd + kube-apiserver")
	cp, err := StartControlPlane(&ps, dir, logDir, apiserver)
	if err != nil {
		t.Fatal(err)
	}
	kcfg := rest.CopyConfig(cp.Config)
	kcfg.WarningHandler = rest.NewWarningWriter(os.Stderr, rest.WarningWriterOptions{Deduplicate: true})
	kube, err := NewKube(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	const nsA, nsB, nsExcluded = "team-a", "team-b", "kube-public"
	for ns, labels := range map[string]map[string]string{kyvernoNamespace: nil, nsA: nil, nsB: {kyvernoTrustLabel: "team-b"}, nsExcluded: nil} {
		// kube-public is the API server's own.
		if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	sas := map[string][]string{kyvernoNamespace: {kyvernoAdmission, "kyverno-background-controller", "kyverno-reports-controller"}, nsA: {"default"}, nsB: {"default"}, nsExcluded: {"default"}}
	for ns, names := range sas {
		for _, n := range names {
			if _, err := kube.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	step("Kyverno's CRDs")
	if err := applyKyvernoCRDs(ctx, kube, dir); err != nil {
		t.Fatal(err)
	}

	// serve: Kyverno listener only, TokenReview against this API server
	// with the admin token; trustPolicyDocs.team-b trusts profile Other.
	step("awssigner serve")
	adminToken := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(adminToken, []byte(cp.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := stack.VerifierConfig("awssigner", "strict", []string{stack.ProfileARN}, nil)
	cfg["trustPolicyDocs"] = map[string]any{"team-b": stack.VerifierConfig("awssigner", "strict", []string{otherARN}, nil)["trustPolicyDoc"]}
	// Revocation answers kept 5 minutes, as in a cluster: a Pod of an image
	// verified before is answered from serve's outcome cache.
	cfg["revocation"] = map[string]any{"timeout": "2s", "cacheTTL": "5m"}
	srv, err := serve.Start(ctx, plugin, dir, cfg, serve.WithKyverno(), serve.WithoutGatekeeper(),
		serve.WithTokenReview(cp.URL, cp.Config.TLSClientConfig.CAFile, adminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", srv.Log())
		}
		srv.Stop()
	})

	// Kyverno's apiCall token: a TokenRequest for its admission
	// controller's service account with serve's audience, as the projected
	// volume of Kyverno's chart (apiCallToken.audience: awssigner) holds.
	tok, err := kube.Client.CoreV1().ServiceAccounts(kyvernoNamespace).CreateToken(ctx, kyvernoAdmission, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"awssigner"}, ExpirationSeconds: &kyvernoTokenTTL}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "kyverno-apicall-token")
	if err := os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}

	step("Kyverno admission controller")
	caPEM, err := kyvernoSecrets(ctx, kube, dir)
	if err != nil {
		t.Fatal(err)
	}
	kyvernoProc, webhook, err := startKyverno(&ps, kyverno, cp, dir, logDir, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsClient := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := waitHTTP(kyvernoProc, tlsClient, "https://"+webhook+"/health/readiness", "", 90*time.Second); err != nil {
		t.Fatal(err)
	}

	step("GlobalContextEntry " + kyvernoTrustEntry + ", ClusterPolicy " + kyvernoPolicy)
	trust, err := os.ReadFile(filepath.Join(root, kyvernoTrustFile))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := DecodeYAML(trust)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := loadKyvernoPolicy(filepath.Join(root, kyvernoPolicyFile), srv.CheckImagesURL, srv.PKI.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Apply(ctx, "", append(entries, policy)...); err != nil {
		t.Fatal(err)
	}
	if err := kyvernoReady(ctx, kube, gvrClusterPolicy, kyvernoPolicy); err != nil {
		t.Fatal(err)
	}
	// Enforced when a Pod it must deny is denied (dry run: nothing stored).
	probe := kyvernoPod("probe", nsA, unsigned)
	if err := Poll(60*time.Second, "policy enforced", func() (bool, error) {
		if kyvernoProc.Exited() {
			return false, Fatal{fmt.Errorf("kyverno exited; see %s", kyvernoProc.Log)}
		}
		_, err := kube.Client.CoreV1().Pods(nsA).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), kyvernoPolicy) {
			return true, nil
		}
		return false, fmt.Errorf("probe: %v", err)
	}); err != nil {
		t.Fatal(err)
	}
	// The GlobalContextEntry (it has no status for Kubernetes resources) is
	// loaded when team-b's label is seen: its image is admitted there.
	if err := Poll(60*time.Second, "GlobalContextEntry "+kyvernoTrustEntry+" loaded", func() (bool, error) {
		_, err := kube.Client.CoreV1().Pods(nsB).Create(ctx, kyvernoPod("probe", nsB, other), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	step("enforced")

	pods := kube.Client.CoreV1()
	t.Run("signed Pod admitted and stored with its digest", func(t *testing.T) {
		p, err := pods.Pods(nsA).Create(ctx, kyvernoPod("signed", nsA, signed), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := stack.Registry.Host + "/team/app@" + digests[signed]; p.Spec.Containers[0].Image != want {
			t.Errorf("stored image %s, want %s", p.Spec.Containers[0].Image, want)
		}
		stored, err := pods.Pods(nsA).Get(ctx, "signed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stored: %s", stored.Spec.Containers[0].Image)
	})
	t.Run("signed Deployment stored with its digest", func(t *testing.T) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: nsA}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: kyvernoPod("web", nsA, signed).Spec}}}
		got, err := kube.Client.AppsV1().Deployments(nsA).Create(ctx, d, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := stack.Registry.Host + "/team/app@" + digests[signed]; got.Spec.Template.Spec.Containers[0].Image != want {
			t.Errorf("stored image %s, want %s", got.Spec.Template.Spec.Containers[0].Image, want)
		}
	})
	denied := []struct {
		name, ns, image string
		want            []string
	}{
		{"unsigned Pod denied", nsA, unsigned, []string{unsigned + ": ", "no Notation signature found"}},
		{"untrusted Pod denied", nsA, other, []string{other + ": ", "signing profile not trusted", otherARN}},
		{"team-a's image denied in team-b", nsB, signed, []string{signed + ": ", stack.ProfileARN}},
	}
	for _, c := range denied {
		t.Run(c.name, func(t *testing.T) {
			_, err := pods.Pods(c.ns).Create(ctx, kyvernoPod("denied", c.ns, c.image), metav1.CreateOptions{})
			if err == nil {
				t.Fatal("created")
			}
			msg := err.Error()
			for _, w := range append([]string{kyvernoDenied, kyvernoPolicy, "HTTP 406 Not Acceptable"}, c.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("denial lacks %q: %s", w, msg)
				}
			}
			t.Logf("%s", msg)
		})
	}
	t.Run("team-b's image admitted in team-b", func(t *testing.T) {
		p, err := pods.Pods(nsB).Create(ctx, kyvernoPod("other", nsB, other), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := stack.Registry.Host + "/team/app@" + digests[other]; p.Spec.Containers[0].Image != want {
			t.Errorf("stored image %s, want %s", p.Spec.Containers[0].Image, want)
		}
	})
	if t.Failed() {
		return
	}

	// Latency of one Pod create, client to stored object, each figure the
	// median of several creates.
	step("latency")
	measure := func(ns string, images []string, n int, wantErr bool) ([]time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			pod := kyvernoPod(fmt.Sprintf("lat-%d-%d", time.Now().UnixNano(), i), ns, images[i%len(images)])
			t0 := time.Now()
			_, err := pods.Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			d := time.Since(t0)
			if (err != nil) != wantErr {
				return nil, fmt.Errorf("create %s in %s: %v", pod.Spec.Containers[0].Image, ns, err)
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	type row struct {
		name string
		ds   []time.Duration
	}
	var rows []row
	var split []string
	for _, m := range []struct {
		name    string
		ns      string
		images  []string
		n       int
		wantErr bool
	}{
		{"signed Pod, image verified before (serve's outcome cache)", nsA, []string{signed}, kyvernoRuns, false},
		{"signed Pod, image never seen (registry + AWS Signer)", nsA, cold, len(cold), false},
		{"unsigned Pod, denied", nsA, []string{unsigned}, kyvernoRuns, true},
		{"Pod in an excluded namespace (Kyverno called, no rule applies)", nsExcluded, []string{unsigned}, kyvernoRuns, false},
	} {
		before, err := kyvernoTimes(ctx, cp, srv)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := measure(m.ns, m.images, m.n, m.wantErr)
		if err != nil {
			t.Fatal(err)
		}
		after, err := kyvernoTimes(ctx, cp, srv)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{m.name, ds})
		split = append(split, fmt.Sprintf("| %s | %s | %s | %s |", m.name, after.sub(before, "mutate"), after.sub(before, "validate"), after.sub(before, "serve")))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nAdmission latency of one Pod create through Kyverno v1.19.1 (client → API server → Kyverno's mutating and validating webhooks → awssigner serve → stored), loopback, 2 cores:\n\n")
	fmt.Fprintf(&b, "| Pod | runs | median | min | max |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		s := append([]time.Duration(nil), r.ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", r.name, len(s), kyvernoMS(s[len(s)/2]), kyvernoMS(s[0]), kyvernoMS(s[len(s)-1]))
	}
	fmt.Fprintf(&b, "\nWhere the time goes (means per call, from the API server's apiserver_admission_webhook_admission_duration_seconds and serve's awssigner_provider_request_duration_seconds{endpoint=\"kyverno\"}):\n\n")
	fmt.Fprintf(&b, "| Pod | mutating webhook | validating webhook | serve /checkimages |\n|---|---|---|---|\n%s\n", strings.Join(split, "\n"))
	fmt.Fprint(os.Stdout, b.String())
	step("done")
}

// kyvernoReady waits until Kyverno reports the object Ready.
func kyvernoReady(ctx context.Context, kube *Kube, gvr schema.GroupVersionResource, name string) error {
	return Poll(60*time.Second, gvr.Resource+" "+name+" Ready", func() (bool, error) {
		o, err := kube.Get(ctx, gvr, "", name)
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Ready" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %v", conds)
	})
}

// kyvernoTime is the sums and counts of the three timings above.
type kyvernoTime map[string][2]float64

// sub is the mean time per call of what between before and t.
func (t kyvernoTime) sub(before kyvernoTime, what string) string {
	n := t[what][1] - before[what][1]
	if n == 0 {
		return "not called"
	}
	return fmt.Sprintf("%.1f ms × %.0f", (t[what][0]-before[what][0])/n*1000, n)
}

// kyvernoTimes reads the API server's webhook durations for Kyverno's two
// resource webhooks and serve's /checkimages durations.
func kyvernoTimes(ctx context.Context, cp *ControlPlane, srv *serve.Process) (kyvernoTime, error) {
	get := func(client *http.Client, url, token string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return string(b), err
	}
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(cp.Config.TLSClientConfig.CAFile); err == nil {
		pool.AppendCertsFromPEM(ca)
	}
	api, err := get(&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, cp.URL+"/metrics", cp.Token)
	if err != nil {
		return nil, err
	}
	own, err := get(http.DefaultClient, "http://"+srv.Health+"/metrics", "")
	if err != nil {
		return nil, err
	}
	return kyvernoTime{
		"mutate":   promSumCount(api, "apiserver_admission_webhook_admission_duration_seconds", `name="mutate.kyverno.svc-fail"`),
		"validate": promSumCount(api, "apiserver_admission_webhook_admission_duration_seconds", `name="validate.kyverno.svc-fail"`),
		"serve":    promSumCount(own, "awssigner_provider_request_duration_seconds", `endpoint="kyverno"`),
	}, nil
}

// promSumCount adds up the _sum and _count samples of a histogram whose
// labels contain label, in Prometheus' text format.
func promSumCount(text, metric, label string) [2]float64 {
	var out [2]float64
	for _, line := range strings.Split(text, "\n") {
		for i, suffix := range []string{"_sum{", "_count{"} {
			if !strings.HasPrefix(line, metric+suffix) || !strings.Contains(line, label) {
				continue
			}
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				out[i] += v
			}
		}
	}
	return out
}

func kyvernoMS(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func kyvernoPod(name, ns, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
}

// applyKyvernoCRDs applies every CRD of Kyverno's module (config/crds,
// all of which its informers need) and waits until they are Established.
func applyKyvernoCRDs(ctx context.Context, kube *Kube, dir string) error {
	mod, err := ModuleDir(dir, kyvernoModule)
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(filepath.Join(mod, "config", "crds"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := DecodeYAML(b)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if err := kube.Apply(ctx, "", o); err != nil {
				return err
			}
			names = append(names, o.GetName())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("no CRDs under " + filepath.Join(mod, "config", "crds"))
	}
	return kube.WaitCRDs(ctx, names, 60*time.Second)
}

// kyvernoSecrets creates Kyverno's CA and serving-certificate Secrets
// (certificate for 127.0.0.1, where its webhooks are registered) and
// returns the CA's PEM.
func kyvernoSecrets(ctx context.Context, kube *Kube, dir string) ([]byte, error) {
	ca, err := harness.NewCA(filepath.Join(dir, "kyverno-ca"))
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "kyverno-tls")
	if err := ca.IssueDir(tlsDir, "kyverno-svc.kyverno.svc", x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(filepath.Join(tlsDir, "tls.crt"))
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(tlsDir, "tls.key"))
	if err != nil {
		return nil, err
	}
	// Kyverno reads only tls.crt of the CA Secret (the webhooks' caBundle).
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: kyvernoCASecret, Namespace: kyvernoNamespace}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{corev1.TLSCertKey: ca.PEM}},
		{ObjectMeta: metav1.ObjectMeta{Name: kyvernoTLSSecret, Namespace: kyvernoNamespace}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}},
	} {
		if _, err := kube.Client.CoreV1().Secrets(kyvernoNamespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	return ca.PEM, nil
}

// startKyverno runs Kyverno's admission controller out of cluster: its
// webhooks registered by URL at the returned 127.0.0.1 address, every
// listener on loopback, the test's Secrets, apiCall's token from
// tokenFile, loopback not blocked for apiCall.
func startKyverno(ps *Procs, bin string, cp *ControlPlane, dir, logDir, tokenFile string) (*Proc, string, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	metrics, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	webhook := fmt.Sprintf("127.0.0.1:%d", port)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"KYVERNO_NAMESPACE=" + kyvernoNamespace, "KYVERNO_SERVICEACCOUNT_NAME=" + kyvernoAdmission,
		"KYVERNO_DEPLOYMENT=kyverno-admission-controller", "KYVERNO_POD_NAME=kyverno-e2e",
		"INIT_CONFIG=kyverno", "METRICS_CONFIG=kyverno-metrics", "KYVERNO_SCOPED_TOKEN_PATH=" + tokenFile}
	p, err := ps.Start(logDir, "kyverno", env, bin,
		"--kubeconfig="+cp.Kubeconfig,
		"--serverIP="+webhook, "--webhookServerHost=127.0.0.1", fmt.Sprintf("--webhookServerPort=%d", port),
		"--backgroundServiceAccountName=system:serviceaccount:kyverno:kyverno-background-controller",
		"--reportsServiceAccountName=system:serviceaccount:kyverno:kyverno-reports-controller",
		"--caSecretName="+kyvernoCASecret, "--tlsSecretName="+kyvernoTLSSecret, "--disableCertManagerController",
		"--metricsHost=127.0.0.1", fmt.Sprintf("--metricsPort=%d", metrics), "--controllerRuntimeMetricsAddress=0",
		"--admissionReports=false", "--disableLogColor", "--httpBlocklist="+kyvernoBlocklist)
	return p, webhook, err
}

// loadKyvernoPolicy reads the ClusterPolicy with every apiCall service
// pointed at url and trusting caPEM.
func loadKyvernoPolicy(path, url string, caPEM []byte) (*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		return nil, err
	}
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	n := 0
	for _, r := range rules {
		ctxs, _ := r.(map[string]any)["context"].([]any)
		for _, c := range ctxs {
			svc, ok, _ := unstructured.NestedMap(c.(map[string]any), "apiCall", "service")
			if !ok {
				continue
			}
			if svc["url"] != kyvernoPlaceholder {
				return nil, fmt.Errorf("%s: service.url %v, want the placeholder %s", path, svc["url"], kyvernoPlaceholder)
			}
			svc["url"], svc["caBundle"] = url, string(caPEM)
			if err := unstructured.SetNestedMap(c.(map[string]any), svc, "apiCall", "service"); err != nil {
				return nil, err
			}
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no apiCall.service", path)
	}
	if err := unstructured.SetNestedSlice(u.Object, rules, "spec", "rules"); err != nil {
		return nil, err
	}
	return u, nil
}
