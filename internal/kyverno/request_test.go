package kyverno

import (
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
	for _, p := range []string{"/a~0b", "/a~1b", "/"} {
		if checkPointer(p) != nil {
			t.Errorf("%q refused", p)
		}
	}
	for _, p := range []string{"", "a", "/a~", "/a~2"} {
		if checkPointer(p) == nil {
			t.Errorf("%q accepted", p)
		}
	}
}
