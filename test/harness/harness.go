// Package harness runs the whole verification path on one machine for tests,
// benchmarks and the demo: a real OCI registry and the AWS Signer emulator
// on loopback, the awssigner plugin built from this repository, and the
// real Ratify binary (built from its pinned module into bin/).
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/oci"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signing"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/registry"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// Root returns the repository root (the directory holding go.mod).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "plugins")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found above the working directory")
		}
		dir = parent
	}
}

// RatifyBinary returns the Ratify binary: $RATIFY_BIN, else bin/ratify
// (built by `make tools`).
func RatifyBinary() (string, error) {
	if p := os.Getenv("RATIFY_BIN"); p != "" {
		return p, nil
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "ratify")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("Ratify binary not found at %s: run `make tools` (builds github.com/ratify-project/ratify@v1.4.6 from tools/)", p)
	}
	return p, nil
}

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// PluginBinary builds the awssigner plugin from this checkout once per
// process (CGO_ENABLED=0, as Ratify's distroless image needs) into dir.
func PluginBinary(dir string) (string, error) {
	pluginOnce.Do(func() {
		root, err := Root()
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "awssigner")
		cmd := exec.Command("go", "build", "-trimpath", "-o", pluginPath, "./plugins/verifier/awssigner")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("build plugin: %v\n%s", err, out)
		}
	})
	return pluginPath, pluginErr
}

// Stack is a registry and an AWS Signer emulator with one signing profile.
type Stack struct {
	Dir      string
	Registry *registry.Registry
	Emulator *signeremu.Emulator
	// ProfileARN and VersionARN are the trusted profile "Team".
	ProfileARN, VersionARN string
	AWS                    aws.Config
	Clients                *signerapi.Factory
}

// StackOptions configure a Stack.
type StackOptions struct {
	// Referrers turns on the registry's OCI referrers API.
	Referrers bool
	Dir       string
}

// NewStack starts a registry and the emulator and creates profile "Team".
func NewStack(o StackOptions) (*Stack, error) {
	reg, err := registry.Start(registry.Options{Referrers: o.Referrers})
	if err != nil {
		return nil, err
	}
	emu, err := signeremu.Start(signeremu.Options{})
	if err != nil {
		reg.Close()
		return nil, err
	}
	s := &Stack{Dir: o.Dir, Registry: reg, Emulator: emu}
	s.AWS = aws.Config{Region: emu.Region(), Credentials: credentials.NewStaticCredentialsProvider("AKIDHARNESS", "secret", "")}
	if s.Clients, err = signerapi.NewFactory(signerapi.Options{Endpoint: emu.URL(), Base: &s.AWS, MaxAttempts: config.DefaultMaxAttempts, MaxBackoff: config.DefaultMaxBackoff}); err != nil {
		s.Close()
		return nil, err
	}
	if s.ProfileARN, s.VersionARN, err = emu.CreateProfile("Team", 12); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the registry and the emulator.
func (s *Stack) Close() {
	s.Emulator.Close()
	s.Registry.Close()
}

// Image opens repo (a path such as "team/app") in the stack's registry.
func (s *Stack) Image(repoAndTag string) (oci.Image, error) {
	return oci.Open(s.Registry.Host+"/"+repoAndTag, oci.Options{PlainHTTP: true})
}

// PushImage pushes a small image tagged tag into repo and returns its
// tag reference and descriptor.
func (s *Stack) PushImage(ctx context.Context, repo, tag string) (string, ocispec.Descriptor, error) {
	img, err := s.Image(repo)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	desc, err := registry.PushImage(ctx, img.Repo, tag, []byte(repo+":"+tag+" "+time.Now().String()))
	return s.Registry.Host + "/" + repo + ":" + tag, desc, err
}

// Sign signs subject in repo through the emulator's SignPayload with the
// given profile (the stack's when empty), pushes the signature, and returns
// the signature manifest's descriptor and the job ARN.
func (s *Stack) Sign(ctx context.Context, repo string, subject ocispec.Descriptor, profileARN string) (ocispec.Descriptor, string, error) {
	if profileARN == "" {
		profileARN = s.ProfileARN
	}
	signed, err := signing.Sign(ctx, s.Clients, profileARN, subject)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	img, err := s.Image(repo)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc, err := img.PushSignature(ctx, subject, signed.Envelope, signature.MediaTypeJWS, signed.Metadata)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	jobs := s.Emulator.Jobs()
	return desc, jobs[len(jobs)-1].ARN, nil
}

// VerifierConfig is the awssigner verifier's configuration for a policy
// of the given level trusting identities (the stack's profile when nil);
// extra keys are merged in.
func (s *Stack) VerifierConfig(name, level string, identities []string, extra map[string]any) map[string]any {
	if identities == nil {
		identities = []string{s.ProfileARN}
	}
	c := map[string]any{
		"name":          name,
		"type":          "awssigner",
		"artifactTypes": signature.ArtifactType,
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
			"name": "team", "registryScopes": []string{"*"},
			"signatureVerification": map[string]any{"level": level},
			"trustStores":           []string{"signingAuthority:aws-signer-ts"},
			"trustedIdentities":     identities,
		}}},
		"trustStores": map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{string(s.Emulator.CA().RootPEM())}}},
		"revocation":  map[string]any{"timeout": "2s", "cacheTTL": "0s"},
		"aws":         map[string]any{"endpoint": s.Emulator.URL()},
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// RatifyConfig writes a Ratify config.json with the given verifiers and
// returns its path. policy is "all" or "any" for Notation signatures.
func (s *Stack) RatifyConfig(pluginDir string, policy string, verifiers ...map[string]any) (string, error) {
	if policy == "" {
		policy = "all"
	}
	cfg := map[string]any{
		"store": map[string]any{"version": "1.0.0", "plugins": []any{map[string]any{
			"name": "oras", "useHttp": true, "localCachePath": filepath.Join(s.Dir, "oras-cache"),
		}}},
		"policy": map[string]any{"version": "1.0.0", "plugin": map[string]any{
			"name": "configPolicy", "artifactVerificationPolicies": map[string]any{signature.ArtifactType: policy},
		}},
		"verifier": map[string]any{"version": "1.0.0", "pluginBinDirs": []string{pluginDir}, "plugins": verifiers},
		"executor": map[string]any{"verificationRequestTimeout": 2900},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.Dir, fmt.Sprintf("config-%d.json", time.Now().UnixNano()))
	return p, os.WriteFile(p, b, 0o600)
}

// Env is the environment Ratify and the plugin run with: fake static AWS
// credentials, no instance metadata, and HOME inside dir.
func Env(dir string) []string {
	env := []string{
		"HOME=" + dir,
		"RATIFY_CONFIG=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=AKIDHARNESS",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
	}
	return env
}

// Report is one verifier report of `ratify verify`.
type Report struct {
	Subject         string         `json:"subject"`
	IsSuccess       bool           `json:"isSuccess"`
	Name            string         `json:"name"`
	Type            string         `json:"type"`
	ReferenceDigest string         `json:"referenceDigest"`
	ArtifactType    string         `json:"artifactType"`
	Message         string         `json:"message"`
	ErrorReason     string         `json:"errorReason"`
	Extensions      map[string]any `json:"extensions"`
}

// VerifyOutput is what `ratify verify` printed.
type VerifyOutput struct {
	IsSuccess       bool     `json:"isSuccess"`
	VerifierReports []Report `json:"verifierReports"`
	Stdout, Stderr  string   `json:"-"`
	Duration        time.Duration
}

// RatifyVerify runs `ratify verify -s subject -c config` and parses its JSON.
func RatifyVerify(ctx context.Context, ratify, dir, config, subject string) (*VerifyOutput, error) {
	cmd := exec.CommandContext(ctx, ratify, "verify", "-s", subject, "-c", config)
	cmd.Env = Env(dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	out := &VerifyOutput{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	if err != nil {
		return out, fmt.Errorf("ratify verify: %v\nstdout: %s\nstderr: %s", err, out.Stdout, out.Stderr)
	}
	// Ratify prints the result as one JSON document after any log lines.
	text := out.Stdout
	if i := strings.Index(text, "{"); i >= 0 {
		text = text[i:]
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		return out, fmt.Errorf("ratify verify printed no result JSON: %v\nstdout: %s\nstderr: %s", err, out.Stdout, out.Stderr)
	}
	return out, nil
}

// MainWithPlugin is a TestMain body for packages that run the plugin
// binary: it builds the binary into a temporary directory, hands its path
// to use, runs the tests, removes the directory and returns the exit code.
func MainWithPlugin(m interface{ Run() int }, use func(binary string)) int {
	dir, err := os.MkdirTemp("", "awssigner-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	p, err := PluginBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	use(p)
	return m.Run()
}
