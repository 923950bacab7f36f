package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	if code, _, stderr := run(); code != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("no arguments: %d %q", code, stderr)
	}
	if code, _, stderr := run("bake"); code != 1 || !strings.Contains(stderr, `unknown subcommand "bake"`) {
		t.Errorf("unknown subcommand: %d %q", code, stderr)
	}
	if code, _, stderr := run("push"); code != 1 || !strings.Contains(stderr, "-registry is required") {
		t.Errorf("push without a registry: %d %q", code, stderr)
	}
	if code, _, stderr := run("image", "extra"); code != 1 || !strings.Contains(stderr, "unexpected arguments") {
		t.Errorf("extra argument: %d %q", code, stderr)
	}
}

func TestRefs(t *testing.T) {
	code, stdout, stderr := run("refs", "-registry", "registry.example/team/", "-tag", "1.2.3")
	if code != 0 {
		t.Fatalf("refs: %d %s", code, stderr)
	}
	want := "registry.example/team/awssigner:1.2.3\n" +
		"registry.example/team/awssigner:1.2.3-fips\n" +
		"registry.example/team/ratify-awssigner:v1.4.6-awssigner-1.2.3\n" +
		"registry.example/team/awssigner-plugin:1.2.3-linux-amd64\n" +
		"registry.example/team/awssigner-plugin:1.2.3-linux-arm64\n"
	if stdout != want {
		t.Errorf("refs printed\n%s\nwant\n%s", stdout, want)
	}
}
