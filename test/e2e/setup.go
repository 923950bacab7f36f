package e2e

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// GatekeeperNamespace is Gatekeeper's namespace; Ratify's objects and the
// charts' releases live there too.
const GatekeeperNamespace = "gatekeeper-system"

// Module versions the cluster takes its CRDs and manifests from (pinned in
// tools/gatekeeper and tools/).
const (
	gatekeeperModule = "github.com/open-policy-agent/gatekeeper/v3@v3.23.1"
	ratifyModule     = "github.com/ratify-project/ratify@v1.4.6"
)

// Webhook deadlines of the cluster: the API server's timeoutSeconds for
// Gatekeeper's validating webhook (above the Providers' timeouts: Ratify's
// 5 s, serve's verify 3 s) and mutating webhook (above serve's mutate 2 s).
const (
	ValidatingWebhookTimeout = 10
	MutatingWebhookTimeout   = 3
)

// GatekeeperServingThreads is Gatekeeper's --max-serving-threads (its
// chart's maxServingThreads): how many validation requests it evaluates at
// once. Its default, GOMAXPROCS (2 on a 2-core node), is meant for
// CPU-bound policies; with external data each request mostly waits on the
// provider, and Gatekeeper's performance guide says to raise it then. With
// the default, 20 concurrent creates against a provider slowed to its
// budget queue behind 2 slots and overrun the webhook's 10 s (measured:
// 21 of 40 and 23 of 40 creates timed out on the two paths).
const GatekeeperServingThreads = 32

// Resources the tests read.
var (
	GVRTemplate   = schema.GroupVersionResource{Group: "templates.gatekeeper.sh", Version: "v1", Resource: "constrainttemplates"}
	GVRConstraint = schema.GroupVersionResource{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Resource: "awssignerverifiedimages"}
	GVRVerifier   = schema.GroupVersionResource{Group: "config.ratify.deislabs.io", Version: "v1beta1", Resource: "verifiers"}
	GVRNSVerifier = schema.GroupVersionResource{Group: "config.ratify.deislabs.io", Version: "v1beta1", Resource: "namespacedverifiers"}
	GVRProvider   = schema.GroupVersionResource{Group: "externaldata.gatekeeper.sh", Version: "v1beta1", Resource: "providers"}
	GVRAssign     = schema.GroupVersionResource{Group: "mutations.gatekeeper.sh", Version: "v1", Resource: "assign"}
)

// Bins are the programs the cluster runs.
type Bins struct{ APIServer, Gatekeeper, Ratify, Kubectl string }

// FindBins names the programs in dir (bin/, where `make e2e` builds them),
// $RATIFY_BIN replacing ratify, and says which are missing.
func FindBins(dir string) (Bins, error) {
	b := Bins{filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "gatekeeper"), filepath.Join(dir, "ratify"), filepath.Join(dir, "kubectl")}
	if p := os.Getenv("RATIFY_BIN"); p != "" {
		b.Ratify = p
	}
	var missing []string
	for _, p := range []string{b.APIServer, b.Gatekeeper, b.Ratify, b.Kubectl} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("missing %s: run `make e2e` (builds them into bin/)", strings.Join(missing, ", "))
	}
	return b, nil
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Root is the repository root; Dir the run's directory (etcd's data,
	// certificates, the kubeconfig; process logs in Dir/logs).
	Root, Dir string
	Bins      Bins
	// Namespaces are created, each with its default ServiceAccount (no
	// controller-manager runs), before Gatekeeper's webhooks exist.
	Namespaces []string
	// WarningHandler receives the API server's warnings.
	WarningHandler rest.WarningHandler
	// Step reports progress (nil: silent).
	Step func(string)
}

// Cluster is the admission path of a cluster on loopback: etcd,
// kube-apiserver, Gatekeeper's and Ratify's CRDs, a CA, and the Gatekeeper
// manager with its validating webhook (failurePolicy Fail) and its mutating
// webhook (Gatekeeper's default failurePolicy Ignore) registered by URL.
// The Ratify path (StartRatify) and the provider path (StartProviderPath)
// are added to it side by side.
type Cluster struct {
	Root, Dir, LogDir string
	Bins              Bins
	Procs             *Procs
	CP                *ControlPlane
	Kube              *Kube
	// CA issues every serving certificate; CABundle is its PEM in base64,
	// for caBundle fields.
	CA       *harness.CA
	CABundle string
	// GatekeeperCerts holds tls.crt and tls.key: Gatekeeper's webhook
	// certificate, which is also its client certificate towards external
	// data providers (mTLS).
	GatekeeperCerts string
	Gatekeeper      *Proc
	// GatekeeperDir and RatifyDir are the pinned modules' directories.
	GatekeeperDir, RatifyDir string
	// Jobs runs the charts' hook Jobs in GatekeeperNamespace.
	Jobs *JobRunner
	step func(string)
}

// StartCluster starts the control plane and Gatekeeper under o.Dir with
// processes recorded in ps (ps.StopAll stops them; Close stops the rest).
func StartCluster(ctx context.Context, ps *Procs, o ClusterOptions) (*Cluster, error) {
	c := &Cluster{Root: o.Root, Dir: o.Dir, LogDir: filepath.Join(o.Dir, "logs"), Bins: o.Bins, Procs: ps, step: o.Step}
	if c.step == nil {
		c.step = func(string) {}
	}
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return nil, err
	}
	c.step("etcd + kube-apiserver")
	cp, err := StartControlPlane(ps, o.Dir, c.LogDir, o.Bins.APIServer)
	if err != nil {
		return nil, err
	}
	c.CP = cp
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = o.WarningHandler
	if c.Kube, err = NewKube(cfg); err != nil {
		return nil, err
	}
	c.step("kubeconfig at " + cp.Kubeconfig)

	// Namespaces before Gatekeeper's namespace webhook exists.
	for _, ns := range append([]string{GatekeeperNamespace}, o.Namespaces...) {
		if err := c.CreateNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}

	c.step("CRDs of Gatekeeper v3.23.1 and Ratify v1.4.6")
	if c.GatekeeperDir, err = ModuleDir(filepath.Join(o.Root, "tools", "gatekeeper"), gatekeeperModule); err != nil {
		return nil, err
	}
	if c.RatifyDir, err = ModuleDir(filepath.Join(o.Root, "tools"), ratifyModule); err != nil {
		return nil, err
	}
	gkManifest, err := os.ReadFile(filepath.Join(c.GatekeeperDir, "manifest_staging", "deploy", "gatekeeper.yaml"))
	if err != nil {
		return nil, err
	}
	gkObjs, err := DecodeYAML(gkManifest)
	if err != nil {
		return nil, err
	}
	var crds []*unstructured.Unstructured
	var vwc, mwc *unstructured.Unstructured
	for _, o := range gkObjs {
		switch {
		case o.GetKind() == "CustomResourceDefinition":
			crds = append(crds, o)
		case o.GetKind() == "ValidatingWebhookConfiguration" && o.GetName() == "gatekeeper-validating-webhook-configuration":
			vwc = o
		case o.GetKind() == "MutatingWebhookConfiguration" && o.GetName() == "gatekeeper-mutating-webhook-configuration":
			mwc = o
		}
	}
	files, _ := filepath.Glob(filepath.Join(c.RatifyDir, "charts", "ratify", "crds", "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := DecodeYAML(data)
		if err != nil {
			return nil, err
		}
		crds = append(crds, objs...)
	}
	if vwc == nil || mwc == nil || len(crds) < 20 {
		return nil, fmt.Errorf("found %d CRDs, validating webhook configuration %v and mutating %v in the Gatekeeper and Ratify modules", len(crds), vwc != nil, mwc != nil)
	}
	if err := c.Kube.Apply(ctx, "", crds...); err != nil {
		return nil, err
	}
	var crdNames []string
	for _, o := range crds {
		crdNames = append(crdNames, o.GetName())
	}
	if err := c.Kube.WaitCRDs(ctx, crdNames, 30*time.Second); err != nil {
		return nil, err
	}
	c.step(fmt.Sprintf("%d CRDs established", len(crds)))

	// PKI: one CA; Gatekeeper's certificate serves the webhooks and is its
	// client certificate towards the providers (mTLS).
	pkiDir := filepath.Join(o.Dir, "pki")
	if c.CA, err = harness.NewCA(pkiDir); err != nil {
		return nil, err
	}
	c.CABundle = base64.StdEncoding.EncodeToString(c.CA.PEM)
	c.GatekeeperCerts = filepath.Join(pkiDir, "gatekeeper")
	if err := c.CA.IssueDir(c.GatekeeperCerts, "gatekeeper", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}

	// Gatekeeper manager, out of cluster: validation, status, constraint
	// CRD generation, mutation (webhook and Assign status), external data.
	c.step("Gatekeeper manager (validation and mutation webhooks)")
	gkPort, _ := harness.FreePort()
	gkHealth, _ := harness.FreePort()
	gkProm, _ := harness.FreePort()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + o.Dir, "KUBECONFIG=" + cp.Kubeconfig, "POD_NAMESPACE=" + GatekeeperNamespace, "POD_NAME=gatekeeper-e2e"}
	if c.Gatekeeper, err = ps.Start(c.LogDir, "gatekeeper", env, o.Bins.Gatekeeper,
		"--kubeconfig="+cp.Kubeconfig, "--debug-use-fake-pod",
		"--operation=webhook", "--operation=status", "--operation=generate",
		"--operation=mutation-webhook", "--operation=mutation-status",
		"--host=127.0.0.1", fmt.Sprintf("--port=%d", gkPort), "--cert-dir="+c.GatekeeperCerts, "--disable-cert-rotation",
		fmt.Sprintf("--health-addr=127.0.0.1:%d", gkHealth), "--metrics-addr=0", fmt.Sprintf("--prometheus-port=%d", gkProm),
		"--enable-external-data=true", "--external-data-provider-response-cache-ttl=0s",
		fmt.Sprintf("--max-serving-threads=%d", GatekeeperServingThreads),
		"--log-denies", "--shutdown-delay=0"); err != nil {
		return nil, err
	}
	if err := waitHTTP(c.Gatekeeper, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", gkHealth), "", 60*time.Second); err != nil {
		return nil, err
	}

	// Its webhooks, by URL: validation fails closed; mutation keeps
	// Gatekeeper's default (Ignore), the validating policy being what
	// decides.
	for _, w := range []struct {
		obj     *unstructured.Unstructured
		policy  string
		timeout int64
	}{{vwc, "Fail", ValidatingWebhookTimeout}, {mwc, "Ignore", MutatingWebhookTimeout}} {
		w.obj.SetResourceVersion("")
		whs, _, _ := unstructured.NestedSlice(w.obj.Object, "webhooks")
		for i, wh := range whs {
			m := wh.(map[string]any)
			cc := m["clientConfig"].(map[string]any)
			svc := cc["service"].(map[string]any)
			m["clientConfig"] = map[string]any{"url": fmt.Sprintf("https://127.0.0.1:%d%s", gkPort, svc["path"]), "caBundle": c.CABundle}
			m["failurePolicy"] = w.policy
			m["timeoutSeconds"] = w.timeout
			whs[i] = m
		}
		if err := unstructured.SetNestedSlice(w.obj.Object, whs, "webhooks"); err != nil {
			return nil, err
		}
		if err := c.Kube.Apply(ctx, "", w.obj); err != nil {
			return nil, err
		}
	}
	c.Jobs = StartJobRunner(c.Kube, cp, o.Bins.Kubectl, GatekeeperNamespace, o.Dir, func(string, ...any) {})
	return c, nil
}

// Close stops what StartCluster started besides processes (the hook Job
// runner); ps.StopAll stops the processes.
func (c *Cluster) Close() {
	if c.Jobs != nil {
		c.Jobs.Stop()
	}
}

// CreateNamespace creates ns and its default ServiceAccount.
func (c *Cluster) CreateNamespace(ctx context.Context, ns string) error {
	if _, err := c.Kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.Kube.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	return err
}

// WaitEnforced waits until each Constraint of the AWSSignerVerifiedImages
// kind named is enforced by Gatekeeper.
func (c *Cluster) WaitEnforced(ctx context.Context, constraints ...string) error {
	for _, n := range constraints {
		if err := c.Kube.WaitField(ctx, GVRConstraint, "", n, true, 60*time.Second, "status", "byPod", "0", "enforced"); err != nil {
			return fmt.Errorf("%w (see %s)", err, c.Gatekeeper.Log)
		}
	}
	return nil
}
