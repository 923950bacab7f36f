// Package e2e runs the admission path of a Kubernetes cluster on one
// machine, without Docker or a kubelet: etcd, kube-apiserver, the
// Gatekeeper manager and `ratify serve` (Kubernetes mode, with the
// awssigner plugin) as plain processes on 127.0.0.1, next to the test
// harness' OCI registry and AWS Signer emulator. Admission is decided when
// an object is created, so nothing needs to run a container.
//
// The binaries come from bin/ (`make e2e` builds them): kube-apiserver
// (tools/kube), gatekeeper (tools/gatekeeper), ratify (tools/); etcd is
// the Debian package etcd-server.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// Proc is a process started by the test, in its own process group.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Procs records every process started, to stop them all (by PID) in
// reverse order.
type Procs struct {
	mu   sync.Mutex
	list []*Proc
}

// Start runs bin with args and env, output to logDir/name.log.
func (ps *Procs) Start(logDir, name string, env []string, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.Log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "# %s %s\n", bin, strings.Join(args, " "))
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Own process group (Stop signals it whole); killed if the test dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after grace, and waits.
func (p *Proc) Stop(grace time.Duration) {
	if p == nil || p.cmd.Process == nil || p.Exited() {
		return
	}
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// StopAll stops every process, last started first: ratify serve and
// Gatekeeper (whose watches would hold the API server's shutdown), then
// kube-apiserver, then etcd (the other order makes the API server hang
// retrying).
func (ps *Procs) StopAll() {
	ps.mu.Lock()
	list := append([]*Proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].Stop(10 * time.Second)
	}
}

// Fatal wraps an error that ends a Poll at once.
type Fatal struct{ Err error }

func (f Fatal) Error() string { return f.Err.Error() }

// Poll calls f every 200ms until it returns true, or a Fatal error, or
// timeout passes; f's last error describes the state.
func Poll(timeout time.Duration, what string, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := f()
		if ok {
			return nil
		}
		var fatal Fatal
		if errors.As(err, &fatal) {
			return fmt.Errorf("%s: %w", what, fatal.Err)
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not ready after %s: %v", what, timeout, last)
			}
			return fmt.Errorf("%s: not ready after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func waitHTTP(p *Proc, client *http.Client, url, token string, timeout time.Duration) error {
	return Poll(timeout, p.Name+" "+url, func() (bool, error) {
		if p.Exited() {
			return false, Fatal{fmt.Errorf("%s exited; see %s", p.Name, p.Log)}
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return true, nil
	})
}

// EnsureEtcd returns the etcd binary, installing the Debian package
// etcd-server with apt-get when it is missing and we are root.
func EnsureEtcd() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("etcd not found: install the Debian package etcd-server (sudo apt-get install -y etcd-server)")
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "etcd-server"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return exec.LookPath("etcd")
}

// ControlPlane is etcd + kube-apiserver and an admin kubeconfig.
type ControlPlane struct {
	Dir        string
	Kubeconfig string
	URL        string
	Token      string
	Config     *rest.Config
	Etcd, API  *Proc
}

// StartControlPlane starts etcd and kube-apiserver (bin) under dir and
// waits until /readyz answers.
func StartControlPlane(ps *Procs, dir, logDir, apiserver string) (*ControlPlane, error) {
	etcd, err := EnsureEtcd()
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: dir, Token: "e2e-admin-token"}
	client, peer, secure := 0, 0, 0
	for _, p := range []*int{&client, &peer, &secure} {
		if *p, err = harness.FreePort(); err != nil {
			return nil, err
		}
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	if cp.Etcd, err = ps.Start(logDir, "etcd", []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, etcd,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL); err != nil {
		return nil, err
	}
	if err := waitHTTP(cp.Etcd, http.DefaultClient, clientURL+"/health", "", 30*time.Second); err != nil {
		return nil, err
	}

	// Service-account signing key, admin token.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey, saPub, tokens := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub"), filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(tokens, []byte(cp.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "apiserver-certs")
	if cp.API, err = ps.Start(logDir, "kube-apiserver", []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, apiserver,
		"--etcd-servers="+clientURL, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", secure),
		"--cert-dir="+certDir, "--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16"); err != nil {
		return nil, err
	}
	cp.URL = fmt.Sprintf("https://127.0.0.1:%d", secure)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	if err := waitHTTP(cp.API, insecure, cp.URL+"/readyz", cp.Token, 90*time.Second); err != nil {
		return nil, err
	}
	caFile := filepath.Join(certDir, "apiserver.crt")
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, cp.URL, caFile, cp.Token)
	if err := os.WriteFile(cp.Kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	cp.Config = &rest.Config{Host: cp.URL, BearerToken: cp.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}, QPS: 50, Burst: 100}
	return cp, nil
}

// Kube is the clients of the test.
type Kube struct {
	Config  *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  *restmapper.DeferredDiscoveryRESTMapper
}

// NewKube builds clients from cfg.
func NewKube(cfg *rest.Config) (*Kube, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Kube{Config: cfg, Client: cs, Dynamic: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// DecodeYAML splits a multi-document YAML stream into objects.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

// Apply does what `kubectl apply --server-side --force-conflicts` does for
// each object; namespaced objects without a namespace go to defaultNS.
func (k *Kube) Apply(ctx context.Context, defaultNS string, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := k.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			k.Mapper.Reset()
			m, err = k.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = k.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := o.GetNamespace()
			if ns == "" {
				ns = defaultNS
				o.SetNamespace(ns)
			}
			ri = k.Dynamic.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "e2e", Force: true}); err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, o.GetName(), err)
		}
	}
	return nil
}

// Get reads one object of gvr.
func (k *Kube) Get(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	if ns != "" {
		return k.Dynamic.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	}
	return k.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
}

// WaitField waits until the object's field at path equals want.
func (k *Kube) WaitField(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, want any, timeout time.Duration, path ...string) error {
	var last string
	err := Poll(timeout, fmt.Sprintf("%s %s .%s == %v", gvr.Resource, name, strings.Join(path, "."), want), func() (bool, error) {
		o, err := k.Get(ctx, gvr, ns, name)
		if err != nil {
			return false, err
		}
		b, _ := json.Marshal(o.Object["status"])
		last = string(b)
		v, ok, _ := nested(o.Object, path...)
		return ok && fmt.Sprint(v) == fmt.Sprint(want), nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w; status: %s", err, last)
	}
	return err
}

// nested reads a path through maps and lists ("0" indexes a list).
func nested(obj any, path ...string) (any, bool, error) {
	cur := obj
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[p]
			if !ok {
				return nil, false, nil
			}
			cur = v
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(c) {
				return nil, false, nil
			}
			cur = c[i]
		default:
			return nil, false, nil
		}
	}
	return cur, true, nil
}

// WaitCRDs waits until every CRD named is Established.
func (k *Kube) WaitCRDs(ctx context.Context, names []string, timeout time.Duration) error {
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, n := range names {
		if err := Poll(timeout, "CRD "+n+" Established", func() (bool, error) {
			o, err := k.Get(ctx, gvr, "", n)
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return err
		}
	}
	k.Mapper.Reset()
	return nil
}

// ModuleDir returns the directory of module@version in the module cache,
// downloading it if needed (go mod download, run in dir).
func ModuleDir(dir, module string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/open-policy-agent/frameworks", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %v\n%s%s", module, err, out, stderr.Bytes())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", err
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, info.Error)
	}
	return info.Dir, nil
}
