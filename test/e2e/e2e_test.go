package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

const (
	gkNamespace = GatekeeperNamespace
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
	// The setup, for contrast: a scope where Ratify has both our
	// verifier and the notation one, under its config policy.
	nsShared    = "e2e-shared"
	scopeShared = "scope-shared"
	// A scope whose verifier's level is permissive, for the load's Signer
	// throttling (verdicts per level).
	nsPermissive    = "e2e-permissive"
	scopePermissive = "scope-permissive"
	// The provider path's namespaces (Gatekeeper → awssigner serve, no
	// Ratify): its cluster-wide Constraint and a restriction to Team.
	nsProvider     = "e2e-provider"
	nsProviderTeam = "e2e-provider-team"
	nsProviderWarn = "e2e-provider-warn" // only a warn-only restriction
	// No Constraint: the load's anchor.
	nsAnchor   = "e2e-no-policy"
	denyPrefix = `admission webhook "validation.gatekeeper.sh" denied the request`
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

// procs holds every process the test starts; TestMain and a signal
// handler stop them all.
var procs Procs

// binDir holds the awssigner binary for the whole run: harness.PluginBinary
// builds it once per process, into the directory of its first call, so
// every test asks with binDir.
var binDir string

// loadTable collects the load and fault runs, printed at the end.
var loadTable LoadTable

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
	dir, err := os.MkdirTemp("", "awssigner-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	procs.StopAll()
	os.RemoveAll(binDir)
	loadTable.Print(os.Stdout)
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

func TestAdmission(t *testing.T) {
	start := time.Now()
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := FindBins(filepath.Join(root, "bin"))
	if err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err := MetricsPortFree(); err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "awssigner-e2e-", procs.StopAll)
	testDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	step := func(name string) { t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), name) }
	warns := &warnings{}

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
	laterARN, _, err := stack.Emulator.CreateProfile("Later", 12)
	if err != nil {
		t.Fatal(err)
	}
	im := images{ref: map[string]string{}, digest: map[string]string{}, job: map[string]string{}}
	jobs := im.job
	imageIn := func(repo, tag, profile string) string {
		ref, desc, err := stack.PushImage(ctx, repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		if profile != "" {
			_, job, err := stack.Sign(ctx, repo, desc, profile)
			if err != nil {
				t.Fatal(err)
			}
			jobs[tag] = job
		}
		im.ref[tag], im.digest[tag] = ref, desc.Digest.String()
		return ref
	}
	image := func(tag, profile string) string { return imageIn("team/app", tag, profile) }
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

	// The provider path's own images, and the load's: 20 signed, 5
	// unsigned, 5 untrusted (both paths), 5 in perm/app (level permissive
	// on both paths) and 5 signed ones through a front that can stop like
	// a registry. Each load image has a repository of its own: the test
	// registry reads every manifest of a repository to list referrers
	// (team/app holds about 300), a cost no real registry has.
	image("p-revocable", stack.ProfileARN)
	image("later", laterARN)
	front, err := StartFront(stack.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(front.Stop)
	var load struct{ signed, unsigned, untrusted, front, perm []LoadImage }
	for i := 0; i < 20; i++ {
		tag := fmt.Sprintf("load-signed-%02d", i)
		load.signed = append(load.signed, LoadImage{Ref: imageIn("load/"+tag, tag, stack.ProfileARN), Class: "signed", Expect: Expect{Admit: true}})
		if i < 5 {
			ref := strings.Replace(im.ref[tag], stack.Registry.Host, front.Addr, 1)
			load.front = append(load.front, LoadImage{Ref: ref, Class: "signed, through the registry front", Expect: Expect{Admit: true}})
			u := imageIn(fmt.Sprintf("load/unsigned-%d", i), fmt.Sprintf("load-unsigned-%d", i), "")
			load.unsigned = append(load.unsigned, LoadImage{Ref: u, Class: "unsigned", Expect: Expect{Want: []string{denyPrefix, notAllowed(u), "it has no signature"}}})
			x := imageIn(fmt.Sprintf("load/untrusted-%d", i), fmt.Sprintf("load-untrusted-%d", i), strangerARN)
			load.untrusted = append(load.untrusted, LoadImage{Ref: x, Class: "untrusted", Expect: Expect{Want: []string{denyPrefix, notAllowed(x), strangerARN}}})
			load.perm = append(load.perm, LoadImage{Ref: imageIn("perm/app", fmt.Sprintf("load-perm-%d", i), stack.ProfileARN), Class: "signed, permissive", Expect: Expect{Admit: true}})
		}
	}

	step("build the awssigner plugin")
	awssigner, err := harness.PluginBinary(binDir)
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := filepath.Dir(awssigner) // Ratify's Verifier address

	cluster, err := StartCluster(ctx, &procs, ClusterOptions{Root: root, Dir: dir, Bins: b, WarningHandler: warns, Step: step,
		Namespaces: []string{nsAll, nsTeam, nsWarn, nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, scopeEmpty, scopeAWS, scopeConfig, nsShared, scopeShared,
			nsPermissive, scopePermissive, nsProvider, nsProviderTeam, nsProviderWarn, nsAnchor}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kube, cp, gk, ratifyDir := cluster.Kube, cluster.CP, cluster.Gatekeeper, cluster.RatifyDir

	rat, err := cluster.StartRatify(ctx, stack)
	if err != nil {
		t.Fatal(err)
	}
	ratify, ratifyURL := rat.Proc, rat.URL

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
	if err := kube.WaitField(ctx, GVRVerifier, "", notationVerifier, true, 30*time.Second, "status", "issuccess"); err != nil {
		t.Fatalf("%v (see %s)", err, ratify.Log)
	}

	// Our chart: one real `helm install --wait` (Helm's install action with
	// the kubeconfig), the hook Job run by the stand-in runner.
	chartDir := filepath.Join(root, "charts", "ratify-aws-signer")
	vals := Merge(RatifyChartValues(stack, dir, pluginDir, stack.ProfileARN, otherARN), map[string]any{
		"policies": map[string]any{"constraints": map[string]any{
			// The provider path's namespaces have their own Constraints.
			"excludedNamespaces": []any{"kube-system", gkNamespace, nsWarn, nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, nsShared, nsPermissive, nsProvider, nsProviderTeam, nsProviderWarn, nsAnchor},
			"namespaceRestrictions": []any{
				map[string]any{"namespaces": []any{nsTeam}, "allowedSigningProfiles": []any{stack.ProfileARN}},
				map[string]any{"namespaces": []any{nsWarn}, "allowedSigningProfiles": []any{stack.ProfileARN}, "enforcementAction": "warn"},
			},
		}},
	})
	hookJobs := cluster.Jobs

	step("coexistence guard: a cluster-wide awssigner Verifier next to " + notationVerifier + " is refused")
	_, err = HelmInstall(ctx, cp, chartDir, "ratify-aws-signer-cluster", gkNamespace, Merge(vals, map[string]any{
		"verifier": map[string]any{"kind": "Verifier", "address": pluginDir},
		"policies": map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "Verifier "+notationVerifier+" (spec.name notation) already claims Notation signatures") {
		t.Fatalf("helm install with verifier.kind=Verifier next to %s: got %v, want the coexistence refusal", notationVerifier, err)
	}
	t.Logf("  refused: %.200s…", err)

	t0 := time.Now()
	constraints := []string{"aws-signer-verified-images", "aws-signer-verified-images-" + nsTeam, "aws-signer-verified-images-" + nsWarn}
	rel, err := cluster.InstallRatifyChart(ctx, "ratify-aws-signer", vals, constraints...)
	if err != nil {
		t.Fatal(err)
	}
	installTime := time.Since(t0)
	runs := hookJobs.Runs()
	if len(runs) != 1 || !runs[0].OK {
		t.Fatalf("hook Jobs run: %+v, want one successful run", runs)
	}
	t.Logf("  release %s: %s in %v (Constraints enforced); hook Job %s: %v\n%s", rel.Name, rel.Info.Status, installTime.Round(time.Millisecond), runs[0].Name, runs[0].Duration.Round(time.Millisecond), runs[0].Output)
	if err := kube.WaitField(ctx, GVRProvider, "", "ratify-provider", true, 30*time.Second, "status", "byPod", "0", "active"); err != nil {
		t.Logf("provider status not reported active (continuing): %v", err)
	}

	// Other scopes, and one test Constraint per cause namespace.
	step("scopes for the causes: no verifier, AWS unreachable, invalid parameters")
	closed, _ := harness.FreePort() // nothing listens there
	scoped, err := RenderChart(chartDir, scopeAWS, "ratify-aws-signer-"+scopeAWS, Merge(vals, map[string]any{
		"aws":        map[string]any{"endpoint": fmt.Sprintf("http://127.0.0.1:%d", closed), "region": stack.Emulator.Region()},
		"revocation": map[string]any{"cacheTTL": "0s", "timeout": "1s", "cacheDir": filepath.Join(dir, "revocation-cache-aws-down")},
		"policies":   map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), "config.ratify.deislabs.io/v1beta1/NamespacedVerifier")
	if err != nil {
		t.Fatal(err)
	}
	permissive, err := RenderChart(chartDir, scopePermissive, "ratify-aws-signer-"+scopePermissive, Merge(vals, map[string]any{
		"verificationLevel": "permissive",
		"revocation":        map[string]any{"cacheTTL": "1s", "cacheDir": filepath.Join(dir, "revocation-cache-permissive")},
		"policies":          map[string]any{"templates": map[string]any{"enabled": false}, "constraints": map[string]any{"enabled": false}},
	}), "config.ratify.deislabs.io/v1beta1/NamespacedVerifier")
	if err != nil {
		t.Fatal(err)
	}
	scoped = append(scoped, permissive...)
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
	shared, err := RenderChart(chartDir, scopeShared, "ratify-aws-signer-"+scopeShared, Merge(vals, map[string]any{
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
	for _, c := range []struct{ ns, scope string }{{nsUnscoped, ""}, {nsNoVerif, scopeEmpty}, {nsAWSDown, scopeAWS}, {nsBadConfig, scopeConfig}, {nsShared, scopeShared}, {nsPermissive, scopePermissive}} {
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
	for _, sv := range []struct{ ns, name string }{{scopeAWS, "verifier-awssigner"}, {scopeConfig, "verifier-awssigner"}, {scopeShared, "verifier-awssigner"}, {scopeShared, notationVerifier}, {scopePermissive, "verifier-awssigner"}} {
		// Ratify accepts the invalid parameters too: the plugin only reads
		// them when it runs (the chart's schema is what refuses them early).
		if err := kube.WaitField(ctx, GVRNSVerifier, sv.ns, sv.name, true, 30*time.Second, "status", "issuccess"); err != nil {
			t.Fatalf("%v (see %s)", err, ratify.Log)
		}
	}
	for _, c := range []string{nsUnscoped, nsNoVerif, nsAWSDown, nsBadConfig, nsShared, nsPermissive} {
		if err := kube.WaitField(ctx, GVRConstraint, "", c, true, 60*time.Second, "status", "byPod", "0", "enforced"); err != nil {
			t.Fatalf("%v (see %s)", err, gk.Log)
		}
	}
	step(fmt.Sprintf("Ratify path ready: Constraints %v enforced, one helm install (%v)", constraints, installTime.Round(time.Millisecond)))

	// The provider path, side by side: its namespaces have their own
	// Constraints (naming the provider awssigner-verify) and Assigns.
	// Trust policies: strict, and permissive for perm/app (the load's
	// throttling case, verdicts per level).
	pe := &providerEnv{ctx: ctx, stack: stack, cluster: cluster, im: im, teamARN: stack.ProfileARN, otherARN: otherARN, strangerARN: strangerARN, later: laterARN,
		doc:        func(ids ...string) map[string]any { return TrustPolicyDoc(ids, stack.Registry.Host+"/perm/app") },
		behindAuth: behindAuth, warns: warns}
	pe.vals = Merge(ProviderValues(stack, pe.doc(stack.ProfileARN, otherARN)), map[string]any{
		"policies": map[string]any{"constraints": map[string]any{"namespaceRestrictions": []any{
			map[string]any{"namespaces": []any{nsProviderTeam}, "allowedSigningProfiles": []any{stack.ProfileARN}},
			map[string]any{"namespaces": []any{nsProviderWarn}, "allowedSigningProfiles": []any{stack.ProfileARN}, "enforcementAction": "warn"},
		}}},
	})
	if pe.path, err = cluster.StartProviderPath(ctx, ProviderPathOptions{Binary: awssigner, Values: pe.vals, Namespaces: []string{nsProvider, nsProviderTeam}}); err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("provider path ready: Constraints %v enforced", pe.path.Constraints))
	warns.take()

	// Assertions: kubectl-equivalent creates through the API server.
	cr := &creator{ctx: ctx, kube: kube, logf: t.Logf}
	pe.cr = cr
	pod, admitted, denied := cr.pod, cr.admitted, cr.denied

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
			o, err := kube.Get(ctx, GVRConstraint, "", c)
			if err != nil {
				t.Fatal(err)
			}
			uids[c] = string(o.GetUID())
		}
		before := len(hookJobs.Runs())
		up := Merge(vals, map[string]any{"policies": map[string]any{"constraints": map[string]any{
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
		if _, err := kube.Get(ctx, GVRConstraint, "", "aws-signer-verified-images-"+nsWarn); err == nil {
			t.Errorf("the dropped restriction's Constraint is still there")
		}
		for _, c := range constraints[:2] {
			o, err := kube.Get(ctx, GVRConstraint, "", c)
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
		requiresClientCert(t, cluster, ratifyURL, signed)
	})

	providerCases(t, pe)

	step("load and faults")
	loadClient, err := LoadClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	pinned := func(imgs []LoadImage) []LoadImage {
		out := append([]LoadImage(nil), imgs...)
		for i, img := range out {
			if img.Admit {
				ref := img.Ref
				at := strings.LastIndex(ref, ":")
				tag := ref[strings.LastIndex(ref, ":")+1:]
				out[i].Pinned = ref[:at] + "@" + im.digest[tag]
			}
		}
		return out
	}
	t.Run("anchor: the same creates where no Constraint or Assign applies", func(t *testing.T) {
		var any []LoadImage
		for _, img := range append(append(append([]LoadImage(nil), load.signed...), load.unsigned...), load.untrusted...) {
			any = append(any, LoadImage{Ref: img.Ref, Class: "any", Expect: Expect{Admit: true}})
		}
		// A warm-up first (connections, the API server's and Gatekeeper's
		// first requests), not recorded.
		RunLoad(ctx, loadClient, LoadSpec{Path: "warm-up", Phase: "warm-up", Namespace: nsAnchor, Images: any, Creates: 40, Concurrency: 20})
		r := RunLoad(ctx, loadClient, LoadSpec{Path: "no policy", Phase: "steady (anchor)", Namespace: nsAnchor, Images: any, Creates: 200, Concurrency: 20})
		r.Note = "the API server, etcd and both Gatekeeper webhooks with nothing to enforce: the machine's floor for the rows above and below"
		loadTable.Add(r)
		if r.Wrong != 0 {
			t.Errorf("anchor: %d creates failed: %q", r.Wrong, r.Failures)
		}
	})
	loadCases(t, ctx, loadClient, loadEnv{path: "Ratify", ns: nsAll, permNS: nsPermissive, checksPerCreate: 1, cacheWait: 1100 * time.Millisecond,
		registryDown: []string{"Ratify could not read the image from the registry"},
		signed:       load.signed, unsigned: load.unsigned, untrusted: load.untrusted, front: load.front, perm: load.perm}, stack.Emulator, front)
	serveTime := func() (float64, float64) {
		sum, _ := pe.path.Serve.Metric("awssigner_provider_request_duration_seconds_sum")
		n, _ := pe.path.Serve.Metric("awssigner_provider_request_duration_seconds_count")
		return sum, n
	}
	loadCases(t, ctx, loadClient, loadEnv{path: "provider", ns: nsProvider, permNS: nsProvider, checksPerCreate: 2, providerTime: serveTime,
		registryDown: []string{"dial tcp " + front.Addr, "check that the registry is reachable"},
		signed:       pinned(load.signed), unsigned: load.unsigned, untrusted: load.untrusted, front: pinned(load.front), perm: pinned(load.perm)}, stack.Emulator, front)

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

// requiresClientCert checks that the provider at url answers a
// ProviderRequest for image with Gatekeeper's client certificate and
// refuses the TLS handshake without one.
func requiresClientCert(t *testing.T, c *Cluster, url, image string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.PEM)
	pair, err := tls.LoadX509KeyPair(filepath.Join(c.GatekeeperCerts, "tls.crt"), filepath.Join(c.GatekeeperCerts, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":["` + image + `"]}}`
	post := func(certs []tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
		resp, err := c.Post(url, "application/json", strings.NewReader(body))
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
}

// runDir makes the run's directory (process logs in logs/). At the end
// stop runs, then the directory is removed, or kept and named when the
// test failed or E2E_KEEP=1.
func runDir(t *testing.T, prefix string, stop func()) string {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() || os.Getenv("E2E_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "e2e: logs of every process in %s (kubeconfig: %s)\n", logDir, filepath.Join(dir, "kubeconfig"))
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func result(err error) string {
	if err == nil {
		return "admitted"
	}
	return "denied: " + err.Error()
}

// ratifyChartNotation returns what Ratify's chart installs for its notation
// verifier (as pre-install hooks) when given a notation certificate, as in
// Ratify's AWS Signer guide (--set-file notationCerts={root.cert}): the
// Verifier verifier-notation and the KeyManagementProvider holding the
// certificate. (RATIFY_CERT_ROTATION only lets the chart render without TLS
// files; it changes neither object.)
func ratifyChartNotation(chartDir, certPEM string) ([]*unstructured.Unstructured, error) {
	rel, err := DryRunInstall(chartDir, gkNamespace, "ratify", map[string]any{
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

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
