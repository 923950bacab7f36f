package kyverno

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	kyvernov1 "github.com/kyverno/kyverno/api/kyverno/v1"
	"github.com/kyverno/kyverno/pkg/autogen"
	engineapi "github.com/kyverno/kyverno/pkg/engine/api"
	gctxvalidation "github.com/kyverno/kyverno/pkg/validation/globalcontext"
	policyvalidation "github.com/kyverno/kyverno/pkg/validation/policy"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Namespaces of the tests: their trust-policy labels.
const (
	nsDefault = "team-a"      // no label: serve's trustPolicyDoc (profile Team)
	nsOther   = "team-b"      // label team-b: trustPolicyDocs.team-b (profile Other)
	nsUnknown = "team-c"      // label naming no trust policy
	nsSystem  = "kube-system" // excluded by the policy
)

// TestPolicyIsValid: Kyverno's own validation (what its webhooks run when
// the ClusterPolicy and the GlobalContextEntry are created) accepts both, no rule is
// generated for pod controllers (they are matched explicitly), and the two
// rules select and call exactly alike.
func TestPolicyIsValid(t *testing.T) {
	p := env.policy.Cluster.DeepCopy()
	warnings, err := policyvalidation.Validate(p, nil, nil, true,
		"system:serviceaccount:kyverno:kyverno-background-controller", "system:serviceaccount:kyverno:kyverno-reports-controller")
	if err != nil {
		t.Fatalf("Kyverno refuses the policy: %v", err)
	}
	for _, w := range warnings {
		t.Logf("Kyverno's warning: %s", w)
	}
	for _, e := range env.policy.Entries {
		gce, err := V2beta1(e)
		if err != nil {
			t.Fatal(err)
		}
		warnings, err := gctxvalidation.Validate(context.Background(), logr.Discard(), gce)
		if err != nil {
			t.Errorf("Kyverno refuses GlobalContextEntry %s: %v", e.Name, err)
		}
		for _, w := range warnings {
			t.Logf("Kyverno's warning on %s: %s", e.Name, w)
		}
	}
	rules := autogen.Default.ComputeRules(p, "")
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
	}
	if want := []string{"pin-images", "verify-images"}; !reflect.DeepEqual(names, want) {
		t.Errorf("rules after autogen %v, want %v", names, want)
	}
	if len(p.Spec.Rules) != 2 {
		t.Fatalf("%d rules", len(p.Spec.Rules))
	}
	a, b := p.Spec.Rules[0], p.Spec.Rules[1]
	if !reflect.DeepEqual(a.MatchResources, b.MatchResources) || !reflect.DeepEqual(a.ExcludeResources, b.ExcludeResources) || !reflect.DeepEqual(a.Context, b.Context) {
		t.Errorf("rules %s and %s must have the same match, exclude and context (edit both)", a.Name, b.Name)
	}
	if got := *p.Spec.FailurePolicy; got != "Fail" {
		t.Errorf("failurePolicy %s", got)
	}
}

// TestSignedPinned: a signed image given by tag is admitted and stored
// pinned to the digest serve verified, in Pods and in the pod templates of
// every controller kind, init containers included; an image already given
// by digest is left as written.
func TestSignedPinned(t *testing.T) {
	host := env.stack.Registry.Host
	signed, digest := host+"/team/app:signed", env.digests["signed"]
	pinned := host + "/team/app@" + digest
	for _, kind := range []string{"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"} {
		t.Run(kind, func(t *testing.T) {
			obj := workload(kind, "signed", nsDefault, map[string]string{"app": signed, "byDigest": pinned}, map[string]string{"init": signed})
			v := review(t, obj)
			if !v.Allowed {
				t.Fatalf("denied in the %s: %s", v.Stage, v.Message)
			}
			got := Images(v.Object)
			want := []string{"initContainers/init=" + pinned, "containers/app=" + pinned, "containers/byDigest=" + pinned}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored images %v, want %v (patch %s)", got, want, v.Patch)
			}
			if st, msg := Rule(v.Validate, "verify-images"); st != engineapi.RuleStatusPass {
				t.Errorf("verify-images: %s %s", st, msg)
			}
			record(kind+" signed (tag + digest + init)", v)
		})
	}
}

// TestDenied: unsigned, untrusted (another profile) and revoked images are
// denied in the mutating webhook with serve's reason, and so are Pods
// whose signed image sits next to a refused one.
func TestDenied(t *testing.T) {
	host := env.stack.Registry.Host
	cases := []struct {
		name, tag string
		kind      string
		want      []string
	}{
		{"unsigned", "unsigned", "Pod", []string{"no Notation signature found", "the image is not signed"}},
		{"untrusted", "other", "Pod", []string{env.otherARN}},
		{"revoked", "revoked", "Pod", []string{"revoked", "signing-jobs/"}},
		{"unsigned in a Deployment", "unsigned", "Deployment", []string{"no Notation signature found"}},
		{"revoked in a CronJob", "revoked", "CronJob", []string{"revoked"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			image := host + "/team/app:" + c.tag
			obj := workload(c.kind, "bad", nsDefault, map[string]string{"ok": host + "/team/app:signed", "app": image}, nil)
			v := review(t, obj)
			wantDenied(t, v, Mutating, append([]string{"HTTP 406 Not Acceptable", image + ": "}, c.want...))
			if strings.Contains(v.Message, host+"/team/app:signed:") {
				t.Errorf("the signed image is named as refused: %s", v.Message)
			}
			record(c.kind+" "+c.name, v)
		})
	}
}

// TestValidatingWebhookDenies: an object that reaches the validating
// webhook unverified (the mutating webhook skipped, or another webhook
// changed the image after it) is denied there too, and a verified one
// given by tag passes.
func TestValidatingWebhookDenies(t *testing.T) {
	host := env.stack.Registry.Host
	v, err := env.admission.ReviewValidating(context.Background(), admissionv1.Create,
		workload("Pod", "late", nsDefault, map[string]string{"app": host + "/team/app:unsigned"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, v, Validating, []string{"verify-images", "HTTP 406 Not Acceptable", host + "/team/app:unsigned: ", "no Notation signature found"})
	record("Pod unsigned, validating webhook only", v)
	v, err = env.admission.ReviewValidating(context.Background(), admissionv1.Create,
		workload("Pod", "late", nsDefault, map[string]string{"app": host + "/team/app:signed"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed {
		t.Fatalf("signed image denied in the validating webhook: %s", v.Message)
	}
}

// TestUpdate: an UPDATE is checked on its own: replacing a signed image by
// an unsigned one is denied even though the stored object was admitted,
// and an unverified stored object does not let an unverified update
// through.
func TestUpdate(t *testing.T) {
	host := env.stack.Registry.Host
	old := workload("Deployment", "web", nsDefault, map[string]string{"app": host + "/team/app@" + env.digests["signed"]}, nil)
	upd := workload("Deployment", "web", nsDefault, map[string]string{"app": host + "/team/app:unsigned"}, nil)
	v, err := env.admission.Review(context.Background(), admissionv1.Update, upd, old)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, v, Mutating, []string{"no Notation signature found"})
	record("Deployment UPDATE signed → unsigned", v)

	oldBad := workload("Deployment", "web", nsDefault, map[string]string{"app": host + "/team/app:unsigned"}, nil)
	updBad := workload("Deployment", "web", nsDefault, map[string]string{"app": host + "/team/app:revoked"}, nil)
	v, err = env.admission.ReviewValidating(context.Background(), admissionv1.Update, updBad, oldBad)
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, v, Validating, []string{"revoked"})

	v, err = env.admission.Review(context.Background(), admissionv1.Update,
		workload("Deployment", "web", nsDefault, map[string]string{"app": host + "/team/app:signed"}, nil), oldBad)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed {
		t.Fatalf("UPDATE to a signed image denied: %s", v.Message)
	}
	if got := Images(v.Object); !reflect.DeepEqual(got, []string{"containers/app=" + host + "/team/app@" + env.digests["signed"]}) {
		t.Errorf("UPDATE stored %v", got)
	}
}

// TestTrustPolicyPerNamespace: the namespace's label names serve's trust
// policy: in team-b only profile Other is trusted, so its image is
// admitted (and pinned) and Team's is refused; a label naming no trust
// policy denies, listing the configured ones.
func TestTrustPolicyPerNamespace(t *testing.T) {
	host := env.stack.Registry.Host
	v := review(t, workload("Pod", "p", nsOther, map[string]string{"app": host + "/team/app:other"}, nil))
	if !v.Allowed {
		t.Fatalf("profile Other's image denied in %s: %s", nsOther, v.Message)
	}
	if got := Images(v.Object); !reflect.DeepEqual(got, []string{"containers/app=" + host + "/team/app@" + env.digests["other"]}) {
		t.Errorf("stored %v", got)
	}
	record("Pod other-profile image, namespace labelled team-b", v)

	v = review(t, workload("Pod", "p", nsOther, map[string]string{"app": host + "/team/app:signed"}, nil))
	wantDenied(t, v, Mutating, []string{host + "/team/app:signed: ", env.stack.ProfileARN})
	record("Pod Team-profile image, namespace labelled team-b", v)

	v = review(t, workload("Pod", "p", nsUnknown, map[string]string{"app": host + "/team/app:signed"}, nil))
	wantDenied(t, v, Mutating, []string{`trust policy "nonexistent" is not configured`, "team-b"})
	record("Pod, namespace label naming no trust policy", v)

	// Relabelling a namespace changes its trust policy once Kyverno's
	// watch has seen it.
	nss := env.admission.Client.GetDynamicInterface().Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	relabel := func(value string) {
		t.Helper()
		ns, err := nss.Get(context.Background(), nsUnknown, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.SetLabels(map[string]string{trustLabel: value})
		if _, err := nss.Update(context.Background(), ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("team-b")
	defer relabel("nonexistent")
	pod := workload("Pod", "p", nsUnknown, map[string]string{"app": host + "/team/app:other"}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for v = review(t, pod); !v.Allowed && time.Now().Before(deadline); v = review(t, pod) {
		time.Sleep(20 * time.Millisecond)
	}
	if !v.Allowed {
		t.Fatalf("still denied 5 s after the namespace was relabelled team-b: %s", v.Message)
	}
}

// TestExemptions: system namespaces are not checked at all, and images
// matching skipImageReferences are not checked (nor pinned) while the
// others of the same Pod are.
func TestExemptions(t *testing.T) {
	host := env.stack.Registry.Host
	v := review(t, workload("Pod", "sys", nsSystem, map[string]string{"app": host + "/team/app:unsigned"}, nil))
	if !v.Allowed {
		t.Fatalf("denied in %s: %s", nsSystem, v.Message)
	}
	if len(v.Patch) != 0 {
		t.Errorf("patched in %s: %s", nsSystem, v.Patch)
	}
	record("Pod unsigned in kube-system (excluded)", v)

	p := env.policy.Cluster.DeepCopy()
	for i := range p.Spec.Rules {
		for j := range p.Spec.Rules[i].Context {
			if c := p.Spec.Rules[i].Context[j].APICall; c != nil && c.Service != nil {
				c.Data = slices.DeleteFunc(c.Data, func(d kyvernov1.RequestData) bool { return d.Key == "skipImageReferences" })
				c.Data = append(c.Data, kyvernov1.RequestData{Key: "skipImageReferences", Value: mustRaw(t, []string{host + "/platform/*"})})
			}
		}
	}
	adm := *env.admission
	adm.Policy = p
	v, err := adm.Review(context.Background(), admissionv1.Create,
		workload("Pod", "exempt", nsDefault, map[string]string{"app": host + "/team/app:signed", "sidecar": host + "/platform/sidecar:v1"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed {
		t.Fatalf("denied with the sidecar exempt: %s", v.Message)
	}
	got := Images(v.Object)
	sort.Strings(got)
	if want := []string{"containers/app=" + host + "/team/app@" + env.digests["signed"], "containers/sidecar=" + host + "/platform/sidecar:v1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	record("Pod signed + exempt unsigned sidecar", v)
}

// TestAWSDown: when AWS Signer cannot answer, serve cannot check the
// revocation status and the Pod is denied, saying so.
func TestAWSDown(t *testing.T) {
	host := env.stack.Registry.Host
	env.stack.Emulator.SetFault(opRevocation, faultDown)
	defer env.stack.Emulator.ClearFaults()
	v := review(t, workload("Pod", "p", nsDefault, map[string]string{"app": host + "/team/app:signed"}, nil))
	wantDenied(t, v, Mutating, []string{host + "/team/app:signed: ", "revocation"})
	record("Pod signed, AWS Signer answering 500", v)
}

// TestCallerAuth: serve answers only Kyverno's admission controller: the
// same Pod is denied when Kyverno sends no token (no file at
// KYVERNO_SCOPED_TOKEN_PATH) and when the token is another service
// account's, and admitted again with Kyverno's.
func TestCallerAuth(t *testing.T) {
	host := env.stack.Registry.Host
	defer func() {
		if err := useToken(env.serve.KyvernoToken); err != nil {
			t.Fatal(err)
		}
	}()
	pod := workload("Pod", "p", nsDefault, map[string]string{"app": host + "/team/app:signed"}, nil)
	cases := []struct {
		name, token string
		want        []string
	}{
		{"no token", "", []string{"HTTP 401 Unauthorized"}},
		{"another service account", env.serve.Reviewer.Issue("system:serviceaccount:team-a:intruder", "awssigner"), []string{"HTTP 403 Forbidden", "system:serviceaccount:team-a:intruder"}},
		{"Kyverno's token for another audience", env.serve.Reviewer.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "other-service.example"), []string{"HTTP 401 Unauthorized"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := useToken(c.token); err != nil {
				t.Fatal(err)
			}
			v := review(t, pod)
			wantDenied(t, v, Mutating, c.want)
			record("Pod signed, "+c.name, v)
		})
	}
	if err := useToken(env.serve.KyvernoToken); err != nil {
		t.Fatal(err)
	}
	if v := review(t, pod); !v.Allowed {
		t.Fatalf("denied with Kyverno's token: %s", v.Message)
	}
}

// review submits obj as a CREATE.
func review(t *testing.T, obj *unstructured.Unstructured) Verdict {
	t.Helper()
	v, err := env.admission.Review(context.Background(), admissionv1.Create, obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantDenied(t *testing.T, v Verdict, stage Stage, want []string) {
	t.Helper()
	if v.Allowed {
		t.Fatalf("admitted (stored %v), want denied in the %s", Images(v.Object), stage)
	}
	if v.Stage != stage {
		t.Errorf("denied in the %s, want the %s: %s", v.Stage, stage, v.Message)
	}
	for _, w := range want {
		if !strings.Contains(v.Message, w) {
			t.Errorf("denial lacks %q: %s", w, v.Message)
		}
	}
}

// workload is an object of kind with the given containers (name → image)
// and init containers, in namespace ns.
func workload(kind, name, ns string, containers, init map[string]string) *unstructured.Unstructured {
	list := func(m map[string]string) []any {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []any
		for _, k := range keys {
			out = append(out, map[string]any{"name": k, "image": m[k]})
		}
		return out
	}
	pod := map[string]any{"containers": list(containers)}
	if len(init) > 0 {
		pod["initContainers"] = list(init)
	}
	labels := map[string]any{"app": name}
	template := map[string]any{"metadata": map[string]any{"labels": labels}, "spec": pod}
	var spec map[string]any
	apiVersion := "v1"
	switch kind {
	case "Pod":
		spec = pod
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
		apiVersion = "apps/v1"
		spec = map[string]any{"selector": map[string]any{"matchLabels": labels}, "template": template}
	case "ReplicationController":
		spec = map[string]any{"selector": labels, "template": template}
	case "Job":
		apiVersion = "batch/v1"
		pod["restartPolicy"] = "Never"
		spec = map[string]any{"template": template}
	case "CronJob":
		apiVersion = "batch/v1"
		pod["restartPolicy"] = "Never"
		spec = map[string]any{"schedule": "0 * * * *", "jobTemplate": map[string]any{"spec": map[string]any{"template": template}}}
	default:
		panic("kind " + kind)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
}

// verdicts are the cases' outcomes, printed as a table at the end.
var verdicts []string

func record(name string, v Verdict) {
	images := strings.Join(Images(v.Object), ", ")
	for _, d := range env.digests {
		images = strings.ReplaceAll(images, d, d[:len("sha256:")+12]+"…")
	}
	line := fmt.Sprintf("| %s | admitted | %s |", name, strings.ReplaceAll(images, env.stack.Registry.Host, "$REGISTRY"))
	if !v.Allowed {
		msg := strings.ReplaceAll(strings.Join(strings.Fields(v.Message), " "), env.stack.Registry.Host, "$REGISTRY")
		// Kyverno's wording up to serve's answer is the same every time.
		if i := strings.Index(msg, "failed to fetch data for APICall: "); i >= 0 {
			msg = "… " + msg[i+len("failed to fetch data for APICall: "):]
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		line = fmt.Sprintf("| %s | denied (%s) | %s |", name, v.Stage, msg)
	}
	verdicts = append(verdicts, line+fmt.Sprintf(" %.1f ms |", float64(v.Duration.Microseconds())/1000))
}
