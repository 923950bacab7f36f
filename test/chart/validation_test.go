package chart

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestValidationCatchesMistakes proves the checks of validateRelease are
// not vacuous: each object below holds one mistake a template could make,
// and the validation must name it.
func TestValidationCatchesMistakes(t *testing.T) {
	_, good := mustInstall(t, values(t, "trustedSigningProfiles: ["+prodARN+"]"), verifierAPI, constraintAPI)
	template := ofKind(good, "ConstraintTemplate")[0]

	cases := []struct {
		name string
		obj  string
		want string
	}{
		{
			name: "Verifier spec.type (pruned by Ratify's CRD)",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: v}
spec: {name: awssigner, type: awssigner, artifactTypes: a, parameters: {trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: skip}}]}}}`,
			want: "spec.type: unknown field, the API server would drop it",
		},
		{
			name: "Verifier without artifactTypes",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: v}
spec: {name: awssigner, parameters: {trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: skip}}]}}}`,
			want: "spec.artifactTypes: Required value",
		},
		{
			name: "Verifier parameters the plugin refuses",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: v}
spec: {name: awssigner, artifactTypes: a, parameters: {trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: strict}, trustStores: ["signingAuthority:aws-signer-ts"], trustedIdentities: ["` + prodARN + `"]}]}, revocation: {timout: 2s}}}`,
			want: "the plugin refuses spec.parameters: revocation.timout",
		},
		{
			name: "Verifier with a bad name",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: Verifier_AWS}
spec: {name: awssigner, artifactTypes: a}`,
			want: "metadata.name: Invalid value",
		},
		{
			name: "source.artifact of the wrong type",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: v}
spec: {name: awssigner, artifactTypes: a, source: {artifact: [x]}, parameters: {trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: skip}}]}}}`,
			want: "spec.source.artifact: Invalid value",
		},
		{
			name: "Constraint parameter of the wrong type",
			obj: `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: c}
spec: {parameters: {allowedSigningProfiles: "` + prodARN + `"}}`,
			want: "allowedSigningProfiles in body must be of type array",
		},
		{
			name: "Constraint parameter the template does not declare",
			obj: `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: c}
spec: {parameters: {allowedProfiles: []}}`,
			want: "allowedProfiles: unknown field",
		},
		{
			name: "Constraint match field misspelled",
			obj: `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: c}
spec: {match: {excludeNamespaces: [kube-system]}}`,
			want: "spec.match.excludeNamespaces",
		},
		{
			name: "Constraint enforcementAction unknown",
			obj: `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AWSSignerVerifiedImages
metadata: {name: c}
spec: {enforcementAction: block}`,
			want: `"block" is not within the supported list`,
		},
		{
			name: "kind without a schema",
			obj: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: c}`,
			want: "no schema known for example.com/v1, Kind=Widget",
		},
		{
			name: "Kubernetes kind with an unknown field",
			obj: `
apiVersion: batch/v1
kind: Job
metadata: {name: j, namespace: gatekeeper-system}
spec: {template: {spec: {containers: [{name: c, image: i, arg: [x]}]}}}`,
			want: "not a valid Job",
		},
		{
			name: "namespaced Kubernetes kind without a namespace",
			obj: `
apiVersion: v1
kind: ConfigMap
metadata: {name: c}`,
			want: "metadata.namespace: Required value",
		},
		{
			name: "cluster-scoped object with a namespace",
			obj: `
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: v, namespace: gatekeeper-system}
spec: {name: awssigner, artifactTypes: a, parameters: {trustPolicyDoc: {version: "1.0", trustPolicies: [{name: p, registryScopes: ["*"], signatureVerification: {level: skip}}]}}}`,
			want: "cluster-scoped kind with metadata.namespace",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(c.obj), &obj); err != nil {
				t.Fatal(err)
			}
			objs := []rendered{template, {source: "test", obj: &unstructured.Unstructured{Object: obj}}}
			problems := validateRelease(t, objs)
			joined := strings.Join(problems, "\n")
			if !strings.Contains(joined, c.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", joined, c.want)
			}
		})
	}

	// And the chart's own objects pass.
	for _, p := range validateRelease(t, good) {
		t.Error(p)
	}
}
