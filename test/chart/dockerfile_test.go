package chart

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stage is a FROM and the instructions after it.
type stage struct {
	from, name   string
	instructions []instruction
}

// parseDockerfile splits a Dockerfile into its global ARGs and stages. It
// understands what this repository's Dockerfile uses: comments, line
// continuations, `FROM image [AS name]`.
func parseDockerfile(t *testing.T, path string) (globals []instruction, stages []stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all []instruction
	var cur *instruction
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		cont := strings.HasSuffix(trimmed, `\`)
		trimmed = strings.TrimSuffix(trimmed, `\`)
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else if !strings.HasPrefix(trimmed, "#") {
			cur.args = strings.TrimSpace(cur.args + " " + trimmed)
		}
		if !cont {
			all = append(all, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: line %d: continuation at end of file", path, cur.line)
	}
	for _, in := range all {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			var image, name string
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					name = fields[i+1]
					i++
				default:
					image = fields[i]
				}
			}
			stages = append(stages, stage{from: image, name: name})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("%s: line %d: %s before the first FROM", path, in.line, in.cmd)
			}
			globals = append(globals, in)
			continue
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	return globals, stages
}

// TestDockerfile checks the repository's Dockerfile as far as this machine
// allows (there is no Docker engine here, so it is never built by the
// tests): a Go build stage that builds the plugin statically, and a final
// stage that is the pinned Ratify image with the plugin copied, owned by
// Ratify's user, to the path where Ratify finds the chart's Verifier.
func TestDockerfile(t *testing.T) {
	path := filepath.Join(repoRoot, "Dockerfile")
	globals, stages := parseDockerfile(t, path)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, Ratify)", len(stages))
	}
	build, final := stages[0], stages[1]

	// The Go toolchain is at least what go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.ParseLax("go.mod", gomod, nil)
	if err != nil {
		t.Fatal(err)
	}
	goVersion := ""
	for _, g := range globals {
		if v, ok := strings.CutPrefix(g.args, "GO_VERSION="); ok {
			goVersion = v
		}
	}
	if build.from != "golang:${GO_VERSION}" || goVersion == "" {
		t.Errorf("build stage FROM %q (GO_VERSION %q), want golang:${GO_VERSION} with a default", build.from, goVersion)
	} else if !versionAtLeast(goVersion, mf.Go.Version) {
		t.Errorf("GO_VERSION %s is older than go.mod's go %s", goVersion, mf.Go.Version)
	}

	// The final image is the Ratify version the repository pins.
	ratify := ""
	for _, r := range mf.Require {
		if r.Mod.Path == ratifyModule {
			ratify = r.Mod.Version
		}
	}
	if want := "ghcr.io/notaryproject/ratify:" + ratify; final.from != want {
		t.Errorf("final stage FROM %q, want %q (the Ratify version of go.mod)", final.from, want)
	}

	// The build: static, the plugin's package, its output copied over.
	var buildCmd string
	copied := map[string]bool{}
	for _, in := range build.instructions {
		switch in.cmd {
		case "RUN":
			if strings.Contains(in.args, "go build") {
				buildCmd = in.args
			}
		case "COPY":
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				copied[strings.TrimSuffix(src, "/")] = true
			}
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "-trimpath", "./plugins/verifier/awssigner"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("go build command %q lacks %q", buildCmd, want)
		}
	}
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(buildCmd)
	if out == nil {
		t.Fatalf("go build command %q has no -o", buildCmd)
	}

	// Every package the plugin is built from is copied into the build stage.
	pkgs, err := goCommand("list", "-C", repoRoot, "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./plugins/verifier/awssigner")
	if err != nil {
		t.Fatal(err)
	}
	absRoot, _ := filepath.Abs(repoRoot)
	for _, dir := range strings.Fields(string(pkgs)) {
		rel, err := filepath.Rel(absRoot, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !copied[top] {
			t.Errorf("the plugin imports %s, but the build stage does not COPY %s/", rel, top)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !copied[f] {
			t.Errorf("the build stage does not COPY %s", f)
		}
	}

	// The final stage adds the binary and nothing else.
	if len(final.instructions) != 1 || final.instructions[0].cmd != "COPY" {
		t.Fatalf("final stage instructions %v, want one COPY", final.instructions)
	}
	want := "--from=build --chown=65532:65532 " + out[1] + " /.ratify/plugins/awssigner"
	if got := final.instructions[0].args; got != want {
		t.Errorf("final COPY %q, want %q", got, want)
	}
	if build.name != "build" {
		t.Errorf("build stage named %q, want build", build.name)
	}
}

// versionAtLeast compares dotted numeric versions ("1.26" >= "1.26.0").
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := 0; i < len(w); i++ {
		var hv, wv int
		if i < len(h) {
			hv = atoi(h[i])
		}
		wv = atoi(w[i])
		if hv != wv {
			return hv > wv
		}
	}
	return true
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
