package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/cli"
)

// The walk-through's variables, as command 1 sets them.
var walkEnv = map[string]string{"AWS_REGION": "us-west-2", "CLUSTER": "my-cluster", "ACCOUNT": "111122223333",
	"PROFILE_ARN": "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod"}

// walkCommands returns the commands of docs/kubernetes.md's walk-through
// (every line of its sh blocks), with the variables expanded, and the
// count the page states.
func walkCommands(t *testing.T) ([]string, int) {
	t.Helper()
	return walkCommandsOf(t, "kubernetes.md")
}

// walkCommandsOf is walkCommands for the page docs/<page>.
func walkCommandsOf(t *testing.T, page string) ([]string, int) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	m := regexp.MustCompile(`\*\*(\d+) commands\*\*`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("docs/%s does not state its number of commands (**N commands**)", page)
	}
	var stated int
	fmt.Sscan(m[1], &stated)
	_, section, ok := strings.Cut(text, "\n## The walk-through\n")
	if !ok {
		t.Fatalf("docs/%s has no \"## The walk-through\" section", page)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	cmds := shCommands(t, section)
	return cmds, stated
}

// shCommands returns every line of the sh blocks of text, with the
// walk-through's variables expanded.
func shCommands(t *testing.T, text string) []string {
	t.Helper()
	var cmds []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
		for _, line := range strings.Split(block[1], "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasSuffix(line, "\\") {
				t.Errorf("continued line %q: keep one command per line so they can be counted", line)
			}
			cmds = append(cmds, os.Expand(line, func(k string) string {
				if v, ok := walkEnv[k]; ok {
					return v
				}
				return "$" + k
			}))
		}
	}
	return cmds
}

// flagValues returns the values of a command's --flag arguments (--set k=v
// and -f f), in order.
func flagValues(cmd, flag string) []string {
	var out []string
	fields := strings.Fields(cmd)
	for i, f := range fields {
		if f == flag && i+1 < len(fields) {
			out = append(out, fields[i+1])
		} else if v, ok := strings.CutPrefix(f, flag+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// commandWith returns the one walk-through command that starts with prefix.
func commandWith(t *testing.T, cmds []string, prefix string) string {
	t.Helper()
	var found []string
	for _, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("walk-through commands starting with %q: %q, want one", prefix, found)
	}
	return found[0]
}

// renderWith renders chartDir (client-only, as `helm install` renders)
// with the command's -f files and --set values, as Helm's CLI merges them.
func renderWith(t *testing.T, chartDir, name, cmd string, apis ...string) *release.Release {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	for _, f := range flagValues(cmd, "-f") {
		for k, v := range readValues(t, filepath.Join(repoRoot, f)) {
			vals[k] = v
		}
	}
	for _, s := range flagValues(cmd, "--set") {
		if err := strvals.ParseInto(strings.ReplaceAll(s, `\.`, `\.`), vals); err != nil {
			t.Fatalf("%s: --set %s: %v", name, s, err)
		}
	}
	inst := action.NewInstall(&action.Configuration{Log: t.Logf})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.ReleaseName = name
	inst.Namespace = flagValues(cmd, "-n")[0]
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.36.0", Major: "1", Minor: "36"}
	inst.APIVersions = apis
	rel, err := inst.RunWithContext(context.Background(), ch, vals)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return rel
}

// TestKubernetesWalkThrough: docs/kubernetes.md's walk-through has the
// number of commands it states, and what can be checked without AWS is:
// the IAM policy it creates, the names the role, Ratify's values and the
// trust policy share, Gatekeeper's and Ratify's charts with its values
// (from the pinned modules), this chart with its values, one image
// references from `make push` and `docker push` to Ratify and the Pods, and
// the awssigner command line it runs.
func TestKubernetesWalkThrough(t *testing.T) {
	cmds, stated := walkCommands(t)
	if len(cmds) != stated {
		t.Errorf("the walk-through has %d commands, the page says %d:\n%s", len(cmds), stated, strings.Join(cmds, "\n"))
	}

	// IAM: the policy document, placeholders replaced, is JSON.
	policy := commandWith(t, cmds, "aws iam create-policy")
	// (variables expanded: the account and region are the placeholders')
	if !strings.Contains(policy, `"$(sed "s/111122223333/111122223333/g; s/us-west-2/us-west-2/g" docs/iam/ratify-awssigner-policy.json)"`) {
		t.Errorf("create-policy does not fill docs/iam/ratify-awssigner-policy.json in: %s", policy)
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "iam", "ratify-awssigner-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(bytes.ReplaceAll(raw, []byte("111122223333"), []byte("444455556666"))) {
		t.Error("the filled-in policy is not JSON")
	}
	policyName := flagValues(policy, "--policy-name")[0]
	sa := commandWith(t, cmds, "eksctl create iamserviceaccount")
	for flag, want := range map[string]string{"--namespace": "gatekeeper-system", "--name": "ratify-admin", "--attach-policy-arn": "arn:aws:iam::111122223333:policy/" + policyName} {
		if got := flagValues(sa, flag); len(got) != 1 || got[0] != want {
			t.Errorf("eksctl create iamserviceaccount %s = %v, want %s", flag, got, want)
		}
	}
	if !strings.Contains(sa, "--role-only") {
		t.Error("eksctl create iamserviceaccount without --role-only would create the service account Ratify's chart creates")
	}
	roleARN := "arn:aws:iam::111122223333:role/" + flagValues(sa, "--role-name")[0]

	// Gatekeeper's chart with its --set values.
	gkDir, err := moduleDir(gatekeeperModule)
	if err != nil {
		t.Fatal(err)
	}
	gk := renderWith(t, filepath.Join(gkDir, "charts", "gatekeeper"), "gatekeeper", commandWith(t, cmds, "helm install gatekeeper"))
	if !strings.Contains(gk.Manifest, "timeoutSeconds: 5") || !strings.Contains(gk.Manifest, "--external-data-provider-response-cache-ttl=10s") {
		t.Error("Gatekeeper rendered without the walk-through's webhook timeout or response cache")
	}

	// The images: Ratify's with the plugin as `make push` names it (the
	// release tool's test checks that name), run by Ratify; the test image
	// pushed, then used by the Pods and signed.
	push := commandWith(t, cmds, "make push")
	var registry string
	for _, f := range strings.Fields(push) {
		if v, ok := strings.CutPrefix(f, "REGISTRY="); ok {
			registry = v
		}
	}
	var chartMeta struct {
		AppVersion string `json:"appVersion"`
	}
	rawChart, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(rawChart, &chartMeta); err != nil {
		t.Fatal(err)
	}
	ratifyImage := registry + "/ratify-awssigner:v1.4.6-awssigner-" + chartMeta.AppVersion
	repos := commandWith(t, cmds, "for r in")
	for _, r := range []string{"awssigner", "ratify-awssigner", "awssigner-plugin"} {
		if !strings.Contains(repos, " "+r+" ") && !strings.Contains(repos, " "+r+";") {
			t.Errorf("the ECR repositories command does not create %s (make push writes it): %s", r, repos)
		}
	}
	rat := commandWith(t, cmds, "helm install ratify ")
	dir, err := moduleDir(ratifyModule)
	if err != nil {
		t.Fatal(err)
	}
	rr := renderWith(t, filepath.Join(dir, "charts", "ratify"), "ratify", rat)
	all := &release.Release{Manifest: rr.Manifest}
	for _, h := range rr.Hooks {
		all.Manifest += "\n---\n# Source: " + h.Path + "\n" + h.Manifest
	}
	objs := objects(t, all)
	dep := find(t, objs, "Deployment", "ratify")
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if got := containers[0].(map[string]any)["image"]; got != ratifyImage {
		t.Errorf("Ratify runs %v, `make push` writes %s", got, ratifyImage)
	}
	if a := find(t, objs, "ServiceAccount", "ratify-admin").GetAnnotations()["eks.amazonaws.com/role-arn"]; a != roleARN {
		t.Errorf("ratify-admin role-arn %q, eksctl creates %s", a, roleARN)
	}
	image := strings.TrimPrefix(commandWith(t, cmds, "docker push "), "docker push ")
	if !strings.HasSuffix(commandWith(t, cmds, "docker tag "), " "+image) || !strings.HasPrefix(image, registry+"/") {
		t.Errorf("the test image %s is not the one tagged, or not in the repositories created", image)
	}
	for _, c := range cmds {
		if strings.HasPrefix(c, "kubectl run ") || strings.HasPrefix(c, "bin/awssigner sign ") {
			if !strings.Contains(c, " "+image) && !strings.Contains(c, "="+image) {
				t.Errorf("%q does not use the test image the walk-through pushes (%s)", c, image)
			}
		}
	}

	// This chart with its --set values: the NamespacedVerifier, one
	// Constraint (applied by the hook Job).
	ours := commandWith(t, cmds, "helm install ratify-aws-signer")
	rel := renderWith(t, chartDir, "ratify-aws-signer", ours, verifierAPI)
	objs = objects(t, rel)
	for _, p := range validateRelease(t, objs) {
		t.Error(p)
	}
	if len(ofKind(objs, verifierKind)) != 1 || len(ofKind(objs, "AWSSignerVerifiedImages")) != 1 {
		t.Errorf("the walk-through's chart install renders %v", objs)
	}
	profile := strings.TrimPrefix(flagValues(ours, "--set")[0], "trustedSigningProfiles[0]=")
	if !strings.HasSuffix(profile, ":/signing-profiles/"+flagValues(commandWith(t, cmds, "aws signer put-signing-profile"), "--profile-name")[0]) {
		t.Errorf("the chart trusts %s, not the profile the walk-through creates", profile)
	}
	if !strings.Contains(push, "PROFILE_ARN="+profile) {
		t.Errorf("make push signs with another profile than the chart trusts: %s", push)
	}
	for _, c := range []string{ours, rat, commandWith(t, cmds, "helm install gatekeeper")} {
		if !strings.Contains(c, " --wait") {
			t.Errorf("%q does not wait: the next command needs it done", c)
		}
	}

	// The awssigner command line it runs.
	sign := commandWith(t, cmds, "bin/awssigner sign")
	if got := flagValues(sign, "--profile-arn"); len(got) != 1 || got[0] != profile {
		t.Errorf("awssigner sign --profile-arn %v, want %s", got, profile)
	}
	var stdout, stderr bytes.Buffer
	cli.Run(context.Background(), []string{"sign", "--help"}, &stdout, &stderr, "test")
	if help := stdout.String() + stderr.String(); !strings.Contains(help, "--profile-arn") {
		t.Errorf("awssigner sign --help does not offer --profile-arn:\n%s", help)
	}
}
