package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	constraintclient "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/crds"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/externaldata"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/target"
	"github.com/open-policy-agent/gatekeeper/v3/pkg/util"
	"golang.org/x/mod/modfile"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubescheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
)

// Pinned modules whose CRDs define what the chart renders. Their versions
// come from this module's go.mod (Ratify through the root module).
const (
	ratifyModule     = "github.com/ratify-project/ratify"
	gatekeeperModule = "github.com/open-policy-agent/gatekeeper/v3"
)

// Pinned modules outside this module's build list whose CRDs define what
// mode provider renders: cert-manager's Issuer and Certificate, the
// Prometheus Operator's ServiceMonitor. Downloaded through the module
// proxy (checked against the checksum database) at these versions.
const (
	certManagerModule        = "github.com/cert-manager/cert-manager@v1.21.2"
	prometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// crdVersion is one served version of a CRD, ready to validate objects the
// way the API server does.
type crdVersion struct {
	source     string // file the CRD came from
	namespaced bool
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
}

var (
	crdsOnce sync.Once
	crdsByGV map[schema.GroupVersionKind]*crdVersion
	crdsErr  error
)

// knownCRDs returns the served versions of Ratify's and Gatekeeper's CRDs,
// read from the charts inside their pinned modules.
func knownCRDs(t *testing.T) map[schema.GroupVersionKind]*crdVersion {
	t.Helper()
	crdsOnce.Do(func() {
		crdsByGV = map[schema.GroupVersionKind]*crdVersion{}
		for _, src := range []struct{ module, glob string }{
			{ratifyModule, "charts/ratify/crds/*.yaml"},
			{gatekeeperModule, "charts/gatekeeper/crds/*.yaml"},
			{certManagerModule, "deploy/crds/cert-manager.io_*.yaml"},
			{prometheusOperatorModule, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
			{kyvernoModule(), "config/crds/kyverno/kyverno.io_*.yaml"},
		} {
			var dir string
			var err error
			if strings.Contains(src.module, "@") {
				dir, err = downloadedModuleDir(src.module)
			} else {
				dir, err = moduleDir(src.module)
			}
			if err != nil {
				crdsErr = err
				return
			}
			files, _ := filepath.Glob(filepath.Join(dir, src.glob))
			if len(files) == 0 {
				crdsErr = fmt.Errorf("no CRDs in %s", filepath.Join(dir, src.glob))
				return
			}
			for _, f := range files {
				if err := addCRDFile(f); err != nil {
					crdsErr = err
					return
				}
			}
		}
	})
	if crdsErr != nil {
		t.Fatal(crdsErr)
	}
	return crdsByGV
}

func addCRDFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd apiextv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return fmt.Errorf("%s %s: %w", path, v.Name, err)
		}
		cv, err := newCRDVersion(path, internal)
		if err != nil {
			return fmt.Errorf("%s %s: %w", path, v.Name, err)
		}
		cv.namespaced = crd.Spec.Scope == apiextv1.NamespaceScoped
		crdsByGV[schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}] = cv
	}
	return nil
}

func newCRDVersion(source string, internal *apiextensions.JSONSchemaProps) (*crdVersion, error) {
	structural, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, fmt.Errorf("schema is not structural: %w", err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &crdVersion{source: source, internal: internal, structural: structural, validator: validator}, nil
}

// check validates obj as the API server would on create: defaults, schema
// validation, and the fields pruning would silently drop (reported as
// errors: a pruned field is a setting that never reaches its reader).
// isRoot says obj is a whole resource (apiVersion, kind and metadata are
// kept by pruning).
func (c *crdVersion) check(obj map[string]any, isRoot bool) []string {
	obj = runtime.DeepCopyJSON(obj)
	structuraldefaulting.Default(obj, c.structural)
	var problems []string
	for _, e := range apiservervalidation.ValidateCustomResource(nil, obj, c.validator) {
		problems = append(problems, e.Error())
	}
	for _, p := range structuralpruning.PruneWithOptions(obj, c.structural, isRoot, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		problems = append(problems, fmt.Sprintf("%s: unknown field, the API server would drop it", p))
	}
	return problems
}

// moduleDir returns the directory of a module of this module's build list,
// downloading it through the module proxy when it is not cached yet.
func moduleDir(path string) (string, error) {
	var m struct {
		Dir     string
		Version string
	}
	out, err := goCommand("list", "-m", "-json", path)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go list -m -json %s: %w", path, err)
	}
	if m.Dir != "" {
		return m.Dir, nil
	}
	if out, err = goCommand("mod", "download", "-json", path+"@"+m.Version); err != nil {
		return "", err
	}
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: no directory (%v)", path, m.Version, err)
	}
	return m.Dir, nil
}

// kyvernoModule is Kyverno's module at the version tools/kyverno pins
// (path@version), whose CRDs define the ClusterPolicy mode provider renders
// with provider.kyverno.enabled.
func kyvernoModule() string {
	const path = "github.com/kyverno/kyverno"
	file := filepath.Join(repoRoot, "tools", "kyverno", "go.mod")
	data, err := os.ReadFile(file)
	if err != nil {
		return path + "@(" + err.Error() + ")"
	}
	mf, err := modfile.Parse(file, data, nil)
	if err != nil {
		return path + "@(" + err.Error() + ")"
	}
	for _, r := range mf.Require {
		if r.Mod.Path == path {
			return path + "@" + r.Mod.Version
		}
	}
	return path + "@(not required by " + file + ")"
}

// downloadedModuleDir returns the directory of a module at a pinned
// version (path@version) that is not in this module's build list,
// downloading it through the module proxy when it is not cached (go.mod
// and go.sum are not changed).
func downloadedModuleDir(pathAtVersion string) (string, error) {
	out, err := goCommand("mod", "download", "-json", pathAtVersion)
	if err != nil {
		return "", err
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no directory (%v %s)", pathAtVersion, err, m.Error)
	}
	return m.Dir, nil
}

func goCommand(args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// rendered is one object of a rendered release.
type rendered struct {
	source string // template file
	obj    *unstructured.Unstructured
}

func (r rendered) String() string {
	return fmt.Sprintf("%s %s (%s)", r.obj.GetKind(), r.obj.GetName(), r.source)
}

// namespacedBuiltins are the namespaced Kubernetes kinds the chart renders.
var namespacedBuiltins = map[string]bool{"ConfigMap": true, "ServiceAccount": true, "Job": true,
	"Secret": true, "Service": true, "Deployment": true, "PodDisruptionBudget": true, "NetworkPolicy": true, "RoleBinding": true}

// validateRelease checks every rendered object against its schema and
// returns the problems, each naming its object. Kinds without a known
// schema are problems too: the chart only renders Ratify and Gatekeeper
// resources.
func validateRelease(t *testing.T, objs []rendered) []string {
	t.Helper()
	known := knownCRDs(t)
	var problems []string
	add := func(r rendered, format string, args ...any) {
		problems = append(problems, r.String()+": "+fmt.Sprintf(format, args...))
	}

	// ConstraintTemplates first: they define the Constraints' schemas.
	gk, err := newGatekeeperEngine()
	if err != nil {
		t.Fatal(err)
	}
	templateParams := map[string]*crdVersion{} // constraint kind -> parameters schema
	for _, r := range objs {
		if r.obj.GetKind() != "ConstraintTemplate" {
			continue
		}
		kind, params, err := gk.addTemplate(r.obj.DeepCopy())
		if err != nil {
			add(r, "Gatekeeper refuses the template: %v", err)
			continue
		}
		templateParams[kind] = params
	}

	for _, r := range objs {
		gvk := r.obj.GroupVersionKind()
		namespaced := namespacedBuiltins[gvk.Kind]
		if c, ok := known[gvk]; ok {
			namespaced = c.namespaced
		}
		for _, e := range apimachineryvalidation.ValidateObjectMetaAccessor(r.obj, namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
			add(r, "%v", e)
		}
		if gvk.Group == "constraints.gatekeeper.sh" {
			params, ok := templateParams[gvk.Kind]
			if !ok {
				add(r, "no ConstraintTemplate for kind %s in the release", gvk.Kind)
				continue
			}
			// The parameters alone, against the template's openAPIV3Schema.
			p, _, _ := unstructured.NestedMap(r.obj.Object, "spec", "parameters")
			if p == nil {
				p = map[string]any{}
			}
			for _, msg := range params.check(p, false) {
				add(r, "spec.parameters: %s", msg)
			}
			// The whole Constraint as Gatekeeper admits it: the CRD it
			// generates (match schema, enforcementAction, parameters).
			if err := gk.addConstraint(r.obj.DeepCopy()); err != nil {
				add(r, "Gatekeeper refuses the constraint: %v", err)
			}
			continue
		}
		c, ok := known[gvk]
		if !ok {
			// Kubernetes' own kinds (the constraints Job, its RBAC and
			// ConfigMap): strict conversion to the typed object, as the
			// API server decodes it (an unknown or mistyped field fails).
			typed, err := kubescheme.Scheme.New(gvk)
			if err != nil {
				add(r, "no schema known for %s", gvk)
				continue
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(r.obj.Object, typed, true); err != nil {
				add(r, "not a valid %s: %v", gvk.Kind, err)
			}
			continue
		}
		if !c.namespaced && r.obj.GetNamespace() != "" {
			add(r, "cluster-scoped kind with metadata.namespace %q", r.obj.GetNamespace())
		}
		for _, msg := range c.check(r.obj.Object, true) {
			add(r, "%s (schema from %s)", msg, c.source)
		}
		switch gvk.Kind {
		case "Provider":
			// As Gatekeeper's webhook and controller admit it.
			if err := admitProvider(r.obj); err != nil {
				add(r, "Gatekeeper refuses the Provider: %v", err)
			}
		case "Assign":
			if _, err := assignMutator(r.obj); err != nil {
				add(r, "Gatekeeper refuses the Assign: %v", err)
			}
		}
		if gvk.Kind == "Verifier" || gvk.Kind == "NamespacedVerifier" {
			params, _, _ := unstructured.NestedMap(r.obj.Object, "spec", "parameters")
			raw, err := json.Marshal(params)
			if err != nil {
				add(r, "%v", err)
				continue
			}
			if _, err := config.DecodeJSON(raw); err != nil {
				add(r, "the plugin refuses spec.parameters: %v", err)
			}
		}
	}
	return problems
}

// gatekeeperEngine is Gatekeeper's constraint framework as Gatekeeper builds
// it: the Rego driver with external data, the Kubernetes validation target.
type gatekeeperEngine struct {
	client *constraintclient.Client
}

func newGatekeeperEngine() (*gatekeeperEngine, error) {
	drv, err := rego.New(rego.AddExternalDataProviderCache(externaldata.NewCache()))
	if err != nil {
		return nil, err
	}
	c, err := constraintclient.NewClient(
		constraintclient.Targets(&target.K8sValidationTarget{}),
		constraintclient.Driver(drv),
		constraintclient.EnforcementPoints(util.WebhookEnforcementPoint, util.AuditEnforcementPoint),
	)
	if err != nil {
		return nil, err
	}
	return &gatekeeperEngine{client: c}, nil
}

// addTemplate ingests a ConstraintTemplate as Gatekeeper's controller does
// (compiling its Rego) and returns the constraint kind and its parameters
// schema.
func (g *gatekeeperEngine) addTemplate(u *unstructured.Unstructured) (string, *crdVersion, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return "", nil, err
	}
	var ct templatesv1.ConstraintTemplate
	if err := json.Unmarshal(raw, &ct); err != nil {
		return "", nil, err
	}
	vl, err := ct.ToVersionless()
	if err != nil {
		return "", nil, err
	}
	if err := crds.ValidateTargets(vl); err != nil {
		return "", nil, err
	}
	crd, err := g.client.CreateCRD(context.Background(), vl)
	if err != nil {
		return "", nil, err
	}
	if err := crds.ValidateCRD(context.Background(), crd); err != nil {
		return "", nil, fmt.Errorf("the constraint CRD Gatekeeper would create is invalid: %w", err)
	}
	if _, err := g.client.AddTemplate(context.Background(), vl); err != nil {
		return "", nil, err
	}
	v := vl.Spec.CRD.Spec.Validation
	if v == nil || v.OpenAPIV3Schema == nil {
		return "", nil, fmt.Errorf("no spec.crd.spec.validation.openAPIV3Schema")
	}
	params, err := newCRDVersion("ConstraintTemplate "+vl.Name, v.OpenAPIV3Schema)
	if err != nil {
		return "", nil, err
	}
	return vl.Spec.CRD.Spec.Names.Kind, params, nil
}

// addConstraint admits a Constraint as Gatekeeper does: enforcement action,
// the generated CRD's schema (unknown fields included), the target's match
// checks.
func (g *gatekeeperEngine) addConstraint(u *unstructured.Unstructured) error {
	action, _, _ := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	if action == "" {
		action = "deny" // the default of the CRD Gatekeeper generates
	}
	if err := util.ValidateEnforcementAction(util.EnforcementAction(action), u.Object); err != nil {
		return err
	}
	_, err := g.client.AddConstraint(context.Background(), u)
	return err
}
