package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/source"
)

// The fixture every test of this package shares: one build of HEAD (the
// expensive part: four go builds), the signer emulator built from the same
// commit, both made once in TestMain.
var fx struct {
	repo, dist, tmp string
	built           *Manifest
	emulatorBin     string
	err             error
}

const testVersion = "0.1.0-test"

func TestMain(m *testing.M) {
	code := func() int {
		tmp, err := os.MkdirTemp("", "release-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		fx.tmp = tmp
		fx.repo, err = filepath.Abs(filepath.Join("..", "..", ".."))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		start := time.Now()
		fx.dist = filepath.Join(tmp, "dist")
		fx.built, fx.err = Build(ctx, Options{Repo: fx.repo, Version: testVersion, Dist: fx.dist, Source: "https://example.test/ratify-aws-signer", Licenses: "NOASSERTION", Log: os.Stderr})
		fmt.Fprintf(os.Stderr, "release test: build %s\n", time.Since(start).Round(100*time.Millisecond))
		if fx.err == nil {
			fx.emulatorBin, fx.err = buildEmulator(ctx, fx.repo, fx.built.Commit, filepath.Join(tmp, "emu"))
		}
		return m.Run()
	}()
	os.Exit(code)
}

func built(t *testing.T) *Manifest {
	t.Helper()
	if fx.err != nil {
		t.Fatalf("build: %v", fx.err)
	}
	return fx.built
}

// buildEmulator builds test/cmd/signer-emulator from the same commit.
func buildEmulator(ctx context.Context, repo, commit, dir string) (string, error) {
	tree, err := source.Export(ctx, repo, commit, filepath.Join(dir, "src"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "signer-emulator")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./test/cmd/signer-emulator")
	cmd.Dir = tree.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the signer emulator: %v\n%s", err, b)
	}
	return out, os.RemoveAll(tree.Dir)
}

// startRegistry serves go-containerregistry's registry (no referrers API,
// so signatures and SBOMs take the referrers tag schema) on loopback.
func startRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(log.New(ioDiscard{}, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("registry: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// emulator is a running signer-emulator process with one profile.
type emulator struct {
	url, rootPEM, profileARN string
}

func startEmulator(t *testing.T) *emulator {
	t.Helper()
	if fx.emulatorBin == "" {
		t.Fatal("no signer emulator binary")
	}
	dir := t.TempDir()
	e := &emulator{rootPEM: filepath.Join(dir, "root.pem")}
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(fx.emulatorBin, "-root-pem", e.rootPEM, "-ready-file", ready)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(ready)
		if err == nil && len(b) > 0 {
			e.url = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the signer emulator did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := strings.NewReader(`{"name":"Release","months":12}`)
	resp, err := http.Post(e.url+"/_emulator/profiles", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		ARN string `json:"arn"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK || p.ARN == "" {
		t.Fatalf("create profile: %d %v %+v", resp.StatusCode, err, p)
	}
	e.profileARN = p.ARN
	return e
}

// awsEnv is the environment of awssigner runs: static fake credentials, no
// instance metadata, no Docker credentials, HOME in dir.
func awsEnv(dir string) []string {
	return []string{
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=AKIDRELEASE",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"TMPDIR=" + dir,
	}
}
