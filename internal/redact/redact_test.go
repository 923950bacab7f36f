package redact

import (
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, gone, kept string }{
		{"denied for Basic dXNlcjpzM2NyZXQ=", "dXNlcjpzM2NyZXQ=", "Basic [redacted]"},
		{"denied for bearer eyJhbGciOi.eyJzdWIi.c2ln", "eyJhbGciOi", "bearer [redacted]"},
		{`{"message":"denied for AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-west-2/signer/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"}`, "5d672d79c15b", "AWS4-HMAC-SHA256 [redacted]"},
		{"token refresh_token=abc123def&x=1", "abc123def", "refresh_token=[redacted]"},
		{`"password": "hunter2"`, "hunter2", `"password": "[redacted]`},
		{"key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE", "[redacted key id]"},
		{"manifest unknown", "", "manifest unknown"},
		// Prose after the scheme names is kept: the registry client's own
		// words, which say what is wrong.
		{"basic credential not found", "", "basic credential not found"},
		{"invalid bearer token", "", "invalid bearer token"},
		{"Basic YWRtaW46cGFzcw== and bearer abcdefghijklmnopqrstuvwxyz", "YWRtaW46", "Basic [redacted] and bearer [redacted]"},
	} {
		got := Text(tc.in)
		if (tc.gone != "" && strings.Contains(got, tc.gone)) || !strings.Contains(got, tc.kept) {
			t.Errorf("Text(%q) = %q", tc.in, got)
		}
	}
	if got := Text(strings.Repeat("é", 1000)); len(got) > MaxLen+len("…") {
		t.Errorf("not bounded: %d bytes", len(got))
	}
}
