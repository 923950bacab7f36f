package chart

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

// The APIs cert-manager serves (mode provider's tls.mode auto looks for
// them).
var certManagerAPIs = []string{"cert-manager.io/v1/Issuer", "cert-manager.io/v1/Certificate"}

// gatekeeperPKI is a CA standing for Gatekeeper's (its ca.crt is what the
// chart needs for mTLS) with a client certificate it issued, as Gatekeeper
// presents its webhook certificate.
func gatekeeperPKI(t *testing.T) *harness.PKI {
	t.Helper()
	p, err := harness.NewPKI(filepath.Join(t.TempDir(), "gatekeeper"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// providerValues is mode provider trusting prodARN, with Gatekeeper's CA
// given as a value (what an offline render needs), and each YAML snippet
// merged over it.
func providerValues(t *testing.T, gkCA []byte, snippets ...string) map[string]any {
	t.Helper()
	v := values(t, "mode: provider\ntrustedSigningProfiles: ["+prodARN+"]")
	if gkCA != nil {
		mergeValues(v, map[string]any{"provider": map[string]any{"gatekeeper": map[string]any{"caBundle": string(gkCA)}}})
	}
	for _, s := range snippets {
		mergeValues(v, values(t, s))
	}
	return v
}

// mergeValues merges src into dst, maps key by key (as Helm merges -f files).
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// one returns the single object of a kind and name.
func one(t *testing.T, objs []rendered, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, r := range objs {
		if r.obj.GetKind() == kind && r.obj.GetName() == name {
			found = append(found, r.obj)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s %s, want 1", len(found), kind, name)
	}
	return found[0]
}

func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &out
}

// TestProviderObjects: mode provider renders awssigner serve and what
// Gatekeeper needs to call it, no Ratify object, and every object passes
// the API server's schema (Kubernetes' types strictly, Gatekeeper's and
// cert-manager's CRDs) and Gatekeeper's own admission checks.
func TestProviderObjects(t *testing.T) {
	gk := gatekeeperPKI(t)
	// No Ratify API in the cluster: mode provider needs none.
	rel, objs := mustInstall(t, providerValues(t, gk.CAPEM))
	var kinds []string
	for _, r := range objs {
		kinds = append(kinds, r.obj.GetKind()+"/"+r.obj.GetName())
	}
	want := []string{
		"NetworkPolicy/ratify-aws-signer", "PodDisruptionBudget/ratify-aws-signer", "ServiceAccount/ratify-aws-signer",
		"Secret/ratify-aws-signer-ca", "Secret/ratify-aws-signer-tls",
		"ConfigMap/ratify-aws-signer-constraints", "AWSSignerVerifiedImages/aws-signer-verified-images",
		"ConfigMap/ratify-aws-signer-config", "ConfigMap/ratify-aws-signer-gatekeeper-ca",
		"Service/ratify-aws-signer", "Deployment/ratify-aws-signer",
		"Assign/awssigner-pin-pod-containers", "Assign/awssigner-pin-pod-initcontainers", "Assign/awssigner-pin-pod-ephemeralcontainers",
		"Assign/awssigner-pin-workload-containers", "Assign/awssigner-pin-workload-initcontainers",
		"Assign/awssigner-pin-cronjob-containers", "Assign/awssigner-pin-cronjob-initcontainers",
		"ConstraintTemplate/awssignerverifiedimages",
		"Provider/awssigner-verify", "Provider/awssigner-mutate",
		"ServiceAccount/ratify-aws-signer-constraints", "ClusterRole/ratify-aws-signer-constraints",
		"ClusterRoleBinding/ratify-aws-signer-constraints", "Job/ratify-aws-signer-constraints",
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("objects\n%v\nwant\n%v", kinds, want)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	for _, r := range objs {
		if ns := r.obj.GetNamespace(); ns != "" && ns != releaseNamespace {
			t.Errorf("%s in namespace %q", r, ns)
		}
		if r.obj.GetLabels()["app.kubernetes.io/instance"] != "ratify-aws-signer" {
			t.Errorf("%s lacks the release's labels: %v", r, r.obj.GetLabels())
		}
	}
	// The Constraints call this chart's verify Provider, unscoped (serve
	// has no Ratify namespaces).
	params, _, _ := unstructured.NestedMap(ofKind(objs, "AWSSignerVerifiedImages")[0].obj.Object, "spec", "parameters")
	if want := map[string]any{"provider": "awssigner-verify", "exemptImages": []any{}, "requireRevocationCheck": false}; !reflect.DeepEqual(params, want) {
		t.Errorf("Constraint parameters %v, want %v", params, want)
	}
	if n := len(ofKind(objs, "NamespacedVerifier")) + len(ofKind(objs, "Verifier")); n != 0 {
		t.Errorf("mode provider renders %d Ratify Verifiers", n)
	}
	for _, w := range []string{"Mode provider: awssigner serve (2 replicas, Deployment ratify-aws-signer)", "awssigner-verify (https://ratify-aws-signer.gatekeeper-system:6001/ratify/gatekeeper/v2/verify)", "generated by the chart (365 days"} {
		if !strings.Contains(rel.Info.Notes, w) {
			t.Errorf("NOTES lack %q:\n%s", w, rel.Info.Notes)
		}
	}
	// A Constraint provider given by hand still wins.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "policies: {constraints: {provider: my-provider}}"))
	if p, _, _ := unstructured.NestedString(ofKind(objs, "AWSSignerVerifiedImages")[0].obj.Object, "spec", "parameters", "provider"); p != "my-provider" {
		t.Errorf("policies.constraints.provider ignored: %q", p)
	}
}

// TestProviderDeployment: the pod runs serve with the configuration, the
// certificates and Gatekeeper's CA mounted where the configuration names
// them, under the Pod Security Standards' restricted profile (checked by
// Kubernetes' own pod-security-admission), replicated and spread.
func TestProviderDeployment(t *testing.T) {
	gk := gatekeeperPKI(t)
	_, objs := mustInstall(t, providerValues(t, gk.CAPEM))
	dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))

	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &dep.Spec.Template.ObjectMeta, &dep.Spec.Template.Spec) {
		if !r.Allowed {
			t.Errorf("restricted pod security: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}

	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	spec := dep.Spec.Template.Spec
	var keys []string
	for _, c := range spec.TopologySpreadConstraints {
		keys = append(keys, c.TopologyKey)
		if !reflect.DeepEqual(c.LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
			t.Errorf("spread over %s selects %v, not the provider pods %v", c.TopologyKey, c.LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels)
		}
	}
	if strings.Join(keys, ",") != "topology.kubernetes.io/zone,kubernetes.io/hostname" {
		t.Errorf("topology spread keys %v", keys)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the provider pod mounts a Kubernetes API token it does not use")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != "ghcr.io/ratify-aws-signer/awssigner:0.1.0" {
		t.Errorf("image %s", c.Image)
	}
	if strings.Join(c.Args, " ") != "serve --config=/etc/awssigner/config/config.yaml --log-level=info" {
		t.Errorf("args %v", c.Args)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v", sc)
	}
	if ps := spec.SecurityContext; ps == nil || !*ps.RunAsNonRoot || *ps.RunAsUser != 65532 || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", ps)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port != intstr.FromString("health") {
		t.Errorf("readiness probe %+v", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("health") {
		t.Errorf("liveness probe %+v", p)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(ports, map[string]int32{"https": 6001, "health": 9099}) {
		t.Errorf("ports %v", ports)
	}
	// No checksum annotation: a configuration change is reloaded by serve,
	// not rolled out as new pods.
	for k := range dep.Spec.Template.Annotations {
		if strings.Contains(k, "checksum") {
			t.Errorf("pod template annotation %s restarts the pods on configuration changes", k)
		}
	}

	// The configuration: decoded by the product's decoder, ready to serve,
	// with every file it names mounted from the right object.
	cm := one(t, objs, "ConfigMap", "ratify-aws-signer-config")
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	cfg, err := config.Decode([]byte(raw))
	if err != nil {
		t.Fatalf("serve refuses the chart's configuration: %v\n%s", err, raw)
	}
	if err := cfg.Server.CheckServe(); err != nil {
		t.Fatalf("serve would not start: %v", err)
	}
	if cfg.Server.Address != ":6001" || cfg.Server.HealthAddress != ":9099" {
		t.Errorf("addresses %q %q", cfg.Server.Address, cfg.Server.HealthAddress)
	}
	files := mountedFiles(t, dep, objs)
	for what, f := range map[string]string{"certFile": cfg.Server.CertFile, "keyFile": cfg.Server.KeyFile, "clientCAFile": cfg.Server.ClientCAFile} {
		if _, ok := files[f]; !ok {
			t.Errorf("server.tls.%s %s is not mounted (mounted: %v)", what, f, sortedKeys(files))
		}
	}
	if got := string(files[cfg.Server.ClientCAFile]); strings.TrimSpace(got) != strings.TrimSpace(string(gk.CAPEM)) {
		t.Errorf("client CA file holds\n%s\nnot Gatekeeper's CA", got)
	}
	if _, err := tls.X509KeyPair(files[cfg.Server.CertFile], files[cfg.Server.KeyFile]); err != nil {
		t.Errorf("mounted certificate and key: %v", err)
	}
	if _, ok := files["/etc/awssigner/config/config.yaml"]; !ok {
		t.Error("the configuration file is not mounted where --config names it")
	}
}

// mountedFiles plays the kubelet for the provider container: the files its
// ConfigMap and Secret volumes put at their mount paths, by path.
func mountedFiles(t *testing.T, dep *appsv1.Deployment, objs []rendered) map[string][]byte {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	files := map[string][]byte{}
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volume mount %s has no volume", m.Name)
		}
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.ConfigMap != nil:
			cm := typed[corev1.ConfigMap](t, one(t, objs, "ConfigMap", v.ConfigMap.Name))
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			items = v.ConfigMap.Items
		case v.Secret != nil:
			found := false
			for _, r := range ofKind(objs, "Secret") {
				if r.obj.GetName() == v.Secret.SecretName {
					data = typed[corev1.Secret](t, r.obj).Data
					found = true
				}
			}
			if !found {
				continue // not the chart's (cert-manager's, Gatekeeper's, the user's)
			}
			items = v.Secret.Items
		default:
			continue
		}
		if items == nil {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				t.Errorf("volume %s: key %s is not in its object", m.Name, it.Key)
			}
			files[m.MountPath+"/"+it.Path] = b
		}
	}
	return files
}

// TestProviderConfigIsTheVerifiersDocument: the shared keys give serve the
// document Ratify's Verifier gets in mode ratify (revocation.cacheDir
// aside: serve caches in memory), and provider.server and registry reach
// the server section.
func TestProviderConfigIsTheVerifiersDocument(t *testing.T) {
	gk := gatekeeperPKI(t)
	for _, ex := range []string{"multi-team.yaml", "trust-policy-doc.yaml", "govcloud.yaml"} {
		vals := readValues(t, filepath.Join(examplesDir, ex))
		_, ratifyObjs := mustInstall(t, vals, verifierAPI)
		want := verifierParams(t, ratifyObjs)
		if rev, ok := want["revocation"].(map[string]any); ok {
			delete(rev, "cacheDir")
			if len(rev) == 0 {
				delete(want, "revocation")
			}
		}
		pv := providerValues(t, gk.CAPEM)
		delete(pv, "trustedSigningProfiles")
		mergeValues(pv, readValues(t, filepath.Join(examplesDir, ex)))
		_, objs := mustInstall(t, pv)
		got := serveDocument(t, objs)
		delete(got, "server")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: serve's document\n%s\nthe Verifier's\n%s", ex, toYAML(got), toYAML(want))
		}
	}

	_, objs := mustInstall(t, providerValues(t, gk.CAPEM, `
provider:
  server: {verifyTimeout: 2s, mutateTimeout: 1200ms, maxKeys: 64, maxBodyBytes: 65536, maxConcurrency: 8, outcomeCache: {ttl: 1m, size: 100}}
  registry: {dockerConfigSecrets: [regcred, other], plainHTTP: true}`))
	doc := serveDocument(t, objs)
	wantServer := map[string]any{
		"address": ":6001", "healthAddress": ":9099",
		"tls":           map[string]any{"certFile": "/etc/awssigner/tls/tls.crt", "keyFile": "/etc/awssigner/tls/tls.key", "clientCAFile": "/etc/awssigner/gatekeeper-ca/ca.crt"},
		"verifyTimeout": "2s", "mutateTimeout": "1200ms", "maxKeys": float64(64), "maxBodyBytes": float64(65536), "maxConcurrency": float64(8),
		"outcomeCache": map[string]any{"ttl": "1m", "size": float64(100)},
		"registry":     map[string]any{"plainHTTP": true, "dockerConfigFiles": []any{"/etc/awssigner/registry/0/.dockerconfigjson", "/etc/awssigner/registry/1/.dockerconfigjson"}},
	}
	if !reflect.DeepEqual(doc["server"], wantServer) {
		t.Errorf("server section\n%s\nwant\n%s", toYAML(doc["server"]), toYAML(wantServer))
	}
	cfg, err := config.Decode([]byte(toYAML(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.VerifyTimeout != 2*time.Second || cfg.Server.MaxKeys != 64 || !cfg.Server.PlainHTTP || len(cfg.Server.DockerConfigFiles) != 2 {
		t.Errorf("resolved server section %+v", cfg.Server)
	}
	dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))
	mounts := map[string]string{}
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for i, s := range []string{"regcred", "other"} {
		name := fmt.Sprintf("registry-%d", i)
		var vol *corev1.Volume
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == name {
				vol = &v
			}
		}
		if vol == nil || vol.Secret == nil || vol.Secret.SecretName != s || mounts[name]+"/.dockerconfigjson" != cfg.Server.DockerConfigFiles[i] {
			t.Errorf("registry Secret %s: volume %+v mounted at %q, configuration %s", s, vol, mounts[name], cfg.Server.DockerConfigFiles[i])
		}
	}
}

// serveDocument returns the decoded config.yaml of the configuration
// ConfigMap.
func serveDocument(t *testing.T, objs []rendered) map[string]any {
	t.Helper()
	raw, _, _ := unstructured.NestedString(one(t, objs, "ConfigMap", "ratify-aws-signer-config").Object, "data", "config.yaml")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestProviderNetworkPolicy: the provider port admits Gatekeeper's
// namespace only; the health port anyone (or metricsFrom).
func TestProviderNetworkPolicy(t *testing.T) {
	gk := gatekeeperPKI(t)
	_, objs := mustInstall(t, providerValues(t, gk.CAPEM, "provider: {gatekeeper: {namespace: gk}}\npolicies: {constraints: {excludedNamespaces: [kube-system, gatekeeper-system, gk]}}"))
	np := typed[networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy", "ratify-aws-signer"))
	dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))
	if !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("NetworkPolicy selects %v, the provider pods are %v", np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy spec %+v", np.Spec)
	}
	gkRule, health := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if len(gkRule.From) != 1 || gkRule.From[0].PodSelector != nil || !reflect.DeepEqual(gkRule.From[0].NamespaceSelector.MatchLabels, map[string]string{"kubernetes.io/metadata.name": "gk"}) {
		t.Errorf("provider port peers %+v", gkRule.From)
	}
	if len(gkRule.Ports) != 1 || *gkRule.Ports[0].Port != intstr.FromString("https") {
		t.Errorf("provider port rule ports %+v", gkRule.Ports)
	}
	if len(health.From) != 0 || len(health.Ports) != 1 || *health.Ports[0].Port != intstr.FromString("health") {
		t.Errorf("health rule %+v", health)
	}

	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, `provider: {networkPolicy: {gatekeeperPodLabels: {gatekeeper.sh/system: "yes"}, metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}}`))
	np = typed[networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy", "ratify-aws-signer"))
	if p := np.Spec.Ingress[0].From[0].PodSelector; p == nil || p.MatchLabels["gatekeeper.sh/system"] != "yes" {
		t.Errorf("gatekeeperPodLabels not applied: %+v", np.Spec.Ingress[0].From)
	}
	if f := np.Spec.Ingress[1].From; len(f) != 1 || f[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("metricsFrom not applied: %+v", f)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}

	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {networkPolicy: {enabled: false}, podDisruptionBudget: {enabled: false}, serviceAccount: {create: false, name: existing}}"))
	if len(ofKind(objs, "NetworkPolicy"))+len(ofKind(objs, "PodDisruptionBudget")) != 0 {
		t.Error("NetworkPolicy or PodDisruptionBudget rendered while disabled")
	}
	if n := len(ofKind(objs, "ServiceAccount")); n != 1 { // the constraints Job's only
		t.Errorf("%d ServiceAccounts with serviceAccount.create=false", n)
	}
	if sa := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer")).Spec.Template.Spec.ServiceAccountName; sa != "existing" {
		t.Errorf("serviceAccountName %q", sa)
	}
}

// TestProviderServiceAccountAndMonitor: IRSA's annotation on the
// ServiceAccount; the optional ServiceMonitor scrapes the Service's metrics
// port (validated against the Prometheus Operator's CRD).
func TestProviderServiceAccountAndMonitor(t *testing.T) {
	gk := gatekeeperPKI(t)
	_, objs := mustInstall(t, providerValues(t, gk.CAPEM, `
provider:
  serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/awssigner-provider"}}
  serviceMonitor: {enabled: true, labels: {release: prometheus}}`))
	sa := one(t, objs, "ServiceAccount", "ratify-aws-signer")
	if a := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]; a != "arn:aws:iam::111122223333:role/awssigner-provider" {
		t.Errorf("IRSA annotation %q", a)
	}
	sm := one(t, objs, "ServiceMonitor", "ratify-aws-signer")
	svc := typed[corev1.Service](t, one(t, objs, "Service", "ratify-aws-signer"))
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sel, svc.Labels)
		}
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	port := eps[0].(map[string]any)["port"]
	var svcPorts []string
	for _, p := range svc.Spec.Ports {
		svcPorts = append(svcPorts, p.Name)
		if p.Name == port && p.TargetPort != intstr.FromString("health") {
			t.Errorf("metrics port targets %v, not the health port", p.TargetPort)
		}
	}
	if !slices.Contains(svcPorts, port.(string)) || eps[0].(map[string]any)["path"] != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %v, Service ports %v", eps[0], svcPorts)
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

// TestProviderGatekeeperObjects: the Providers' URLs and CA, the Assigns'
// locations; both pass Gatekeeper's admission checks (validateRelease).
func TestProviderGatekeeperObjects(t *testing.T) {
	gk := gatekeeperPKI(t)
	_, objs := mustInstall(t, providerValues(t, gk.CAPEM))
	ca := secretPEM(t, objs, "ratify-aws-signer-ca", "tls.crt")
	for name, want := range map[string]struct {
		url     string
		timeout float64
	}{
		"awssigner-verify": {"https://ratify-aws-signer.gatekeeper-system:6001/ratify/gatekeeper/v2/verify", 3},
		"awssigner-mutate": {"https://ratify-aws-signer.gatekeeper-system:6001/ratify/gatekeeper/v2/mutate", 2},
	} {
		p := one(t, objs, "Provider", name)
		url, _, _ := unstructured.NestedString(p.Object, "spec", "url")
		timeout, _, _ := unstructured.NestedFieldNoCopy(p.Object, "spec", "timeout")
		bundle, _, _ := unstructured.NestedString(p.Object, "spec", "caBundle")
		b, err := base64.StdEncoding.DecodeString(bundle)
		if url != want.url || timeout != want.timeout || err != nil || string(b) != string(ca) {
			t.Errorf("Provider %s: url %s timeout %v caBundle is the chart's CA: %v (%v)", name, url, timeout, string(b) == string(ca), err)
		}
	}

	// Every container list of Pods, pod templates and CronJobs.
	locations := map[string][]string{}
	for _, r := range ofKind(objs, "Assign") {
		loc, _, _ := unstructured.NestedString(r.obj.Object, "spec", "location")
		applyTo, _, _ := unstructured.NestedSlice(r.obj.Object, "spec", "applyTo")
		for _, a := range applyTo {
			for _, k := range a.(map[string]any)["kinds"].([]any) {
				locations[k.(string)] = append(locations[k.(string)], loc)
			}
		}
		ed, _, _ := unstructured.NestedMap(r.obj.Object, "spec", "parameters", "assign", "externalData")
		if want := map[string]any{"provider": "awssigner-mutate", "dataSource": "ValueAtLocation", "failurePolicy": "Ignore"}; !reflect.DeepEqual(ed, want) {
			t.Errorf("%s externalData %v, want %v", r.obj.GetName(), ed, want)
		}
		excluded, _, _ := unstructured.NestedStringSlice(r.obj.Object, "spec", "match", "excludedNamespaces")
		if !slices.Contains(excluded, releaseNamespace) || !slices.Contains(excluded, "kube-system") {
			t.Errorf("%s excludes %v", r.obj.GetName(), excluded)
		}
	}
	tmpl := []string{"spec.template.spec.containers[name:*].image", "spec.template.spec.initContainers[name:*].image"}
	want := map[string][]string{
		"Pod":     {"spec.containers[name:*].image", "spec.initContainers[name:*].image", "spec.ephemeralContainers[name:*].image"},
		"CronJob": {"spec.jobTemplate.spec.template.spec.containers[name:*].image", "spec.jobTemplate.spec.template.spec.initContainers[name:*].image"},
	}
	for _, k := range []string{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"} {
		want[k] = tmpl
	}
	if !reflect.DeepEqual(locations, want) {
		t.Errorf("Assign locations\n%v\nwant\n%v", locations, want)
	}

	// Pods only; no mutation at all.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {mutation: {podTemplates: false}}"))
	if n := len(ofKind(objs, "Assign")); n != 3 {
		t.Errorf("podTemplates=false: %d Assigns, want the Pods' 3", n)
	}
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {mutation: {enabled: false}}"))
	if n := len(ofKind(objs, "Assign")); n != 0 || len(ofKind(objs, "Provider")) != 1 {
		t.Errorf("mutation disabled: %d Assigns, %d Providers", n, len(ofKind(objs, "Provider")))
	}

	// provider.url names an out-of-cluster serve: the Providers call it and
	// the chart's certificate covers its host.
	_, objs = mustInstall(t, providerValues(t, gk.CAPEM, "provider: {url: 'https://127.0.0.1:18443'}"))
	if u, _, _ := unstructured.NestedString(one(t, objs, "Provider", "awssigner-verify").Object, "spec", "url"); u != "https://127.0.0.1:18443/ratify/gatekeeper/v2/verify" {
		t.Errorf("verify URL %s", u)
	}
	leaf := parseCert(t, secretPEM(t, objs, "ratify-aws-signer-tls", "tls.crt"))
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("serving certificate IPs %v", leaf.IPAddresses)
	}
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
}

func secretPEM(t *testing.T, objs []rendered, name, key string) []byte {
	t.Helper()
	s := typed[corev1.Secret](t, one(t, objs, "Secret", name))
	b, ok := s.Data[key]
	if !ok {
		t.Fatalf("Secret %s has no %s", name, key)
	}
	return b
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", pemBytes)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProviderTLSModes: how each tls.mode makes the serving certificate,
// and that the Providers trust exactly the CA that issued it.
func TestProviderTLSModes(t *testing.T) {
	gk := gatekeeperPKI(t)
	svcNames := []string{"ratify-aws-signer", "ratify-aws-signer.gatekeeper-system", "ratify-aws-signer.gatekeeper-system.svc", "ratify-aws-signer.gatekeeper-system.svc.cluster.local"}
	providerCA := func(objs []rendered) string {
		b, _, _ := unstructured.NestedString(one(t, objs, "Provider", "awssigner-verify").Object, "spec", "caBundle")
		pemBytes, _ := base64.StdEncoding.DecodeString(b)
		return string(pemBytes)
	}
	tlsVolume := func(objs []rendered) string {
		dep := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "ratify-aws-signer"))
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == "tls" {
				return v.Secret.SecretName
			}
		}
		return ""
	}

	t.Run("generated", func(t *testing.T) {
		// auto without cert-manager, and generated explicitly.
		for _, vals := range []map[string]any{providerValues(t, gk.CAPEM), providerValues(t, gk.CAPEM, "provider: {tls: {mode: generated}}")} {
			_, objs := mustInstall(t, vals, certManagerAPIs[:1]...)
			caPEM := secretPEM(t, objs, "ratify-aws-signer-ca", "tls.crt")
			ca := parseCert(t, caPEM)
			if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA || ca.NotAfter.Before(time.Now().AddDate(9, 11, 0)) {
				t.Errorf("CA: IsCA %v, %v, until %v", ca.IsCA, ca.PublicKeyAlgorithm, ca.NotAfter)
			}
			leafPEM := secretPEM(t, objs, "ratify-aws-signer-tls", "tls.crt")
			if _, err := tls.X509KeyPair(leafPEM, secretPEM(t, objs, "ratify-aws-signer-tls", "tls.key")); err != nil {
				t.Error(err)
			}
			leaf := parseCert(t, leafPEM)
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			for _, n := range svcNames {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					t.Errorf("serving certificate for %s: %v", n, err)
				}
			}
			if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
				t.Errorf("serving certificate valid for %v, want 365 days", d)
			}
			if providerCA(objs) != string(caPEM) {
				t.Error("the Providers' caBundle is not the CA that issued the serving certificate")
			}
			if tlsVolume(objs) != "ratify-aws-signer-tls" {
				t.Errorf("pod mounts %s", tlsVolume(objs))
			}
			if len(ofKind(objs, "Certificate")) != 0 {
				t.Error("a Certificate without cert-manager")
			}
			for _, p := range validateRelease(t, objs) {
				t.Error(p)
			}
		}
	})

	t.Run("certManager", func(t *testing.T) {
		for _, c := range []struct {
			vals map[string]any
			apis []string
		}{{providerValues(t, gk.CAPEM), certManagerAPIs}, {providerValues(t, gk.CAPEM, "provider: {tls: {mode: certManager}}"), nil}} {
			_, objs := mustInstall(t, c.vals, c.apis...)
			caPEM := secretPEM(t, objs, "ratify-aws-signer-ca", "tls.crt")
			if _, err := tls.X509KeyPair(caPEM, secretPEM(t, objs, "ratify-aws-signer-ca", "tls.key")); err != nil {
				t.Errorf("the CA Issuer's Secret: %v", err)
			}
			iss := one(t, objs, "Issuer", "ratify-aws-signer-ca")
			if s, _, _ := unstructured.NestedString(iss.Object, "spec", "ca", "secretName"); s != "ratify-aws-signer-ca" {
				t.Errorf("Issuer CA secret %q", s)
			}
			cert := one(t, objs, "Certificate", "ratify-aws-signer")
			spec, _, _ := unstructured.NestedMap(cert.Object, "spec")
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
			if spec["secretName"] != "ratify-aws-signer-tls-cert-manager" || !reflect.DeepEqual(dns, svcNames) ||
				!reflect.DeepEqual(ref, map[string]string{"group": "cert-manager.io", "kind": "Issuer", "name": "ratify-aws-signer-ca"}) ||
				spec["duration"] != "2160h" || spec["renewBefore"] != "720h" {
				t.Errorf("Certificate spec %v", spec)
			}
			if tlsVolume(objs) != "ratify-aws-signer-tls-cert-manager" {
				t.Errorf("pod mounts %s, cert-manager writes ratify-aws-signer-tls-cert-manager", tlsVolume(objs))
			}
			if len(ofKind(objs, "Secret")) != 1 {
				t.Errorf("Secrets %v: the serving certificate is cert-manager's", ofKind(objs, "Secret"))
			}
			if providerCA(objs) != string(caPEM) {
				t.Error("the Providers' caBundle is not the Issuer's CA")
			}
			for _, p := range validateRelease(t, objs) {
				t.Error(p)
			}
		}
	})

	t.Run("secret", func(t *testing.T) {
		own := gatekeeperPKI(t) // any CA: the user's
		for _, c := range []struct{ vals, secret string }{
			{"provider: {tls: {mode: secret}}", "ratify-aws-signer-tls"},
			{"provider: {tls: {mode: secret, secretName: my-serving-cert}}", "my-serving-cert"},
		} {
			vals := providerValues(t, gk.CAPEM, c.vals)
			mergeValues(vals, map[string]any{"provider": map[string]any{"tls": map[string]any{"caBundle": string(own.CAPEM)}}})
			_, objs := mustInstall(t, vals, certManagerAPIs...)
			if n := len(ofKind(objs, "Secret")) + len(ofKind(objs, "Certificate")) + len(ofKind(objs, "Issuer")); n != 0 {
				t.Errorf("mode secret generates %d certificate objects", n)
			}
			if providerCA(objs) != string(own.CAPEM) {
				t.Error("the Providers' caBundle is not provider.tls.caBundle")
			}
			if tlsVolume(objs) != c.secret {
				t.Errorf("pod mounts %s, want %s", tlsVolume(objs), c.secret)
			}
			for _, p := range validateRelease(t, objs) {
				t.Error(p)
			}
		}
	})
}

// TestProviderChecks: the mistakes of mode provider the schema cannot see
// are refused with what to do.
func TestProviderChecks(t *testing.T) {
	gk := gatekeeperPKI(t)
	for _, c := range []struct {
		vals map[string]any
		want string
	}{
		{providerValues(t, nil), "provider mode needs the CA of Gatekeeper's client certificate"},
		{providerValues(t, nil), "--set-file provider.gatekeeper.caBundle=gatekeeper-ca.crt"},
		{providerValues(t, gk.CAPEM, "provider: {tls: {mode: secret}}"), "provider.tls.mode is secret but provider.tls.caBundle is empty"},
		{providerValues(t, gk.CAPEM, "provider: {tls: {mode: generated}}", "provider: {tls: {caBundle: "+jsonString(string(gk.CAPEM))+"}}"), "provider.tls.caBundle is only used with provider.tls.mode=secret"},
		{providerValues(t, gk.CAPEM, "provider: {tls: {validityDays: 30, renewBeforeDays: 30}}"), "renewBeforeDays (30) must be less than provider.tls.validityDays (30)"},
		{providerValues(t, gk.CAPEM, "plugin: {source: {artifact: r.example.com/p/awssigner:1}}"), "plugin.source.artifact is Ratify's plugin download"},
		{providerValues(t, gk.CAPEM, "policies: {constraints: {excludedNamespaces: [kube-system]}}"), "does not cover the release namespace gatekeeper-system"},
		{providerValues(t, gk.CAPEM, "policies: {constraints: {exemptImages: [registry.example.com/app:v1]}}"), "names a tag; the chart's tag-to-digest mutation"},
		{providerValues(t, gk.CAPEM, "revocation: {enabled: false}\npolicies: {constraints: {requireRevocationCheck: true}}"), "the provider never asks AWS Signer"},
		{providerValues(t, gk.CAPEM, "verificationLevel: audit"), "enforcementAction is deny but verificationLevel is audit"},
		{providerValues(t, gk.CAPEM, "policies: {constraints: {namespaceRestrictions: [{namespaces: [team], allowedSigningProfiles: ["+teamARN+"]}]}}"), "so the provider (awssigner serve) would refuse every signature"},
		{values(t, "mode: provider"), "no trusted signing profile"},
	} {
		_, err := install(t, c.vals)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v\nwant an error containing %q", err, c.want)
		}
	}
	// Excluded by a wildcard is excluded.
	if _, err := install(t, providerValues(t, gk.CAPEM, "policies: {constraints: {excludedNamespaces: [kube-system, 'gatekeeper-*']}}")); err != nil {
		t.Error(err)
	}
}

// TestProviderSchema: every key under provider is known to the schema,
// unknown keys and bad values are refused.
func TestProviderSchema(t *testing.T) {
	gk := gatekeeperPKI(t)
	for _, c := range []struct{ vals, want string }{
		{"mode: gatekeeper", "at '/mode': value must be one of 'ratify', 'provider'"},
		{"provider: {replica: 3}", "at '/provider': additional properties 'replica' not allowed"},
		{"provider: {tls: {mode: selfSigned}}", "at '/provider/tls/mode': value must be one of"},
		{"provider: {url: 'http://awssigner.example.com'}", "at '/provider/url'"},
		{"provider: {url: 'https://awssigner.example.com/ratify'}", "at '/provider/url'"},
		{"provider: {image: {digest: 'sha256:abc'}}", "at '/provider/image/digest'"},
		{"provider: {server: {address: ':7001'}}", "at '/provider/server': additional properties 'address' not allowed"},
		{"provider: {server: {verifyTimeout: 2}}", "at '/provider/server/verifyTimeout': got number, want string"},
		{"provider: {server: {maxKeys: 5000}}", "at '/provider/server/maxKeys'"},
		{"provider: {gatekeeper: {verifyTimeoutSeconds: 0}}", "at '/provider/gatekeeper/verifyTimeoutSeconds'"},
		{"provider: {gatekeeper: {caBundle: 'not a certificate'}}", "at '/provider/gatekeeper/caBundle'"},
		{"provider: {mutation: {excludedNamespaces: [a/b]}}", "at '/provider/mutation/excludedNamespaces/0'"},
		{"provider: {logLevel: verbose}", "at '/provider/logLevel'"},
		{"provider: {registry: {dockerConfigSecrets: [Reg_Cred]}}", "at '/provider/registry/dockerConfigSecrets/0'"},
	} {
		_, err := install(t, providerValues(t, gk.CAPEM, c.vals))
		if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v\nwant a schema error containing %q", c.vals, err, c.want)
		}
	}
	// Every default key of provider is in the schema (the README test also
	// holds every key to its row).
	paths := schemaPaths(t)
	var missing []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			if !paths[p] {
				missing = append(missing, p)
			}
			if sub, ok := v.(map[string]any); ok && k != "resources" {
				walk(p+".", sub)
			}
		}
	}
	walk("", readValues(t, filepath.Join(chartDir, "values.yaml")))
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("values.yaml keys the schema does not define: %v", missing)
	}
}
