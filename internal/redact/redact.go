// Package redact removes credentials from text that came from a remote
// party (a registry's or AWS's error message), before it reaches a
// message, a log line or Ratify's output: a hostile endpoint can echo the
// Authorization header it was sent. It also bounds the text's length.
package redact

import (
	"regexp"
	"strings"
)

// MaxLen bounds remote text kept in a message.
const MaxLen = 512

// authScheme is an HTTP authorization scheme with what follows it.
var authScheme = regexp.MustCompile(`(?i)\b(basic|bearer)(\s+)([A-Za-z0-9._~+/=-]+)`)

// plainWord is a short lower-case word: what follows "basic" or "bearer"
// in ordinary prose ("basic credential not found", "invalid bearer token"),
// never a credential we send (base64 of "user:password", an ECR token or a
// JWT all have other characters or are far longer).
var plainWord = regexp.MustCompile(`^[a-z]{1,12}$`)

var patterns = []struct {
	re   *regexp.Regexp
	with string
}{
	// AWS Signature Version 4: Credential=…, SignedHeaders=…, Signature=….
	{regexp.MustCompile(`AWS4-HMAC-SHA256\s+[^\r\n"]*`), "AWS4-HMAC-SHA256 [redacted]"},
	{regexp.MustCompile(`(?i)\b(credential|signature|x-amz-security-token|x-amz-credential|x-amz-signature|access_token|refresh_token|password)(["']?\s*[=:]\s*["']?)[^\s"',;&]+`), "$1$2[redacted]"},
	// AWS access key IDs (AKIA…, ASIA…).
	{regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{12,}\b`), "[redacted key id]"},
}

// Text returns s without credentials and at most MaxLen bytes long.
func Text(s string) string {
	s = authScheme.ReplaceAllStringFunc(s, func(m string) string {
		parts := authScheme.FindStringSubmatch(m)
		if plainWord.MatchString(parts[3]) {
			return m
		}
		return parts[1] + parts[2] + "[redacted]"
	})
	for _, p := range patterns {
		s = p.re.ReplaceAllString(s, p.with)
	}
	if len(s) > MaxLen {
		s = strings.ToValidUTF8(s[:MaxLen], "") + "…"
	}
	return s
}
