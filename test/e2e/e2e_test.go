package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

const (
	gkNamespace = "gatekeeper-system"
	nsAll       = "e2e"      // the cluster-wide Constraint only
	nsTeam      = "e2e-team" // + a restriction to profile Team
	nsWarn      = "e2e-warn" // only a warn-only restriction to Team
	// Namespaces with one test Constraint each, asking Ratify in another
	// scope: none (cluster-wide verifiers only), an empty one, one whose
	// verifier cannot reach AWS, one whose verifier's parameters are invalid.
	nsUnscoped  = "e2e-unscoped"
	nsNoVerif   = "e2e-no-verifier"
	nsAWSDown   = "e2e-aws-down"
	nsBadConfig = "e2e-bad-config"
	scopeEmpty  = "scope-empty"
	scopeAWS    = "scope-aws-down"
	scopeConfig = "scope-bad-config"
	// The issue's setup, for contrast: a scope where Ratify has both our
	// verifier and the notation one, under its config policy.
	nsShared    = "e2e-shared"
	scopeShared = "scope-shared"
	denyPrefix  = `admission webhook "validation.gatekeeper.sh" denied the request`
	// What Ratify's chart installs by default next to ours.
	notationVerifier = "verifier-notation"
	// signedRuns is how many freshly signed images must be admitted in a row
	// with Ratify's notation verifier present.
	signedRuns = 20
	// sharedRuns is how many signed images go to the shared scope: Go's map
	// iteration (it starts at a random one of a bucket's 8 slots) sent 1 in
	// 8 to 1 in 5 to the notation verifier in our runs (7/60, 4/20, 21/100),
	// so all 100 reaching ours has a probability under (7/8)^100 ≈ 2e-6.
	sharedRuns = 100
)

var (
	gvrTemplate   = schema.GroupVersionResource{Group: "templates.gatekeeper.sh", Version: "v1", Resource: "constrainttemplates"}
	gvrConstraint = schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "awssignerverifiedimages"}
	gvrVerifier   = schema.GroupVersionResource{Group: "config.ratify.deislabs.io", Version: "v1beta1", Resource: "verifiers"}
	gvrNSVerifier = schema.GroupVersionResource{Group: "config.ratify.deislabs.io", Version: "v1beta1", Resource: "namespacedverifiers"}
	gvrProvider   = schema.GroupVersionResource{Group: "externaldata.gatekeeper.sh", Version: "v1beta1", Resource: "providers"}
)

// procs holds every process the test starts; TestMain and a signal
// handler stop them all.
var procs Procs

// testDir is the run's directory, named when the run is interrupted.
var testDir string

func TestMain(m *testing.M) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "e2e: %v: stopping every process started\n", s)
		procs.StopAll()
		if testDir != "" {
			fmt.Fprintf(os.Stderr, "e2e: logs of every process in %s\n", filepath.Join(testDir, "logs"))
		}
		os.Exit(1)
	}()
	code := m.Run()
	procs.StopAll()
	os.Exit(code)
}

// warnings collects the warnings the API server returns.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// bins are the programs the test runs.
type bins struct{ apiserver, gatekeeper, ratify, kubectl string }

func findBins(root string) (bins, error) {
	b := bins{filepath.Join(root, "bin", "kube-apiserver"), filepath.Join(root, "bin", "gatekeeper"), filepath.Join(root, "bin", "ratify"), filepath.Join(root, "bin", "kubectl")}
	if p := os.Getenv("RATIFY_BIN"); p != "" {
		b.ratify = p
	}
	var missing []string
	for _, p := range []string{b.apiserver, b.gatekeeper, b.ratify, b.kubectl} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("missing %s: run `make e2e` (builds them into bin/)", strings.Join(missing, ", "))
	}
	return b, nil
}

func TestAdmission(t *testing.T) {
	start := time.Now()
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := findBins(root)
	if err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	// ratify serve --enable-crd-manager binds its controller metrics on
	// :8080, which no flag moves.
	if l, err := net.Listen("tcp", ":8080"); err != nil {
		t.Fatalf("port 8080 is in use (%v): ratify serve --enable-crd-manager binds its metrics there and cannot be moved; free it", err)
	} else {
		l.Close()
	}
	dir, err := os.MkdirTemp("", "awssigner-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	testDir = dir
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	t.Cleanup(func() {
		procs.StopAll()
		if t.Failed() || os.Getenv("E2E_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "e2e: logs of every process in %s (kubeconfig: %s)\n", logDir, filepath.Join(dir, "kubeconfig"))
			return
		}
		os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	step := func(name string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), name) }

	// Registry, AWS Signer emulator, images.
	step("registry + AWS Signer emulator")
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	t.Cleanup(procs.StopAll) // runs before stack.Close
	otherARN, _, err := stack.Emulator.CreateProfile("Other", 12)
	if err != nil {
		t.Fatal(err)
	}
	strangerARN, _, err := stack.Emulator.CreateProfile("Stranger", 12)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]string{}
	image := func(tag, profile string) string {
		ref, desc, err := stack.PushImage(ctx, "team/app", tag)
		if err != nil {
			t.Fatal(err)
		}
		if profile != "" {
			_, job, err := stack.Sign(ctx, "team/app", desc, profile)
			if err != nil {
				t.Fatal(err)
			}
			jobs[tag] = job
		}
		return ref
	}
	signed := image("signed", stack.ProfileARN)
	signed2 := image("signed2", stack.ProfileARN)
	revocable := image("revocable", stack.ProfileARN)
	other := image("other", otherARN)
	stranger := image("stranger", strangerARN)
	unsigned := image("unsigned", "")
	afterRatify := image("after-ratify", stack.ProfileARN)
	awsDown := image("aws-down", stack.ProfileARN)
	var signedMany []string
	for i := 0; i < signedRuns; i++ {
		signedMany = append(signedMany, image(fmt.Sprintf("signed-run-%02d", i), stack.ProfileARN))
	}
	var signedShared []string
	for i := 0; i < sharedRuns; i++ {
		signedShared = append(signedShared, image(fmt.Sprintf("signed-shared-%02d", i), stack.ProfileARN))
	}
	// The same signed image through a front that wants credentials Ratify
	// does not have.
	proxy, proxyHost, err := AuthProxy(stack.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	behindAuth := strings.Replace(signed, stack.Registry.Host, proxyHost, 1)

	pluginDir := filepath.Join(dir, "plugins")
	os.MkdirAll(pluginDir, 0o755)
	step("build the awssigner plugin")
	if _, err := harness.PluginBinary(pluginDir); err != nil {
		t.Fatal(err)
	}

	// etcd + kube-apiserver.
	step("etcd + kube-apiserver")
	cp, err := StartControlPlane(&procs, dir, logDir, b.apiserver)
	if err != nil {
		t.Fatal(err)
	}
	warns := &warnings{}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = warns
	kube, err := NewKube(cfg)
	if err != nil {
		t.Fatal(err)
	}
	step("kubeconfig at " + cp.Kubeconfig)

	// Namespaces (and their default ServiceAccount: no controller-manager
	// runs) before Gatekeeper's namespace webhook exists.
	for _, ns := range []string{gkNamespace, nsAll, nsTeam, nsWarn, nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, scopeEmpty, scopeAWS, scopeConfig, nsShared, scopeShared} {
		if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// CRDs of Gatekeeper (its staging manifest) and Ratify (its chart).
	step("CRDs of Gatekeeper v3.23.1 and Ratify v1.4.6")
	gkDir, err := ModuleDir(filepath.Join(root, "tools", "gatekeeper"), "github.com/open-policy-agent/gatekeeper/v3@v3.23.1")
	if err != nil {
		t.Fatal(err)
	}
	ratifyDir, err := ModuleDir(filepath.Join(root, "tools"), "github.com/ratify-project/ratify@v1.4.6")
	if err != nil {
		t.Fatal(err)
	}
	gkManifest, err := os.ReadFile(filepath.Join(gkDir, "manifest_staging", "deploy", "gatekeeper.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gkObjs, err := DecodeYAML(gkManifest)
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	var vwc *unstructured.Unstructured
	for _, o := range gkObjs {
		switch {
		case o.GetKind() == "CustomResourceDefinition":
			crds = append(crds, o)
		case o.GetKind() == "ValidatingWebhookConfiguration" && o.GetName() == "gatekeeper-validating-webhook-configuration":
			vwc = o
		}
	}
	files, _ := filepath.Glob(filepath.Join(ratifyDir, "charts", "ratify", "crds", "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := DecodeYAML(data)
		if err != nil {
			t.Fatal(err)
		}
		crds = append(crds, objs...)
	}
	if vwc == nil || len(crds) < 20 {
		t.Fatalf("found %d CRDs and webhook configuration %v in the Gatekeeper and Ratify modules", len(crds), vwc != nil)
	}
	if err := kube.Apply(ctx, "", crds...); err != nil {
		t.Fatal(err)
	}
	var crdNames []string
	for _, c := range crds {
		crdNames = append(crdNames, c.GetName())
	}
	if err := kube.WaitCRDs(ctx, crdNames, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d CRDs established", len(crds))

	// PKI: one CA; Gatekeeper's certificate serves the webhook and is its
	// client certificate towards Ratify (mTLS).
	pkiDir := filepath.Join(dir, "pki")
	os.MkdirAll(pkiDir, 0o700)
	ca, err := harness.NewCA(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	gkCerts, ratifyCerts := filepath.Join(pkiDir, "gatekeeper"), filepath.Join(pkiDir, "ratify")
	if err := ca.IssueDir(gkCerts, "gatekeeper", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueDir(ratifyCerts, "ratify", x509.ExtKeyUsageServerAuth); err != nil {
		t.Fatal(err)
	}
	caBundle := base64.StdEncoding.EncodeToString(ca.PEM)

	// Gatekeeper manager, out of cluster.
	step("Gatekeeper manager")
	gkPort, _ := harness.FreePort()
	gkHealth, _ := harness.FreePort()
	gkProm, _ := harness.FreePort()
	baseEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KUBECONFIG=" + cp.Kubeconfig}
	gk, err := procs.Start(logDir, "gatekeeper", append(baseEnv, "POD_NAMESPACE="+gkNamespace, "POD_NAME=gatekeeper-e2e"), b.gatekeeper,
		"--kubeconfig="+cp.Kubeconfig, "--debug-use-fake-pod",
		"--operation=webhook", "--operation=status", "--operation=generate",
		"--host=127.0.0.1", fmt.Sprintf("--port=%d", gkPort), "--cert-dir="+gkCerts, "--disable-cert-rotation",
		fmt.Sprintf("--health-addr=127.0.0.1:%d", gkHealth), "--metrics-addr=0", fmt.Sprintf("--prometheus-port=%d", gkProm),
		"--enable-external-data=true", "--external-data-provider-response-cache-ttl=0s",
		"--log-denies", "--shutdown-delay=0")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitHTTP(gk, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", gkHealth), "", 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// Its validating webhook, by URL, failing closed.
	vwc.SetResourceVersion("")
	whs, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	for i, w := range whs {
		m := w.(map[string]any)
		cc := m["clientConfig"].(map[string]any)
		svc := cc["service"].(map[string]any)
		m["clientConfig"] = map[string]any{"url": fmt.Sprintf("https://127.0.0.1:%d%s", gkPort, svc["path"]), "caBundle": caBundle}
		m["failurePolicy"] = "Fail"
		m["timeoutSeconds"] = int64(10)
		whs[i] = m
	}
	unstructured.SetNestedSlice(vwc.Object, whs, "webhooks")
	if err := kube.Apply(ctx, "", vwc); err != nil {
		t.Fatal(err)
	}

	// ratify serve in Kubernetes mode (CRD manager), HTTPS + mTLS.
	step("ratify serve (CRD manager) with the awssigner plugin")
	ratifyHome := filepath.Join(dir, "ratify")
	os.MkdirAll(ratifyHome, 0o700)
	ratifyCfg := filepath.Join(ratifyHome, "config.json")
	os.WriteFile(ratifyCfg, []byte(`{"logger":{"formatter":"text"},"executor":{"verificationRequestTimeout":4900,"mutationRequestTimeout":1950},"crl":{"cache":{"enabled":false}}}`), 0o600)
	ratifyPort, _ := harness.FreePort()
	ratifyHealth, _ := harness.FreePort()
	ratifyEnv := append(harness.Env(ratifyHome), "KUBECONFIG="+cp.Kubeconfig, "RATIFY_NAMESPACE="+gkNamespace, "AWS_REGION="+stack.Emulator.Region())
	startRatify := func() *Proc {
		p, err := procs.Start(logDir, "ratify", ratifyEnv, b.ratify, "serve",
			"--http", fmt.Sprintf("127.0.0.1:%d", ratifyPort), "-c", ratifyCfg, "--enable-crd-manager",
			"--cert-dir", ratifyCerts, "--ca-cert-file", ca.File,
			"--cache-enabled=true", "--cache-ttl=1s", "--health-port", fmt.Sprintf("127.0.0.1:%d", ratifyHealth))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ratify := startRatify()
	if err := waitHTTP(ratify, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", ratifyHealth), "", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// Ratify's Store and Policy (as its chart creates them), and the
	// Gatekeeper Provider pointing at ratify serve.
	ratifyURL := fmt.Sprintf("https://127.0.0.1:%d/ratify/gatekeeper/v1/verify", ratifyPort)
	base, err := DecodeYAML([]byte(fmt.Sprintf(`
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata: {name: store-oras}
spec:
  name: oras
  version: 1.0.0
  parameters: {useHttp: true}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Policy
metadata: {name: ratify-policy}
spec:
  type: config-policy
  parameters:
    artifactVerificationPolicies: {default: all}
---
apiVersion: externaldata.gatekeeper.sh/v1beta1
kind: Provider
metadata: {name: ratify-provider}
spec:
  url: %s
  timeout: 5
  caBundle: %s
`, ratifyURL, caBundle)))
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Apply(ctx, gkNamespace, base...); err != nil {
		t.Fatal(err)
	}

	// Ratify's own notation Verifier, exactly as Ratify's chart (default
	// values) renders it: with Ratify's config policy it competes with ours
	// for every Notation signature.
	step("Ratify's chart's " + notationVerifier)
	nv, err := ratifyChartNotation(filepath.Join(ratifyDir, "charts", "ratify"), string(stack.Emulator.CA().RootPEM()))
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Apply(ctx, gkNamespace, nv...); err != nil {
		t.Fatal(err)
	}
	if err := kube.WaitField(ctx, gvrVerifier, "", notationVerifier, true, 30*time.Second, "status", "issuccess"); err != nil {
		t.Fatalf("%v (see %s)", err, ratify.Log)
	}

	// Our chart: one real `helm install --wait` (Helm's install action with
	// the kubeconfig), the hook Job run by the stand-in runner.
	chartDir := filepath.Join(root, "charts", "ratify-aws-signer")
	vals := map[string]any{
		"trustedSigningProfiles": []any{stack.ProfileARN, otherARN},
		"trustStores":            map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []any{string(stack.Emulator.CA().RootPEM())}}},
		"revocation":             map[string]any{"cacheTTL": "1s", "cacheDir": filepath.Join(dir, "revocation-cache")},
		"aws":                    map[string]any{"endpoint": stack.Emulator.URL(), "region": stack.Emulator.Region()},
		"verifier":               map[string]any{"address": pluginDir},
		"policies": map[string]any{"constraints": map[string]any{
			"excludedNamespaces": []any{"kube-system", gkNamespace, nsWarn, nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, nsShared},
			"namespaceRestrictions": []any{
				map[string]any{"namespaces": []any{nsTeam}, "allowedSigningProfiles": []any{stack.ProfileARN}},
				map[string]any{"namespaces": []any{nsWarn}, "allowedSigningProfiles": []any{stack.ProfileARN}, "enforcementAction": "warn"},
			},
		}},
	}
	hookJobs := StartJobRunner(kube, cp, b.kubectl, gkNamespace, dir, t.Logf)
	t.Cleanup(hookJobs.Stop)

	step("coexistence guard: a cluster-wide awssigner Verifier next to " + notationVerifier + " is refused")
	_, err = HelmInstall(ctx, cp, chartDir, "ratify-aws-signer-cluster", gkNamespace, merge(vals, map[string]any{
		"verifier": map[string]any{"kind": "Verifier", "address": pluginDir},
		"policies": map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "Verifier "+notationVerifier+" (spec.name notation) already claims Notation signatures") {
		t.Fatalf("helm install with verifier.kind=Verifier next to %s: got %v, want the coexistence refusal", notationVerifier, err)
	}
	t.Logf("  refused: %.200s…", err)

	step("helm install --wait (single pass)")
	t0 := time.Now()
	rel, err := HelmInstall(ctx, cp, chartDir, "ratify-aws-signer", gkNamespace, vals, func(string, ...any) {})
	if err != nil {
		for _, r := range hookJobs.Runs() {
			t.Logf("job %s ok=%v:\n%s", r.Name, r.OK, r.Output)
		}
		t.Fatalf("helm install: %v (logs: %s, %s)", err, gk.Log, ratify.Log)
	}
	installTime := time.Since(t0)
	runs := hookJobs.Runs()
	if len(runs) != 1 || !runs[0].OK {
		t.Fatalf("hook Jobs run: %+v, want one successful run", runs)
	}
	t.Logf("  release %s: %s in %v; hook Job %s: %v\n%s", rel.Name, rel.Info.Status, installTime.Round(time.Millisecond), runs[0].Name, runs[0].Duration.Round(time.Millisecond), runs[0].Output)
	if err := kube.WaitField(ctx, gvrNSVerifier, gkNamespace, "verifier-awssigner", true, 30*time.Second, "status", "issuccess"); err != nil {
		t.Fatalf("%v (see %s)", err, ratify.Log)
	}
	constraints := []string{"aws-signer-verified-images", "aws-signer-verified-images-" + nsTeam, "aws-signer-verified-images-" + nsWarn}
	for _, c := range constraints {
		if err := kube.WaitField(ctx, gvrConstraint, "", c, true, 60*time.Second, "status", "byPod", "0", "enforced"); err != nil {
			t.Fatalf("after one helm install: %v (see %s)", err, gk.Log)
		}
	}
	if err := kube.WaitField(ctx, gvrProvider, "", "ratify-provider", true, 30*time.Second, "status", "byPod", "0", "active"); err != nil {
		t.Logf("provider status not reported active (continuing): %v", err)
	}

	// Other scopes, and one test Constraint per cause namespace.
	step("scopes for the causes: no verifier, AWS unreachable, invalid parameters")
	closed, _ := harness.FreePort() // nothing listens there
	scoped, err := renderChart(chartDir, scopeAWS, merge(vals, map[string]any{
		"aws":        map[string]any{"endpoint": fmt.Sprintf("http://127.0.0.1:%d", closed), "region": stack.Emulator.Region()},
		"revocation": map[string]any{"cacheTTL": "0s", "timeout": "1s", "cacheDir": filepath.Join(dir, "revocation-cache-aws-down")},
		"policies":   map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), "config.ratify.deislabs.io/v1beta1/NamespacedVerifier")
	if err != nil {
		t.Fatal(err)
	}
	extra, err := DecodeYAML([]byte(fmt.Sprintf(`
apiVersion: config.ratify.deislabs.io/v1beta1
kind: NamespacedVerifier
metadata: {name: verifier-awssigner, namespace: %[1]s}
spec:
  name: awssigner
  version: 1.0.0
  artifactTypes: application/vnd.cncf.notary.signature
  address: %[2]s
  parameters:
    trustPolicyDoc:
      version: "1.0"
      trustPolicies:
      - {name: p, registryScopes: ["*"], signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: [%[3]q]}
    revocation: {ttl: 5m}
`, scopeConfig, pluginDir, stack.ProfileARN)))
	if err != nil {
		t.Fatal(err)
	}
	// scope-shared: our verifier (as the chart renders it) and Ratify's
	// notation verifier side by side, as NamespacedVerifiers.
	shared, err := renderChart(chartDir, scopeShared, merge(vals, map[string]any{
		"policies": map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), "config.ratify.deislabs.io/v1beta1/NamespacedVerifier")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range nv {
		if o.GetKind() == "Verifier" {
			c := o.DeepCopy()
			c.SetKind("NamespacedVerifier")
			c.SetNamespace(scopeShared)
			c.SetResourceVersion("")
			shared = append(shared, c)
		}
	}
	extra = append(extra, shared...)
	for _, c := range []struct{ ns, scope string }{{nsUnscoped, ""}, {nsNoVerif, scopeEmpty}, {nsAWSDown, scopeAWS}, {nsBadConfig, scopeConfig}, {nsShared, scopeShared}} {
		params := ""
		if c.scope != "" {
			params = "ratifyNamespace: " + c.scope
		}
		o, err := DecodeYAML([]byte(fmt.Sprintf(`
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: %[1]s}
spec:
  enforcementAction: deny
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
    namespaces: [%[1]s]
  parameters: {%[2]s}
`, c.ns, params)))
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, o...)
	}
	if err := kube.Apply(ctx, gkNamespace, append(scoped, extra...)...); err != nil {
		t.Fatal(err)
	}
	for _, sv := range []struct{ ns, name string }{{scopeAWS, "verifier-awssigner"}, {scopeConfig, "verifier-awssigner"}, {scopeShared, "verifier-awssigner"}, {scopeShared, notationVerifier}} {
		// Ratify accepts the invalid parameters too: the plugin only reads
		// them when it runs (the chart's schema is what refuses them early).
		if err := kube.WaitField(ctx, gvrNSVerifier, sv.ns, sv.name, true, 30*time.Second, "status", "issuccess"); err != nil {
			t.Fatalf("%v (see %s)", err, ratify.Log)
		}
	}
	for _, c := range []string{nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, nsShared} {
		if err := kube.WaitField(ctx, gvrConstraint, "", c, true, 60*time.Second, "status", "byPod", "0", "enforced"); err != nil {
			t.Fatalf("%v (see %s)", err, gk.Log)
		}
	}
	step(fmt.Sprintf("ready: Constraints %v enforced, one helm install (%v)", constraints, installTime.Round(time.Millisecond)))
	warns.take()

	// Assertions: kubectl-equivalent creates through the API server.
	n := 0
	pod := func(ns, img string) error {
		n++
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", n), Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img}}}}
		t0 := time.Now()
		_, err := kube.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		t.Logf("  create pod %s/%s image %s: %s (%v)", ns, p.Name, img, result(err), time.Since(t0).Round(time.Millisecond))
		return err
	}
	admitted := func(t *testing.T, ns, img string) {
		t.Helper()
		if err := pod(ns, img); err != nil {
			t.Errorf("pod with %s in %s denied: %v", img, ns, err)
		}
	}
	denied := func(t *testing.T, ns, img string, want ...string) string {
		t.Helper()
		err := pod(ns, img)
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
	notAllowed := func(img string) string {
		return fmt.Sprintf("image %q in container \"app\" (containers) is not allowed", img)
	}

	t.Run("signed by the trusted profile is admitted", func(t *testing.T) {
		admitted(t, nsAll, signed)
	})
	t.Run(fmt.Sprintf("%d freshly signed images admitted in a row next to Ratify's notation verifier", signedRuns), func(t *testing.T) {
		var took []time.Duration
		ok := 0
		for _, img := range signedMany {
			t0 := time.Now()
			err := pod(nsAll, img)
			took = append(took, time.Since(t0))
			if err != nil {
				t.Errorf("pod with %s denied: %v", img, err)
				continue
			}
			ok++
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		t.Logf("  %d/%d admitted; create latency median %v, max %v", ok, len(signedMany), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	})
	t.Run("contrast: both verifiers in one scope, as in the issue, deny signed images at random", func(t *testing.T) {
		// Ratify's config policy runs only the first matching verifier, and
		// builds the list from a map per request: each image goes to either
		// verifier (see sharedRuns).
		ok, named := 0, 0
		for _, img := range signedShared {
			err := pod(nsShared, img)
			switch {
			case err == nil:
				ok++
			case strings.Contains(err.Error(), "Ratify ran verifier-notation (type notation) on its signature instead of the \"awssigner\" verifier"):
				named++
			default:
				t.Errorf("pod with %s denied for another reason: %v", img, err)
			}
		}
		t.Logf("  %d/%d admitted, %d denied naming verifier-notation", ok, len(signedShared), named)
		if named == 0 {
			t.Errorf("all %d admitted with both verifiers in one scope: the coexistence case is not reproduced", ok)
		}
	})
	t.Run("unsigned is denied: it has no signature", func(t *testing.T) {
		denied(t, nsAll, unsigned, notAllowed(unsigned), "it has no signature: Ratify found no Notation signature attached to it")
	})
	t.Run("cluster scope: the message names the notation verifier Ratify ran instead", func(t *testing.T) {
		msg := denied(t, nsUnscoped, signed, notAllowed(signed), `Ratify ran verifier-notation (type notation) on its signature instead of the "awssigner" verifier`, "only the first verifier whose artifactTypes match runs")
		t.Logf("  message: %s", msg)
	})
	t.Run("scope without our verifier: named, with what to check", func(t *testing.T) {
		denied(t, nsNoVerif, signed, notAllowed(signed), `no "awssigner" verifier in scope "`+scopeEmpty+`"`, "kubectl get namespacedverifiers -n "+scopeEmpty)
	})
	t.Run("AWS Signer unreachable: its own cause", func(t *testing.T) {
		msg := denied(t, nsAWSDown, awsDown, notAllowed(awsDown), "AWS Signer could not be asked about revocation")
		t.Logf("  message: %s", msg)
	})
	t.Run("invalid Verifier parameters: their own cause", func(t *testing.T) {
		msg := denied(t, nsBadConfig, signed, notAllowed(signed), "Verifier's parameters are invalid", "revocation.ttl")
		t.Logf("  message: %s", msg)
	})
	t.Run("registry refuses Ratify's credentials: the registry cause, with where to look", func(t *testing.T) {
		// Ratify v1.4 answers "could not resolve descriptor" whatever the
		// registry said (it logs "basic credential not found"): the policy
		// names the registry and the log line that tells.
		msg := denied(t, nsAll, behindAuth, notAllowed(behindAuth), "Ratify could not read the image from the registry", "refused Ratify's credentials", "REPOSITORY_OPERATION_FAILURE")
		if !strings.Contains(readFile(t, ratify.Log), "basic credential not found") {
			t.Errorf("Ratify's log does not say %q for %s", "basic credential not found", behindAuth)
		}
		t.Logf("  message: %s", msg)
	})
	t.Run("signed by an untrusted profile is denied", func(t *testing.T) {
		denied(t, nsAll, stranger, notAllowed(stranger))
	})
	t.Run("namespace restricted to one profile", func(t *testing.T) {
		admitted(t, nsAll, other) // Ratify trusts Other
		admitted(t, nsTeam, signed2)
		denied(t, nsTeam, other, notAllowed(other))
	})
	t.Run("warn-only constraint admits with a warning", func(t *testing.T) {
		warns.take()
		admitted(t, nsWarn, unsigned)
		ws := warns.take()
		t.Logf("  warnings: %q", ws)
		found := false
		for _, w := range ws {
			if strings.Contains(w, notAllowed(unsigned)) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming %s: %q", unsigned, ws)
		}
	})
	t.Run("Deployment with a bad image is denied at the Deployment", func(t *testing.T) {
		replicas := int32(1)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: nsAll}, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bad"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "bad"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: unsigned}}}},
		}}
		_, err := kube.Client.AppsV1().Deployments(nsAll).Create(ctx, d, metav1.CreateOptions{})
		t.Logf("  create deployment %s/bad image %s: %s", nsAll, unsigned, result(err))
		if err == nil || !strings.Contains(err.Error(), denyPrefix) || !strings.Contains(err.Error(), unsigned) {
			t.Errorf("Deployment with an unsigned image: got %v, want a denial naming the image", err)
		}
	})
	t.Run("revoked through the emulator is denied on the next create", func(t *testing.T) {
		admitted(t, nsAll, revocable)
		if err := stack.Emulator.RevokeJob(jobs["revocable"]); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		// Caches: Gatekeeper 0s, Ratify 1s, the plugin's revocation cache 1s.
		var last error
		err := Poll(20*time.Second, "revocation takes effect", func() (bool, error) {
			last = pod(nsAll, revocable)
			return last != nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("  revocation took effect after %v", time.Since(t0).Round(time.Millisecond))
		if !strings.Contains(last.Error(), denyPrefix) || !strings.Contains(last.Error(), "revoked") {
			t.Errorf("revoked image: error %q lacks the denial or the word revoked", last)
		}
	})
	t.Run("helm upgrade: a dropped restriction is pruned, the other Constraints are updated in place", func(t *testing.T) {
		uids := map[string]string{}
		for _, c := range constraints {
			o, err := kube.Get(ctx, gvrConstraint, "", c)
			if err != nil {
				t.Fatal(err)
			}
			uids[c] = string(o.GetUID())
		}
		before := len(hookJobs.Runs())
		up := merge(vals, map[string]any{"policies": map[string]any{"constraints": map[string]any{
			"namespaceRestrictions": []any{
				map[string]any{"namespaces": []any{nsTeam}, "allowedSigningProfiles": []any{stack.ProfileARN}},
			},
		}}})
		t0 := time.Now()
		rel, err := HelmUpgrade(ctx, cp, chartDir, "ratify-aws-signer", gkNamespace, up, func(string, ...any) {})
		if err != nil {
			t.Fatalf("helm upgrade: %v", err)
		}
		runs := hookJobs.Runs()
		if len(runs) != before+1 || !runs[len(runs)-1].OK {
			t.Fatalf("hook Jobs after the upgrade: %+v", runs[before:])
		}
		t.Logf("  release %s revision %d in %v; hook Job:\n%s", rel.Name, rel.Version, time.Since(t0).Round(time.Millisecond), runs[len(runs)-1].Output)
		if _, err := kube.Get(ctx, gvrConstraint, "", "aws-signer-verified-images-"+nsWarn); err == nil {
			t.Errorf("the dropped restriction's Constraint is still there")
		}
		for _, c := range constraints[:2] {
			o, err := kube.Get(ctx, gvrConstraint, "", c)
			if err != nil {
				t.Errorf("Constraint %s after the upgrade: %v", c, err)
				continue
			}
			if string(o.GetUID()) != uids[c] {
				t.Errorf("Constraint %s was re-created (a gap in enforcement), not updated in place", c)
			}
		}
		denied(t, nsTeam, other, notAllowed(other))
	})
	t.Run("ratify serve requires Gatekeeper's client certificate (mTLS)", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		pair, err := tls.LoadX509KeyPair(filepath.Join(gkCerts, "tls.crt"), filepath.Join(gkCerts, "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		body := `{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":["` + signed + `"]}}`
		post := func(certs []tls.Certificate) (int, error) {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
			resp, err := c.Post(ratifyURL, "application/json", strings.NewReader(body))
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if code, err := post([]tls.Certificate{pair}); err != nil || code != http.StatusOK {
			t.Errorf("with Gatekeeper's certificate: HTTP %d, %v; want 200", code, err)
		}
		code, err := post(nil)
		t.Logf("  without a client certificate: HTTP %d, %v", code, err)
		if err == nil {
			t.Errorf("without a client certificate: HTTP %d, want the TLS handshake refused", code)
		}
	})
	t.Run("Ratify stopped: denied (fail closed)", func(t *testing.T) {
		ratify.Stop(10 * time.Second)
		msg := denied(t, nsAll, afterRatify)
		t.Logf("  message: %s", msg)
	})
	t.Run("Gatekeeper stopped: denied by failurePolicy Fail", func(t *testing.T) {
		gk.Stop(10 * time.Second)
		err := pod(nsAll, signed)
		if err == nil || !strings.Contains(err.Error(), `failed calling webhook "validation.gatekeeper.sh"`) {
			t.Errorf("with Gatekeeper down: got %v, want the webhook call to fail closed", err)
		}
	})
	step("done")
}

func result(err error) string {
	if err == nil {
		return "admitted"
	}
	return "denied: " + err.Error()
}

// renderChart renders the chart as `helm install --dry-run` would against a
// cluster serving apis, and returns its objects in Helm's install order.
func renderChart(chartDir, ns string, vals map[string]any, apis ...string) ([]*unstructured.Unstructured, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = "ratify-aws-signer-" + ns
	inst.Namespace = ns
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.2", Major: "1", Minor: "36"}
	inst.APIVersions = apis
	// Values go through JSON so they have the types Helm's YAML loader gives.
	b, _ := json.Marshal(vals)
	var v map[string]any
	json.Unmarshal(b, &v)
	rel, err := inst.RunWithContext(context.Background(), ch, v)
	if err != nil {
		return nil, err
	}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out []*unstructured.Unstructured
	for _, k := range keys {
		objs, err := DecodeYAML([]byte(manifests[k]))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// ratifyChartNotation returns what Ratify's chart installs for its notation
// verifier (as pre-install hooks) when given a notation certificate, as in
// Ratify's AWS Signer guide (--set-file notationCerts={root.cert}): the
// Verifier verifier-notation and the KeyManagementProvider holding the
// certificate. (RATIFY_CERT_ROTATION only lets the chart render without TLS
// files; it changes neither object.)
func ratifyChartNotation(chartDir, certPEM string) ([]*unstructured.Unstructured, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = "ratify"
	inst.Namespace = gkNamespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.2", Major: "1", Minor: "36"}
	rel, err := inst.RunWithContext(context.Background(), ch, map[string]any{
		"featureFlags":  map[string]any{"RATIFY_CERT_ROTATION": true},
		"notationCerts": []any{certPEM},
	})
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, h := range rel.Hooks {
		objs, err := DecodeYAML([]byte(h.Manifest))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if (o.GetKind() == "Verifier" && o.GetName() == notationVerifier) || o.GetKind() == "KeyManagementProvider" {
				ann := o.GetAnnotations()
				for k := range ann {
					if strings.HasPrefix(k, "helm.sh/") {
						delete(ann, k)
					}
				}
				o.SetAnnotations(ann)
				out = append(out, o)
			}
		}
	}
	if len(out) != 2 {
		return nil, fmt.Errorf("Ratify's chart renders %d notation objects, want its Verifier %s and one KeyManagementProvider", len(out), notationVerifier)
	}
	return out, nil
}

// merge returns a copy of base with over's keys set, maps merged
// recursively.
func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
