package chart

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/server"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
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
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	signed, desc, err := stack.PushImage(ctx, "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stack.Sign(ctx, "team/app", desc, ""); err != nil {
		t.Fatal(err)
	}
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

	// The kubelet's part: the Deployment's volumes written where it mounts
	// them (under dir), and the configuration's paths pointed there.
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
	cfgFile := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	srv, err := server.New(server.Options{ConfigFile: cfgFile, Version: "0.1.0-test", AWS: &stack.AWS, ReloadInterval: time.Hour,
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		Address: fmt.Sprintf("127.0.0.1:%d", port), HealthAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("serve refuses the chart's configuration and files: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	})

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

// syncBuffer is the server's log, written from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
