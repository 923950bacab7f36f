package kyverno

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "a/b:c", true},
		{"ghcr.io/*", "ghcr.io/org/app:v1", true},
		{"ghcr.io/*", "docker.io/ghcr.io/x", false},
		{"*.dkr.ecr.*.amazonaws.com/*", "111122223333.dkr.ecr.us-west-2.amazonaws.com/app:v1", true},
		{"*.dkr.ecr.*.amazonaws.com/*", "111122223333.dkr.ecr.us-west-2.amazonaws.com", false},
		{"app:v?", "app:v1", true},
		{"app:v?", "app:v10", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"", "", true},
		{"", "a", false},
		{"**", "abc", true},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
	// Linear in the worst case (no exponential backtracking).
	long := strings.Repeat("a", 4096)
	if Match(strings.Repeat("*a", 512)+"b", long) {
		t.Error("matched")
	}
}

func TestDecode(t *testing.T) {
	body := `{"images":{"containers":{"web":{"registry":"r.example:5000","path":"team/web","name":"web","tag":"v1","jsonPointer":"/spec/containers/0/image","future":1}},
	"initContainers":{"i":{"registry":"docker.io","path":"nginx","digest":"sha256:` + strings.Repeat("a", 64) + `"}}},"imageReferences":["r.example*"],"trustPolicy":"tp-a","metadata":{"x":[1]}}` + "\n"
	r, entries, err := decode([]byte(body), 10)
	if err != nil {
		t.Fatal(err)
	}
	if r.TrustPolicy != "tp-a" || len(entries) != 2 || entries[0].list != "containers" || entries[0].image.Ref() != "r.example:5000/team/web:v1" ||
		entries[1].image.Ref() != "docker.io/nginx@sha256:"+strings.Repeat("a", 64) {
		t.Fatalf("%+v %+v", r, entries)
	}
	if _, _, err := decode([]byte(`{"images":{"containers":{"a":{"path":"a","tag":"1","jsonPointer":"/a"},"b":{"path":"b","tag":"1","jsonPointer":"/b"}}}}`), 1); err == nil {
		t.Error("over maxImages accepted")
	} else if _, ok := err.(*tooLarge); !ok {
		t.Errorf("%T %v", err, err)
	}
	for _, p := range []string{"/spec/containers/0/image", "/spec/template/spec/initContainers/12/image", "/spec/jobTemplate/spec/template/spec/ephemeralContainers/0/image",
		"/spec/steps/0/image", "/spec/my_field.v-2/image"} {
		if err := checkPointer(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	// Only pointers to an image field, of plain names and indexes: what
	// is echoed into the patch cannot end the YAML string of a
	// patchesJson6902 template, escape, or name another field.
	for _, p := range []string{"", "a", "/", "/image", "spec/containers/0/image", "/spec/containers/0/name", "/metadata/annotations/x", "/spec/containers/0/image/",
		"/spec//image", "/spec/containers/0/image~1x/image", "/spec/a~0b/image", "/spec/a~1b/image", "/spec/a b/image", "/spec/\"x\"/image",
		"/spec/x\"\n- op: add\n  path: /spec/hostPID\n  value: true\n- path: \"/image", "/spec/{{request.object}}/image", "/spec/\u00e9/image",
		"/" + strings.Repeat("a/", 600) + "image"} {
		if checkPointer(p) == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

// Every image entry must be a reference as Kyverno writes one, whether
// selected or not: registry and path one repository, the tag a tag, the
// digest a digest; a tag+digest image is checked by its digest; two
// images patched at one pointer are refused.
func TestDecodeImages(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	entry := func(fields string) string {
		return `{"images":{"containers":{"c":{` + fields + `}}}}`
	}
	for _, tc := range []struct{ body, want string }{
		{entry(`"registry":"r.example","path":"app","tag":"v1@` + d + `","jsonPointer":"/spec/containers/0/image"`), `tag "v1@` + d},
		{entry(`"registry":"r.example","path":"app:v1","tag":"v2","jsonPointer":"/spec/containers/0/image"`), "not an image reference"},
		{entry(`"registry":"r.example","path":"App","tag":"v1","jsonPointer":"/spec/containers/0/image"`), "not an image reference"},
		{entry(`"registry":"r.example","path":"/app","tag":"v1","jsonPointer":"/spec/containers/0/image"`), "not an image reference"},
		{entry(`"registry":"r.example/x","path":"app@` + d + `","tag":"v1","jsonPointer":"/spec/containers/0/image"`), "not an image reference"},
		{entry(`"registry":"r.example","path":"app","digest":"sha256:abc"`), "not an image reference"},
		{entry(`"registry":"a b","path":"app","tag":"v1","jsonPointer":"/spec/containers/0/image"`), "not an image reference"},
		{`{"images":{"containers":{"a":{"registry":"r.example","path":"a","tag":"1","jsonPointer":"/spec/containers/0/image"}},` +
			`"initContainers":{"b":{"registry":"r.example","path":"b","tag":"1","jsonPointer":"/spec/containers/0/image"}}}}`, "have the same jsonPointer"},
		{`{"images":{},"trustPolicy":"` + strings.Repeat("t", 254) + `"}`, "trustPolicy is 254 characters"},
	} {
		_, _, err := decode([]byte(tc.body), 10)
		var re *requestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a request error with %q", tc.body, err, tc.want)
		}
	}
	// Kyverno's own shapes: no registry (default-registry mutation off),
	// its "_" registry rule, tag and digest together (checked by digest,
	// not patched: no pointer needed).
	r, entries, err := decode([]byte(`{"images":{"containers":{`+
		`"a":{"path":"nginx","tag":"1.27","jsonPointer":"/spec/containers/0/image"},`+
		`"b":{"registry":"my_reg","path":"app","tag":"v1","jsonPointer":"/spec/containers/1/image"},`+
		`"c":{"registry":"r.example:5000","path":"team/app","tag":"v1","digest":"`+d+`"}}},"imageReferences":["b","a","b"]}`), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ ref, norm string }{{"nginx:1.27", "docker.io/library/nginx:1.27"}, {"my_reg/app:v1", "docker.io/my_reg/app:v1"},
		{"r.example:5000/team/app@" + d, "r.example:5000/team/app@" + d}}
	for i, w := range want {
		if entries[i].ref != w.ref || entries[i].norm != w.norm {
			t.Errorf("entry %d: %q %q, want %q %q", i, entries[i].ref, entries[i].norm, w.ref, w.norm)
		}
	}
	if !slices.Equal(r.ImageReferences, []string{"a", "b"}) {
		t.Errorf("patterns %q, want them distinct", r.ImageReferences)
	}
}

// Matching stops when its steps run out, so a request's patterns cost at
// most MaxMatchSteps whatever they and the images are.
func TestMatchSteps(t *testing.T) {
	s := "r.example/" + strings.Repeat("a", 400)
	p := "*" + strings.Repeat("a", 200) + "b*"
	steps := math.MaxInt
	match(p, s, &steps)
	used := math.MaxInt - steps
	if used < 200*200 {
		t.Fatalf("worst case took %d steps, want over %d (the bound is not needed?)", used, 200*200)
	}
	steps = used / 2
	if match(p+"*", s, &steps) || steps >= 0 {
		t.Errorf("ran past its steps: %d left", steps)
	}
	e := entry{ref: s + ":v1", norm: s + ":v1"}
	steps = 100
	if matches([]string{p, "*"}, e, &steps) {
		t.Error("matched after running out of steps")
	}
}

func TestBounded(t *testing.T) {
	items := []string{strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)}
	if got := bounded(items, "\n", 100, "… %d more, %d listed"); got != items[0]+"\n"+items[1]+"\n… 1 more, 2 listed" {
		t.Errorf("%q", got)
	}
	if got := bounded(items, ", ", 1000, "%d %d"); got != strings.Join(items, ", ") {
		t.Errorf("%q", got)
	}
	if got := cut(strings.Repeat("é", 100), 11); got != strings.Repeat("é", 5)+" …(cut)" {
		t.Errorf("%q", got)
	}
}
