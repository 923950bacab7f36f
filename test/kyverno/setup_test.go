package kyverno

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/serve"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// One setup per test binary.
var env struct {
	root      string
	dir       string
	stack     *harness.Stack
	serve     *serve.Process
	otherARN  string
	digests   map[string]string // tag of team/app → digest
	policy    *Policy
	admission *Admission
}

var (
	opRevocation = signeremu.OpGetRevocationStatus
	faultDown    = signeremu.Fault{Status: 500, Code: "InternalServerException"}
)

func setup(m *testing.M) (int, error) {
	ctx := context.Background()
	root, err := harness.Root()
	if err != nil {
		return 1, err
	}
	env.root = root
	// Inside the parent's directory (see reexec), removed even if a test
	// panics.
	dir, err := os.MkdirTemp(filepath.Dir(os.Getenv(scopedTokenEnv)), "run-")
	if err != nil {
		return 1, err
	}
	env.dir = dir
	plugin, err := harness.PluginBinary(dir)
	if err != nil {
		return 1, err
	}
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return 1, err
	}
	env.stack = s
	samples, err := s.PushSamples(ctx)
	if err != nil {
		return 1, err
	}
	env.otherARN, env.digests = samples.OtherARN, samples.Digests
	if err := startServe(ctx, plugin, dir); err != nil {
		return 1, err
	}
	if env.policy, err = LoadPolicy(root, env.serve.CheckImagesURL, env.serve.PKI.CAPEM); err != nil {
		return 1, err
	}
	if env.admission, err = NewAdmission(ctx, env.policy,
		namespace(nsDefault, ""), namespace(nsOther, "team-b"), namespace(nsUnknown, "nonexistent"), namespace(nsSystem, "")); err != nil {
		return 1, err
	}
	code := m.Run()
	if len(verdicts) > 0 && testing.Verbose() {
		fmt.Println("\n| case | verdict | stored images, or the denial | engine time |\n|---|---|---|---|")
		for _, l := range verdicts {
			fmt.Println(l)
		}
	}
	return code, nil
}

func teardown() {
	if env.serve != nil {
		env.serve.Stop()
	}
	if env.stack != nil {
		env.stack.Close()
	}
	if env.dir != "" {
		os.RemoveAll(env.dir)
	}
}

// startServe runs the real awssigner serve with its Kyverno listener only
// (no Gatekeeper listener, so no client CA), callers checked by the
// TokenReview fake of test/serve, and Kyverno's token in place:
// trustPolicyDoc trusts profile Team, trustPolicyDocs.team-b profile Other.
func startServe(ctx context.Context, binary, dir string) error {
	s := env.stack
	cfg := s.VerifierConfig("awssigner", "strict", []string{s.ProfileARN}, nil)
	other := s.VerifierConfig("awssigner", "strict", []string{env.otherARN}, nil)["trustPolicyDoc"]
	cfg["trustPolicyDocs"] = map[string]any{"team-b": other}
	p, err := serve.Start(ctx, binary, dir, cfg, serve.WithKyverno(), serve.WithoutGatekeeper())
	if err != nil {
		return err
	}
	env.serve = p
	return useToken(p.KyvernoToken)
}

// useToken writes the bearer token Kyverno's apiCall sends ("" sends none).
func useToken(token string) error {
	return os.WriteFile(os.Getenv(scopedTokenEnv), []byte(token), 0o600)
}

func namespace(name, trustPolicy string) *corev1.Namespace {
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name}}
	if trustPolicy != "" {
		ns.Labels = map[string]string{trustLabel: trustPolicy}
	}
	return ns
}

func mustRaw(t *testing.T, v any) *apiextv1.JSON {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &apiextv1.JSON{Raw: b}
}
