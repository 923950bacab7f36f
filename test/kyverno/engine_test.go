package kyverno

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	kyvernov1 "github.com/kyverno/kyverno/api/kyverno/v1"
	kyvernov2 "github.com/kyverno/kyverno/api/kyverno/v2"
	kyvernov2beta1 "github.com/kyverno/kyverno/api/kyverno/v2beta1"
	"github.com/kyverno/kyverno/pkg/clients/dclient"
	"github.com/kyverno/kyverno/pkg/config"
	"github.com/kyverno/kyverno/pkg/engine"
	"github.com/kyverno/kyverno/pkg/engine/adapters"
	engineapi "github.com/kyverno/kyverno/pkg/engine/api"
	"github.com/kyverno/kyverno/pkg/engine/apicall"
	"github.com/kyverno/kyverno/pkg/engine/factories"
	"github.com/kyverno/kyverno/pkg/engine/jmespath"
	"github.com/kyverno/kyverno/pkg/event"
	"github.com/kyverno/kyverno/pkg/globalcontext/k8sresource"
	gctxstore "github.com/kyverno/kyverno/pkg/globalcontext/store"
	imageverifycache "github.com/kyverno/kyverno/pkg/image/verification/cache"
	"github.com/kyverno/kyverno/pkg/toggle"
	reportutils "github.com/kyverno/kyverno/pkg/utils/report"
	"github.com/kyverno/kyverno/pkg/webhooks/handlers"
	"github.com/kyverno/kyverno/pkg/webhooks/resource/mutation"
	"github.com/kyverno/kyverno/pkg/webhooks/resource/validation"
	webhookutils "github.com/kyverno/kyverno/pkg/webhooks/utils"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"
)

const (
	// scopedTokenEnv is where Kyverno's apiCall reads the bearer token it
	// sends (the path is read once, when Kyverno's apicall package
	// initialises; the file on every call).
	scopedTokenEnv = "KYVERNO_SCOPED_TOKEN_PATH"
	// trustLabel is the namespace label the policy reads the trust policy
	// name from.
	trustLabel = "ratify-aws-signer.github.io/trust-policy"
	// policyName is the ClusterPolicy's metadata.name.
	policyName = "awssigner-verified-images"
	// placeholderURL is the service URL written in the policy file.
	placeholderURL = "https://awssigner.awssigner.svc:6002/checkimages"
	// httpBlocklist is Kyverno's default without loopback, which the
	// tests' serve listens on.
	httpBlocklist = "169.254.169.254/32,169.254.169.253/32,fd00:ec2::254/128,metadata.google.internal"
)

// PolicyFile is the ClusterPolicy and TrustPoliciesFile the
// GlobalContextEntry it reads, relative to the repository root.
var (
	PolicyFile        = filepath.Join("policies", "kyverno", "awssigner-verified-images.yaml")
	TrustPoliciesFile = filepath.Join("policies", "kyverno", "awssigner-trust-policies.yaml")
)

// TestMain runs the tests in a child process whose environment names the
// scoped token file (Kyverno reads the variable once, at package
// initialisation), then sets up once: registry, emulator, serve, engine.
func TestMain(m *testing.M) {
	if os.Getenv(scopedTokenEnv) == "" {
		os.Exit(reexec())
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: setup:", err)
		code = 1
	}
	teardown()
	os.Exit(code)
}

// reexec runs this test binary again with scopedTokenEnv set to a file in
// a fresh directory, passing its output and exit status through. The child
// runs in a process group of its own, which is killed when it ends: a
// process it started and could not stop (a test that panicked before
// teardown) does not outlive the run. SIGINT and SIGTERM are passed on.
func reexec() int {
	dir, err := os.MkdirTemp("", "awssigner-kyverno-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), scopedTokenEnv+"="+filepath.Join(dir, "token"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: re-run with", scopedTokenEnv+":", err)
		return 1
	}
	pgid := cmd.Process.Pid
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sig {
			syscall.Kill(-pgid, s.(syscall.Signal))
		}
	}()
	err = cmd.Wait()
	signal.Stop(sig)
	syscall.Kill(-pgid, syscall.SIGKILL)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "FAIL: the re-run test binary:", err)
		return 1
	}
	return 0
}

// Kind is what the tests need to know of a kind: its resource.
type Kind struct {
	GVK schema.GroupVersionKind
	GVR schema.GroupVersionResource
}

// kinds are the kinds the policy matches.
var kinds = map[string]Kind{}

func init() {
	for _, k := range []struct{ group, kind, resource string }{
		{"", "Pod", "pods"}, {"", "ReplicationController", "replicationcontrollers"},
		{"apps", "Deployment", "deployments"}, {"apps", "ReplicaSet", "replicasets"},
		{"apps", "StatefulSet", "statefulsets"}, {"apps", "DaemonSet", "daemonsets"},
		{"batch", "Job", "jobs"}, {"batch", "CronJob", "cronjobs"},
	} {
		kinds[k.kind] = Kind{GVK: schema.GroupVersionKind{Group: k.group, Version: "v1", Kind: k.kind},
			GVR: schema.GroupVersionResource{Group: k.group, Version: "v1", Resource: k.resource}}
	}
}

// Policy is what the policy file holds: the ClusterPolicy and the
// GlobalContextEntries it reads.
type Policy struct {
	Cluster *kyvernov1.ClusterPolicy
	Entries []*kyvernov2.GlobalContextEntry
}

// LoadPolicy reads the policy files, strictly (an unknown field is an
// error), with every apiCall service pointed at url and trusting caPEM.
func LoadPolicy(root, url string, caPEM []byte) (*Policy, error) {
	out := &Policy{Cluster: &kyvernov1.ClusterPolicy{}, Entries: []*kyvernov2.GlobalContextEntry{{}}}
	for file, obj := range map[string]any{PolicyFile: out.Cluster, TrustPoliciesFile: out.Entries[0]} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil, err
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	p := out.Cluster
	n := 0
	for i := range p.Spec.Rules {
		for j := range p.Spec.Rules[i].Context {
			c := &p.Spec.Rules[i].Context[j]
			if c.APICall == nil || c.APICall.Service == nil {
				continue
			}
			if c.APICall.Service.URL != placeholderURL {
				return nil, fmt.Errorf("%s: rule %s: service.url %q, want the placeholder %q", PolicyFile, p.Spec.Rules[i].Name, c.APICall.Service.URL, placeholderURL)
			}
			c.APICall.Service.URL = url
			c.APICall.Service.CABundle = string(caPEM)
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no apiCall.service", PolicyFile)
	}
	return out, nil
}

// Admission runs Kyverno's admission path for one policy as its admission
// controller does: the mutating webhook's handler, the API server applying
// its JSON patch, then the validating webhook's handler on the result.
type Admission struct {
	Config config.Configuration
	Engine engineapi.Engine
	Policy kyvernov1.PolicyInterface
	// Client is Kyverno's fake cluster (the namespaces): a change of a
	// namespace's labels reaches the global context as in a cluster.
	Client dclient.Interface
	pcb    webhookutils.PolicyContextBuilder
	mutate mutation.MutationHandler
	valid  validation.ValidationHandler
	Events *Events
}

// NewAdmission builds the engine as cmd/kyverno does (internal.NewEngine):
// Kyverno's default configuration and JMESPath, its client adapter, the
// default context loader with the admission controller's API-call
// configuration (--maxAPICallResponseLength, --apiCallTimeout defaults) and
// a global context store holding policy's GlobalContextEntries as the
// admission controller's global-context controller makes them (informers,
// here on Kyverno's fake client holding namespaces); no registry client
// (the policy reads no registry), image-verify cache off. The entries stop
// with ctx.
func NewAdmission(ctx context.Context, policy *Policy, namespaces ...*corev1.Namespace) (*Admission, error) {
	if err := toggle.HTTPBlocklist.Parse(httpBlocklist); err != nil {
		return nil, err
	}
	// The handlers consult the reporting configuration (cmd/internal's
	// defaults of --enableReporting and --allowedResults); with admission
	// reports off (--admissionReports=false) none is written.
	reportutils.NewReportingConfig([]string{"pass", "fail", "error", "warn", "skip"}, "validate", "mutate", "mutateExisting", "generate", "imageVerify")
	cfg := config.NewDefaultConfiguration(false)
	jp := jmespath.New(cfg)
	objs := make([]runtime.Object, 0, len(namespaces))
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, ns := range namespaces {
		objs = append(objs, ns)
		if err := indexer.Add(ns); err != nil {
			return nil, err
		}
	}
	dc, err := dclient.NewFakeClient(runtime.NewScheme(), map[schema.GroupVersionResource]string{{Version: "v1", Resource: "namespaces"}: "NamespaceList"}, objs...)
	if err != nil {
		return nil, err
	}
	dc.SetDiscovery(dclient.NewFakeDiscoveryClient(nil))
	events := &Events{}
	gctx := gctxstore.New(0)
	for _, e := range policy.Entries {
		gce, err := V2beta1(e)
		if err != nil {
			return nil, err
		}
		kr := gce.Spec.KubernetesResource
		if kr == nil {
			return nil, fmt.Errorf("GlobalContextEntry %s: only kubernetesResource entries are expected", gce.Name)
		}
		entry, err := k8sresource.New(ctx, gce, events, dc.GetDynamicInterface(), logr.Discard(),
			schema.GroupVersionResource{Group: kr.Group, Version: kr.Version, Resource: kr.Resource}, kr.Namespace, jp)
		if err != nil {
			return nil, fmt.Errorf("GlobalContextEntry %s: %w", gce.Name, err)
		}
		if err := gctx.Set(gce.Name, entry); err != nil {
			return nil, err
		}
	}
	eng := engine.NewEngine(cfg, jp, adapters.Client(dc), nil,
		imageverifycache.DisabledImageVerifyCache(),
		factories.DefaultContextLoaderFactory(nil, factories.WithAPICallConfig(apicall.NewAPICallConfiguration(10*1000*1000, 30*time.Second)), factories.WithGlobalContextStore(gctx)),
		nil, nil)
	nsLister := corev1listers.NewNamespaceLister(indexer)
	pcb := webhookutils.NewPolicyContextBuilder(cfg, jp)
	return &Admission{
		Config: cfg, Engine: eng, Policy: policy.Cluster, Client: dc, pcb: pcb, Events: events,
		mutate: mutation.NewMutationHandler(logr.Discard(), nil, eng, events, nsLister, nil, false),
		valid:  validation.NewValidationHandler(logr.Discard(), nil, eng, nil, pcb, events, false, nil, nsLister),
	}, nil
}

// V2beta1 is e in the version Kyverno's global-context controller and
// validation read (its storage version), converted as the API server does
// (the two versions' fields are the same).
func V2beta1(e *kyvernov2.GlobalContextEntry) (*kyvernov2beta1.GlobalContextEntry, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	out := &kyvernov2beta1.GlobalContextEntry{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	out.APIVersion = kyvernov2beta1.SchemeGroupVersion.String()
	return out, nil
}

// Events records the events Kyverno's handlers emit.
type Events struct {
	mu   sync.Mutex
	list []event.Info
}

// Add implements event.Interface.
func (e *Events) Add(infos ...event.Info) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, infos...)
}

// Stage is where an admission was decided.
type Stage string

const (
	Mutating   Stage = "mutating webhook"
	Validating Stage = "validating webhook"
)

// Verdict is what the API server would do with one request.
type Verdict struct {
	Allowed bool
	// Stage that denied (empty when allowed).
	Stage Stage
	// Message is the denial as Kyverno's handler words it.
	Message string
	// Object is the object as it would be stored (after the patch).
	Object *unstructured.Unstructured
	// Patch is the mutating webhook's JSON patch.
	Patch []byte
	// Validate are the validating webhook's engine responses.
	Validate []engineapi.EngineResponse
	Duration time.Duration
}

// Review submits obj (namespaced, of a kind in kinds) with operation op;
// old is the stored object for an UPDATE.
func (a *Admission) Review(ctx context.Context, op admissionv1.Operation, obj, old *unstructured.Unstructured) (Verdict, error) {
	start := time.Now()
	req, err := a.request(op, obj, old)
	if err != nil {
		return Verdict{}, err
	}
	policies := []kyvernov1.PolicyInterface{a.Policy}
	// Mutating webhook.
	pc, err := a.pcb.Build(req.AdmissionRequest, req.Roles, req.ClusterRoles, req.GroupVersionKind)
	if err != nil {
		return Verdict{}, err
	}
	patch, _, err := a.mutate.HandleMutation(ctx, req, policies, pc, start, a.Config)
	if err != nil {
		return Verdict{Stage: Mutating, Message: err.Error(), Duration: time.Since(start)}, nil
	}
	patched := obj
	if len(patch) > 0 {
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return Verdict{}, fmt.Errorf("mutating webhook's patch %s: %w", patch, err)
		}
		raw, err := p.Apply(req.Object.Raw)
		if err != nil {
			return Verdict{}, fmt.Errorf("mutating webhook's patch %s: %w", patch, err)
		}
		patched = &unstructured.Unstructured{}
		if err := patched.UnmarshalJSON(raw); err != nil {
			return Verdict{}, err
		}
	}
	// Validating webhook, on the object as mutated.
	v, err := a.ReviewValidating(ctx, op, patched, old)
	v.Patch = patch
	v.Duration = time.Since(start)
	return v, err
}

// ReviewValidating runs only the validating webhook on obj, as if no
// mutation had happened.
func (a *Admission) ReviewValidating(ctx context.Context, op admissionv1.Operation, obj, old *unstructured.Unstructured) (Verdict, error) {
	start := time.Now()
	req, err := a.request(op, obj, old)
	if err != nil {
		return Verdict{}, err
	}
	ok, msg, _, resps := a.valid.HandleValidationEnforce(ctx, req, []kyvernov1.PolicyInterface{a.Policy}, nil, start)
	v := Verdict{Allowed: ok, Object: obj, Validate: resps, Duration: time.Since(start)}
	if !ok {
		v.Stage, v.Message = Validating, msg
	}
	return v, nil
}

func (a *Admission) request(op admissionv1.Operation, obj, old *unstructured.Unstructured) (handlers.AdmissionRequest, error) {
	k, ok := kinds[obj.GetKind()]
	if !ok {
		return handlers.AdmissionRequest{}, fmt.Errorf("kind %s is not one the tests know", obj.GetKind())
	}
	raw, err := obj.MarshalJSON()
	if err != nil {
		return handlers.AdmissionRequest{}, err
	}
	r := admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("uid-%d", time.Now().UnixNano())),
		Kind:      metav1.GroupVersionKind(k.GVK),
		Resource:  metav1.GroupVersionResource(k.GVR),
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}},
		Object:    runtime.RawExtension{Raw: raw},
	}
	if old != nil {
		if r.OldObject.Raw, err = old.MarshalJSON(); err != nil {
			return handlers.AdmissionRequest{}, err
		}
	}
	return handlers.AdmissionRequest{AdmissionRequest: r, GroupVersionKind: k.GVK}, nil
}

// Images lists every image field of obj (pod, pod template or job
// template) as "<list>/<container>=<image>".
func Images(obj *unstructured.Unstructured) []string {
	if obj == nil {
		return nil
	}
	spec := obj.Object
	for _, path := range [][]string{{"spec"}, {"spec", "template", "spec"}, {"spec", "jobTemplate", "spec", "template", "spec"}} {
		if m, ok, _ := unstructured.NestedMap(obj.Object, path...); ok {
			if _, isPod := m["containers"]; isPod {
				spec = m
				break
			}
		}
	}
	var out []string
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			m, _ := c.(map[string]any)
			out = append(out, fmt.Sprintf("%s/%v=%v", list, m["name"], m["image"]))
		}
	}
	return out
}

// Rule reports the status and message of the named rule in resps.
func Rule(resps []engineapi.EngineResponse, name string) (engineapi.RuleStatus, string) {
	for _, r := range resps {
		for _, rr := range r.PolicyResponse.Rules {
			if rr.Name() == name {
				return rr.Status(), rr.Message()
			}
		}
	}
	return "", ""
}

// mustJSON is v as one line of JSON, for messages.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
