package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// From this package's directory, where `go test` runs.
var (
	policiesDir = filepath.Join("..", "..", "policies")
	chartDir    = filepath.Join("..", "ratify-aws-signer")
)

// TestChartTemplatesUpToDate is the drift check: the chart's copy of every
// policy's ConstraintTemplate is exactly what the generator makes from
// policies/<name>/template.yaml, and no copy is left without its policy.
func TestChartTemplatesUpToDate(t *testing.T) {
	want, err := Generate(policiesDir, chartDir)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Diff(want, chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p, Hint)
	}
}

// TestWrap: the copy is guarded by policies.templates.enabled, keeps the
// policy's text, and cannot be read by Helm as a template.
func TestWrap(t *testing.T) {
	got := string(Wrap("p", []byte("kind: ConstraintTemplate\nrego: |\n  x := \"{{ not a template }}\"\n")))
	for _, want := range []string{
		"policies/p/template.yaml",
		guardOpen + "kind: ConstraintTemplate\n",
		`x := "{{ "{{" }} not a template }}"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Wrap output lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "\n{{- end }}\n") {
		t.Errorf("Wrap output does not end with the guard's end:\n%s", got)
	}
	if got := string(Wrap("p", []byte("a: b"))); !strings.HasSuffix(got, "a: b\n{{- end }}\n") {
		t.Errorf("no final newline added:\n%s", got)
	}
}

// TestWriteAndDiff: Write makes Diff clean, removes copies of deleted
// policies, and Diff names each kind of drift.
func TestWriteAndDiff(t *testing.T) {
	dir := t.TempDir()
	policies := filepath.Join(dir, "policies")
	chart := filepath.Join(dir, "chart")
	for _, p := range []string{"one", "two"} {
		mustWrite(t, filepath.Join(policies, p, "template.yaml"), "kind: ConstraintTemplate # "+p+"\n")
	}
	mustWrite(t, filepath.Join(policies, "gen", "main.go"), "package main\n") // not a policy
	mustWrite(t, filepath.Join(policies, "kyverno", "k.yaml"), "kind: ClusterPolicy # {{ images }}\n")
	mustWrite(t, filepath.Join(policies, "kyverno", "examples", "x.yaml"), "kind: Pod\n") // not a policy
	mustWrite(t, filepath.Join(chart, "templates", "constrainttemplate-gone.yaml"), "old\n")
	mustWrite(t, filepath.Join(chart, "files", "kyverno", "gone.yaml"), "old\n")
	mustWrite(t, filepath.Join(chart, "templates", "verifier.yaml"), "untouched\n")

	want, err := Generate(policies, chart)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Diff(want, chart)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems := []string{
		filepath.Join(chart, "files", "kyverno", "k.yaml") + ": missing",
		filepath.Join(chart, "templates", "constrainttemplate-one.yaml") + ": missing",
		filepath.Join(chart, "templates", "constrainttemplate-two.yaml") + ": missing",
		filepath.Join(chart, "files", "kyverno", "gone.yaml") + ": its policy no longer exists",
		filepath.Join(chart, "templates", "constrainttemplate-gone.yaml") + ": its policy no longer exists",
	}
	if !reflect.DeepEqual(problems, wantProblems) {
		t.Errorf("Diff before Write:\n%q\nwant\n%q", problems, wantProblems)
	}

	if err := Write(want, chart); err != nil {
		t.Fatal(err)
	}
	if problems, _ := Diff(want, chart); len(problems) != 0 {
		t.Errorf("Diff after Write: %v", problems)
	}
	for _, gone := range []string{filepath.Join(chart, "templates", "constrainttemplate-gone.yaml"), filepath.Join(chart, "files", "kyverno", "gone.yaml")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("copy of a deleted policy kept: %s (%v)", gone, err)
		}
	}
	// The Kyverno policy is copied as it is, after its header.
	if b, _ := os.ReadFile(filepath.Join(chart, "files", "kyverno", "k.yaml")); !strings.HasSuffix(string(b), "\nkind: ClusterPolicy # {{ images }}\n") || !strings.HasPrefix(string(b), "# GENERATED") {
		t.Errorf("Kyverno copy:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(chart, "templates", "verifier.yaml")); string(b) != "untouched\n" {
		t.Error("Write touched another template")
	}

	// A policy edited after the copy: stale.
	mustWrite(t, filepath.Join(policies, "one", "template.yaml"), "kind: ConstraintTemplate # edited\n")
	want, _ = Generate(policies, chart)
	problems, _ = Diff(want, chart)
	if len(problems) != 1 || !strings.HasSuffix(problems[0], "constrainttemplate-one.yaml: differs from its policy") {
		t.Errorf("Diff after an edit: %v", problems)
	}

	if _, err := Generate(filepath.Join(dir, "chart"), chart); err == nil {
		t.Error("Generate with no policy: no error")
	}
}

func mustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWrapAddsChartMetadata: the chart's labels follow metadata.name and
// the common annotations open metadata.annotations, once each.
func TestWrapAddsChartMetadata(t *testing.T) {
	src := "kind: ConstraintTemplate\nmetadata:\n  name: x\n  annotations:\n    a: b\nspec:\n  name: not-metadata\n  annotations:\n"
	got := string(Wrap("p", []byte(src)))
	if !strings.Contains(got, "  name: x\n"+metadataLabels+"  annotations:\n"+metadataAnnotations+"    a: b\n") {
		t.Errorf("labels/annotations not injected in metadata:\n%s", got)
	}
	if strings.Count(got, metadataLabels) != 1 || strings.Count(got, metadataAnnotations) != 1 {
		t.Errorf("injected more than once:\n%s", got)
	}
}
