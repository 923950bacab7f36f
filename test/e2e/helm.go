package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// HelmInstall is `helm install --wait` of chartDir against the control
// plane: Helm's own install action with a kubeconfig, so it renders with
// the cluster's capabilities and lookups, creates the objects, runs the
// hooks (waiting for hook Jobs) and records the release.
func HelmInstall(ctx context.Context, cp *ControlPlane, chartDir, name, ns string, vals map[string]any, logf func(string, ...any)) (*release.Release, error) {
	cfg, ch, v, err := helmAction(cp, chartDir, ns, vals, logf)
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(cfg)
	inst.ReleaseName = name
	inst.Namespace = ns
	inst.Wait = true
	inst.Timeout = 3 * time.Minute
	return inst.RunWithContext(ctx, ch, v)
}

// HelmUpgrade is `helm upgrade --wait` of the release name to chartDir with
// vals (Helm's own upgrade action, as HelmInstall).
func HelmUpgrade(ctx context.Context, cp *ControlPlane, chartDir, name, ns string, vals map[string]any, logf func(string, ...any)) (*release.Release, error) {
	cfg, ch, v, err := helmAction(cp, chartDir, ns, vals, logf)
	if err != nil {
		return nil, err
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = ns
	up.Wait = true
	up.Timeout = 3 * time.Minute
	return up.RunWithContext(ctx, name, ch, v)
}

// helmAction loads the chart and a Helm action configuration for the
// control plane's kubeconfig. Values go through JSON so they have the
// types Helm's YAML loader gives.
func helmAction(cp *ControlPlane, chartDir, ns string, vals map[string]any, logf func(string, ...any)) (*action.Configuration, *chart.Chart, map[string]any, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, nil, nil, err
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &cp.Kubeconfig
	flags.Namespace = &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, "secret", logf); err != nil {
		return nil, nil, nil, err
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return nil, nil, nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, nil, nil, err
	}
	return cfg, ch, v, nil
}

// JobRunner stands in for the kubelet and the Job controller for the
// chart's hook Jobs: this control plane has no nodes, so nothing would run
// them. For each new Job in its namespace it runs the pod's containers in
// order (init containers first), each being `kubectl <args>` as the image's
// entrypoint, as the Job's ServiceAccount (a token from the TokenRequest
// API, so the chart's RBAC is what is exercised), with the pod's ConfigMap
// and emptyDir volumes materialised in a directory and the mount paths in
// the arguments mapped to it; then it writes the outcome to the Job's
// status as the Job controller does. It refuses anything else (a
// container with its own command).
type JobRunner struct {
	kube    *Kube
	cp      *ControlPlane
	kubectl string
	ns      string
	dir     string
	logf    func(string, ...any)
	cancel  context.CancelFunc
	done    chan struct{}

	mu   sync.Mutex
	runs []JobRun
}

// JobRun is one Job the runner ran.
type JobRun struct {
	Name     string
	OK       bool
	Duration time.Duration
	Output   string
}

// StartJobRunner polls ns for Jobs every 200ms until Stop; kubectl is the
// binary the containers' arguments are given to.
func StartJobRunner(kube *Kube, cp *ControlPlane, kubectl, ns, dir string, logf func(string, ...any)) *JobRunner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &JobRunner{kube: kube, cp: cp, kubectl: kubectl, ns: ns, dir: dir, logf: logf, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		seen := map[string]bool{}
		for ctx.Err() == nil {
			jobs, err := kube.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range jobs.Items {
					j := &jobs.Items[i]
					if seen[string(j.UID)] {
						continue
					}
					seen[string(j.UID)] = true
					run := r.run(ctx, j)
					r.mu.Lock()
					r.runs = append(r.runs, run)
					r.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return r
}

// Stop ends the polling.
func (r *JobRunner) Stop() {
	r.cancel()
	<-r.done
}

// Runs returns the Jobs run so far.
func (r *JobRunner) Runs() []JobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]JobRun(nil), r.runs...)
}

func (r *JobRunner) run(ctx context.Context, j *batchv1.Job) JobRun {
	start := metav1.Now()
	out, err := r.execute(ctx, j)
	run := JobRun{Name: j.Name, OK: err == nil, Duration: time.Since(start.Time), Output: out}
	if err != nil {
		run.Output += "\n" + err.Error()
	}
	r.logf("  job %s/%s: ok=%v after %v", r.ns, j.Name, run.OK, run.Duration.Round(time.Millisecond))
	if err := r.finish(ctx, j.Name, start, run.OK, run.Output); err != nil {
		r.logf("  job %s/%s: status not written: %v", r.ns, j.Name, err)
	}
	return run
}

// execute runs the pod's containers and returns their combined output.
func (r *JobRunner) execute(ctx context.Context, j *batchv1.Job) (string, error) {
	spec := j.Spec.Template.Spec
	dir, err := os.MkdirTemp(r.dir, "job-"+j.Name+"-")
	if err != nil {
		return "", err
	}
	mounts := map[string]string{} // volume name -> directory
	for _, v := range spec.Volumes {
		d := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
		switch {
		case v.ConfigMap != nil:
			cm, err := r.kube.Client.CoreV1().ConfigMaps(r.ns).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return "", fmt.Errorf("volume %s: %w", v.Name, err)
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(d, k), []byte(data), 0o600); err != nil {
					return "", err
				}
			}
		case v.EmptyDir != nil:
		default:
			return "", fmt.Errorf("volume %s: only configMap and emptyDir volumes are supported by this stand-in", v.Name)
		}
		mounts[v.Name] = d
	}
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(600)
	tok, err := r.kube.Client.CoreV1().ServiceAccounts(r.ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s: %w", sa, err)
	}
	caFile := r.cp.Config.TLSClientConfig.CAFile
	var all strings.Builder
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		if len(c.Command) > 0 {
			return all.String(), fmt.Errorf("container %s sets a command; this stand-in only runs kubectl-entrypoint images", c.Name)
		}
		// Longest mount paths first, so /tmp/x maps before /tmp.
		vm := append([]corev1.VolumeMount(nil), c.VolumeMounts...)
		sort.Slice(vm, func(a, b int) bool { return len(vm[a].MountPath) > len(vm[b].MountPath) })
		args := []string{"--server=" + r.cp.URL, "--certificate-authority=" + caFile, "--token=" + tok.Status.Token, "--namespace=" + r.ns}
		for _, a := range c.Args {
			// A path argument (or a flag's value) under a mount path: once,
			// by the longest mount path that is a prefix of it.
			flag, val, isFlag := strings.Cut(a, "=")
			if !isFlag {
				flag, val = "", a
			}
			for _, m := range vm {
				d, ok := mounts[m.Name]
				if ok && (val == m.MountPath || strings.HasPrefix(val, strings.TrimSuffix(m.MountPath, "/")+"/")) {
					val = d + strings.TrimPrefix(val, strings.TrimSuffix(m.MountPath, "/"))
					break
				}
			}
			if isFlag {
				a = flag + "=" + val
			} else {
				a = val
			}
			args = append(args, a)
		}
		cmd := exec.CommandContext(ctx, r.kubectl, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		fmt.Fprintf(&all, "== %s: kubectl %s\n%s", c.Name, strings.Join(c.Args, " "), out)
		if err != nil {
			return all.String(), fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	return all.String(), nil
}

// finish records the outcome as the Job controller would.
func (r *JobRunner) finish(ctx context.Context, name string, start metav1.Time, ok bool, msg string) error {
	j, err := r.kube.Client.BatchV1().Jobs(r.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	zero := int32(0)
	j.Status.StartTime = &start
	j.Status.Active = 0
	j.Status.Ready = &zero
	j.Status.Terminating = &zero
	cond := func(t batchv1.JobConditionType, reason string) batchv1.JobCondition {
		return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: lastLine(msg), LastProbeTime: now, LastTransitionTime: now}
	}
	if ok {
		j.Status.Succeeded = 1
		j.Status.CompletionTime = &now
		j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached"), cond(batchv1.JobComplete, "CompletionsReached")}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded"), cond(batchv1.JobFailed, "BackoffLimitExceeded")}
	}
	_, err = r.kube.Client.BatchV1().Jobs(r.ns).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	return err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}

// AuthProxy is a registry front that requires HTTP basic credentials Ratify
// does not have, passing authenticated requests to the real registry: the
// answer a private registry gives a client without credentials.
func AuthProxy(registryHost string) (*http.Server, string, error) {
	target, err := url.Parse("http://" + registryHost)
	if err != nil {
		return nil, "", err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != "e2e" || p != "not-given-to-ratify" {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		rp.ServeHTTP(w, req)
	})
	port, err := harness.FreePort()
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ready := make(chan error, 1)
	go func() { ready <- srv.ListenAndServe() }()
	select {
	case err := <-ready:
		return nil, "", err
	case <-time.After(100 * time.Millisecond):
	}
	return srv, srv.Addr, nil
}

// RenderChart renders the chart as `helm install --dry-run` would (release
// name in ns) against a cluster serving apis, and returns its objects in
// Helm's install order.
func RenderChart(chartDir, ns, name string, vals map[string]any, apis ...string) ([]*unstructured.Unstructured, error) {
	rel, err := DryRunInstall(chartDir, ns, name, vals, apis...)
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

// DryRunInstall is Helm's client-only `helm install --dry-run` of chartDir
// as release name in ns, on Kubernetes v1.36.2 serving apis. Values go
// through JSON so they have the types Helm's YAML loader gives.
func DryRunInstall(chartDir, ns, name string, vals map[string]any, apis ...string) (*release.Release, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = name
	inst.Namespace = ns
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.2", Major: "1", Minor: "36"}
	inst.APIVersions = apis
	b, err := json.Marshal(vals)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return inst.RunWithContext(context.Background(), ch, v)
}

// Merge returns a copy of base with over's keys set, maps merged
// recursively.
func Merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = Merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}
