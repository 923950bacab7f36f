package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/mutation"
	mutationtypes "github.com/open-policy-agent/gatekeeper/v3/pkg/mutation/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/yaml"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/server"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
)

// TestProviderServesGatekeeper runs what the chart renders: awssigner serve
// (in-process) with the rendered configuration and the files the
// Deployment mounts (the chart's generated certificate, Gatekeeper's CA),
// called by Gatekeeper's own mutation system through the rendered Providers
// and Assigns, over mTLS, against a real registry and the AWS Signer
// emulator. A signed image given by tag is pinned to its digest in every
// container list of a Pod, a Deployment and a CronJob; an unsigned one is
// left as written (the Constraint then denies it); the release namespace is
// not mutated; the verify Provider answers the signed image verified and
// refuses a client without Gatekeeper's certificate.
func TestProviderServesGatekeeper(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stack, signed, desc := signedStack(ctx, t, dir)
	pinned := stack.Registry.Host + "/team/app@" + desc.Digest.String()
	unsigned, _, err := stack.PushImage(ctx, "team/unsigned", "v1")
	if err != nil {
		t.Fatal(err)
	}

	gk := gatekeeperPKI(t)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	vals := providerValues(t, gk.CAPEM, fmt.Sprintf(`
provider:
  url: https://127.0.0.1:%d
  tls: {mode: generated}
  registry: {plainHTTP: true}
revocation: {cacheTTL: 0s}
aws: {endpoint: %q}`, port, stack.Emulator.URL()))
	vals["trustedSigningProfiles"] = []any{stack.ProfileARN}
	vals["trustStores"] = map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []any{string(stack.Emulator.CA().RootPEM())}}}
	_, objs := mustInstall(t, vals)

	runRendered(t, objs, stack, dir, server.Options{Address: fmt.Sprintf("127.0.0.1:%d", port)}, nil)

	// Gatekeeper: the rendered Providers in its cache, the rendered Assigns
	// in its mutation system, its webhook certificate as client certificate.
	cache := externaldata.NewCache()
	for _, r := range ofKind(objs, "Provider") {
		p, err := toProvider(r.obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.Upsert(p); err != nil {
			t.Fatalf("Gatekeeper refuses Provider %s: %v", p.Name, err)
		}
	}
	watcher, err := certwatcher.New(gk.ClientCert, gk.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	sys := mutation.NewSystem(mutation.SystemOpts{ProviderCache: cache, ClientCertWatcher: watcher})
	for _, r := range ofKind(objs, "Assign") {
		m, err := assignMutator(r.obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := sys.Upsert(m); err != nil {
			t.Fatalf("Assign %s: %v", r.obj.GetName(), err)
		}
	}

	podSpec := fmt.Sprintf(`
initContainers: [{name: init, image: %[1]s}]
containers: [{name: app, image: %[1]s}, {name: other, image: %[2]s}]
ephemeralContainers: [{name: debug, image: %[1]s}]`, signed, unsigned)
	templateSpec := fmt.Sprintf(`
initContainers: [{name: init, image: %[1]s}]
containers: [{name: app, image: %[1]s}, {name: other, image: %[2]s}]`, signed, unsigned)
	indent := func(s string, n int) string {
		return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
	}
	cases := []struct {
		name, namespace, obj string
		listsAt              []string
		pin                  bool
	}{
		{"Pod", "default", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:" + indent(podSpec, 2), []string{"spec"}, true},
		{"Deployment", "default", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:" + indent(templateSpec, 6), []string{"spec", "template", "spec"}, true},
		{"CronJob", "default", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:" + indent(templateSpec, 10), []string{"spec", "jobTemplate", "spec", "template", "spec"}, true},
		{"Pod in the release namespace", releaseNamespace, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:" + indent(podSpec, 2), []string{"spec"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(c.obj), &obj); err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: obj}
			u.SetNamespace(c.namespace)
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.namespace}}
			if _, err := sys.Mutate(ctx, &mutationtypes.Mutable{Object: u, Namespace: ns, Username: "alice", Source: mutationtypes.SourceTypeOriginal}); err != nil {
				t.Fatalf("mutation: %v", err)
			}
			want := signed
			if c.pin {
				want = pinned
			}
			for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
				ctrs, found, _ := unstructured.NestedSlice(u.Object, append(append([]string{}, c.listsAt...), list)...)
				if !found {
					continue
				}
				for _, ct := range ctrs {
					m := ct.(map[string]any)
					w := want
					if m["name"] == "other" {
						w = unsigned // not verified: left as written
					}
					if m["image"] != w {
						t.Errorf("%s %s image %v, want %s", list, m["name"], m["image"], w)
					}
				}
			}
		})
	}

	// The verify Provider, as Gatekeeper's validation calls it.
	verify, err := cache.Get("awssigner-verify")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := watcher.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, status, err := externaldata.DefaultSendRequestToProvider(ctx, &verify, []string{signed, unsigned}, cert)
	if err != nil || status != 200 || resp.Response.SystemError != "" {
		t.Fatalf("verify: status %d, %v, %+v", status, err, resp)
	}
	got := map[string]any{}
	for _, it := range resp.Response.Items {
		got[it.Key] = it.Value
	}
	if v, ok := got[signed].(map[string]any); !ok || v["succeeded"] != true {
		t.Errorf("verify %s: %v", signed, got[signed])
	}
	if v, ok := got[unsigned].(map[string]any); ok && v["succeeded"] == true {
		t.Errorf("verify %s (unsigned) succeeded: %v", unsigned, v)
	}
	// Only Gatekeeper's certificate is served.
	other := gatekeeperPKI(t)
	stranger, err := certwatcher.New(other.ClientCert, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := stranger.GetCertificate(nil)
	verify.Name = "awssigner-verify-stranger" // its own client in Gatekeeper's client cache
	if _, _, err := externaldata.DefaultSendRequestToProvider(ctx, &verify, []string{signed}, sc); err == nil {
		t.Error("a client certificate not issued by Gatekeeper's CA was served")
	}
}

// TestProviderServesKyverno: the Kyverno-only release (no Gatekeeper) run
// as rendered: serve with the chart's configuration and certificate, asked
// as Kyverno's apiCall asks it through the rendered ClusterPolicy's service
// URL and CA, with a token of Kyverno's admission controller (checked by a
// TokenReview API standing in for the cluster's). A signed image by tag is
// verified and its pin returned; a namespace's named trust policy
// (provider.kyverno.trustPolicyDocs) that does not trust the signer refuses
// it; a caller without a token is refused.
func TestProviderServesKyverno(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stack, signed, desc := signedStack(ctx, t, dir)
	reviewer, err := serve.NewTokenReviewer(filepath.Join(dir, "tokenreview"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reviewer.Close)

	vals := providerValues(t, nil, fmt.Sprintf(`
provider:
  gatekeeper: {enabled: false}
  kyverno:
    enabled: true
    trustPolicyDocs:
      other:
        version: "1.0"
        trustPolicies:
          - {name: other, registryScopes: ["*"], signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: [%q]}
  registry: {plainHTTP: true}
revocation: {cacheTTL: 0s}
aws: {endpoint: %q}`, "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other", stack.Emulator.URL()))
	vals["trustedSigningProfiles"] = []any{stack.ProfileARN}
	vals["trustStores"] = map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []any{string(stack.Emulator.CA().RootPEM())}}}
	_, objs := mustInstall(t, vals)
	kaddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	runRendered(t, objs, stack, dir, server.Options{KyvernoAddress: kaddr}, func(doc map[string]any) {
		// What the pod's environment and token mount give serve in a cluster.
		k := doc["server"].(map[string]any)["kyverno"].(map[string]any)
		k["tokenReview"] = map[string]any{"apiServer": reviewer.URL, "caFile": reviewer.CAFile, "tokenFile": reviewer.TokenFile}
	})

	// Kyverno's apiCall as the rendered policy configures it.
	rules, _, _ := unstructured.NestedSlice(one(t, objs, "ClusterPolicy", "awssigner-verified-images").Object, "spec", "rules")
	var svcURL, caBundle string
	for _, e := range rules[0].(map[string]any)["context"].([]any) {
		if svc, found, _ := unstructured.NestedStringMap(e.(map[string]any), "apiCall", "service"); found {
			svcURL, caBundle = svc["url"], svc["caBundle"]
		}
	}
	u, err := url.Parse(svcURL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caBundle)) {
		t.Fatalf("the policy's caBundle is not PEM: %q", caBundle)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, kaddr) // the Service, as cluster DNS would resolve it
		},
	}}
	t.Cleanup(client.CloseIdleConnections)
	cfg := decodeInCluster(t, objs)
	token := reviewer.Issue(cfg.Server.Kyverno.AllowedCallers[0], cfg.Server.Kyverno.Audiences...)

	repo, tag, _ := strings.Cut(strings.TrimPrefix(signed, stack.Registry.Host+"/"), ":")
	image := map[string]any{"registry": stack.Registry.Host, "path": repo, "name": path.Base(repo), "tag": tag, "digest": "",
		"reference": signed, "referenceWithTag": signed, "jsonPointer": "/spec/containers/0/image"}
	call := func(trustPolicy, bearer string) (int, map[string]any, string) {
		body, _ := json.Marshal(map[string]any{"images": map[string]any{"containers": map[string]any{"app": image}}, "imageReferences": []string{"*"}, "trustPolicy": trustPolicy})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, svcURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s as Kyverno: %v", svcURL, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		return resp.StatusCode, out, string(raw)
	}

	status, out, raw := call("", token)
	want := []any{map[string]any{"op": "replace", "path": "/spec/containers/0/image", "value": stack.Registry.Host + "/team/app@" + desc.Digest.String()}}
	if status != http.StatusOK || out["verified"] != true || !reflect.DeepEqual(out["results"], want) {
		t.Errorf("signed image: %d %s", status, raw)
	}
	if status, _, raw := call("other", token); status != http.StatusNotAcceptable || !strings.Contains(raw, signed) {
		t.Errorf("trust policy other (another profile): %d %s", status, raw)
	}
	if status, _, raw := call("", ""); status != http.StatusUnauthorized {
		t.Errorf("no token: %d %s", status, raw)
	}
}

// runRendered plays the kubelet for the rendered Deployment: its volumes
// are written under dir where it mounts them, the configuration's paths
// pointed there (and changed by edit, for what a cluster would provide),
// and awssigner serve started in-process with it, its listeners at the
// addresses of opts.
func runRendered(t *testing.T, objs []rendered, stack *harness.Stack, dir string, opts server.Options, edit func(doc map[string]any)) *server.Server {
	t.Helper()
	dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))
	files := mountedFiles(t, dep, objs)
	root := filepath.Join(dir, "pod")
	for p, b := range files {
		if err := os.MkdirAll(filepath.Dir(root+p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := string(files["/etc/awssigner/config/config.yaml"])
	var pairs []string
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		pairs = append(pairs, m.MountPath+"/", root+m.MountPath+"/")
	}
	cfg = strings.NewReplacer(pairs...).Replace(cfg)
	if edit != nil {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
			t.Fatal(err)
		}
		edit(doc)
		b, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		cfg = string(b)
	}
	cfgFile := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &harness.SyncBuffer{}
	opts.ConfigFile, opts.Version, opts.AWS, opts.ReloadInterval = cfgFile, "0.1.0-test", &stack.AWS, time.Hour
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if opts.HealthAddress == "" {
		opts.HealthAddress = "127.0.0.1:0"
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatalf("serve refuses the chart's configuration and files: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	})
	return srv
}

// signedStack starts a registry and the Signer emulator under dir and
// pushes team/app:v1 signed by the stack's profile: its reference and
// descriptor.
func signedStack(ctx context.Context, t *testing.T, dir string) (*harness.Stack, string, ocispec.Descriptor) {
	t.Helper()
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	signed, desc, err := stack.PushImage(ctx, "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stack.Sign(ctx, "team/app", desc, ""); err != nil {
		t.Fatal(err)
	}
	return stack, signed, desc
}
