// Package deps holds the dependency rules of the product's packages, run
// with `go list` over the real module.
package deps

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ratify-aws-signer/ratify-aws-signer"

// core is the verification core: importable by any adapter (Ratify v1,
// ratify-go, Kyverno, the command line), so it must stay free of them.
var core = []string{"awsplugin", "awssigner", "config", "redact", "revocation", "signature", "truststore", "verification"}

// forbidden in the core: Ratify, client-go, the AWS SDK's configuration
// loader (credentials are the composition step's business).
var forbidden = []string{"github.com/ratify-project/ratify", "k8s.io/client-go", "github.com/aws/aws-sdk-go-v2/config", "github.com/notaryproject/ratify-go"}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Deps"}, patterns...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestCoreImportsNoAdapter(t *testing.T) {
	var patterns []string
	for _, c := range core {
		patterns = append(patterns, module+"/internal/"+c)
	}
	for _, p := range list(t, patterns...) {
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s; the core must not import %s", p.ImportPath, d, f)
				}
			}
		}
	}
}

// Only the Ratify v1 adapter (and the plugin's main, which links Ratify's
// store) imports Ratify.
func TestOnlyTheRatifyAdapterImportsRatify(t *testing.T) {
	allowed := map[string]bool{module + "/internal/ratifyv1": true, module + "/plugins/verifier/awssigner": true}
	for _, p := range list(t, "./...") {
		if allowed[p.ImportPath] || strings.HasPrefix(p.ImportPath, module+"/test/") {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/ratify-project/ratify") {
				t.Errorf("%s imports %s; only internal/ratifyv1 may import Ratify", p.ImportPath, imp)
			}
		}
	}
}

// Only internal/ratifygo imports Ratify v2's library (ratify-go).
func TestOnlyRatifygoImportsRatifyGo(t *testing.T) {
	const ratifyGo = "github.com/notaryproject/ratify-go"
	for _, p := range list(t, "./...") {
		if p.ImportPath == module+"/internal/ratifygo" {
			continue
		}
		for _, imp := range p.Imports {
			if imp == ratifyGo || strings.HasPrefix(imp, ratifyGo+"/") {
				t.Errorf("%s imports %s; only internal/ratifygo may import ratify-go", p.ImportPath, imp)
			}
		}
	}
}

// awssigner serve's own packages (the Gatekeeper provider, the Kyverno
// endpoint and its caller check, the server) do not link client-go or
// Ratify: TokenReview is spoken with small types of their own, so serve
// carries no Kubernetes client of its own and the plugin's start-up is not
// made heavier by them.
func TestServeLinksNoKubernetesClient(t *testing.T) {
	var patterns []string
	for _, c := range []string{"callerauth", "kyverno", "provider", "server"} {
		patterns = append(patterns, module+"/internal/"+c)
	}
	for _, p := range list(t, patterns...) {
		for _, d := range p.Deps {
			if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "github.com/ratify-project/ratify") {
				t.Errorf("%s depends on %s", p.ImportPath, d)
			}
		}
	}
}
