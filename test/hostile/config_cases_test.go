package hostile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// trustStoreFile points the trust store at the file make creates in the
// run's directory.
func trustStoreFile(make func(dir string) (string, error)) func(s *setup, c map[string]any) {
	return func(s *setup, c map[string]any) {
		p, err := make(s.dir)
		if err != nil {
			p = "/nonexistent/" + err.Error()
		}
		c["trustStores"] = map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{p}}}
	}
}

func fixed(p string) func(string) (string, error) {
	return func(string) (string, error) { return p, nil }
}

// nestedPlaceholder is replaced in the stdin document by nested arrays
// (encoding/json refuses to marshal them).
const nestedPlaceholder = `"@nested@"`

func nested(depth int) func([]byte) []byte {
	return func(b []byte) []byte {
		return []byte(strings.Replace(string(b), nestedPlaceholder, strings.Repeat("[", depth)+strings.Repeat("]", depth), 1))
	}
}

// cacheDir turns the revocation cache on in the directory make returns.
func cacheDir(make func(dir string) (string, error)) func(s *setup, c map[string]any) {
	return func(s *setup, c map[string]any) {
		p, err := make(s.dir)
		if err != nil {
			p = "/nonexistent/" + err.Error()
		}
		c["revocation"] = map[string]any{"timeout": "2s", "cacheTTL": "5m", "cacheDir": p}
	}
}

// verifiedWarn wants a verified signature and a warning.
func verifiedWarn(about string) want {
	w := verified()
	w.warn = about
	return w
}

// badConfig wants an error object with code 8 (invalid configuration).
func badConfig() want { return want{errorCode: 8} }

// anyError wants an error object with any code.
func anyError() want { return want{errorCode: -1} }

func configCases() []hcase {
	const mib = 1 << 20
	return []hcase{
		{name: "trust store /dev/zero", cfg: trustStoreFile(fixed("/dev/zero")), want: badConfig()},
		{name: "trust store symlink to /dev/zero", cfg: trustStoreFile(func(dir string) (string, error) {
			p := filepath.Join(dir, "zero.pem")
			return p, os.Symlink("/dev/zero", p)
		}), want: badConfig()},
		{name: "trust store FIFO", cfg: trustStoreFile(func(dir string) (string, error) {
			p := filepath.Join(dir, "fifo.pem")
			return p, syscall.Mkfifo(p, 0o600)
		}), want: badConfig()},
		{name: "trust store 10 MiB file", cfg: trustStoreFile(func(dir string) (string, error) {
			p := filepath.Join(dir, "big.pem")
			body := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat(strings.Repeat("A", 63)+"\n", 10*mib/64) + "-----END CERTIFICATE-----\n"
			return p, os.WriteFile(p, []byte(body), 0o600)
		}), want: badConfig()},
		{name: "trust store directory", cfg: trustStoreFile(func(dir string) (string, error) { return dir, nil }), want: badConfig()},
		{name: "trust store /proc/self/mem", cfg: trustStoreFile(fixed("/proc/self/mem")), want: badConfig()},
		{name: "revocation cacheDir is a regular file", cfg: cacheDir(func(dir string) (string, error) {
			p := filepath.Join(dir, "not-a-dir")
			return p, os.WriteFile(p, []byte("x"), 0o600)
		}), want: verifiedWarn("cache")},
		{name: "revocation cacheDir under /proc", cfg: cacheDir(fixed("/proc/self/awssigner-cache")), want: verifiedWarn("cache")},
		{name: "revocation cacheDir a symlink to a directory of another uid", cfg: cacheDir(func(dir string) (string, error) {
			target := filepath.Join(dir, "theirs")
			if err := os.Mkdir(target, 0o700); err != nil {
				return "", err
			}
			if err := os.Chown(target, nobody, nobody); err != nil {
				return "", err
			}
			p := filepath.Join(dir, "link")
			return p, os.Symlink(target, p)
		}), want: verifiedWarn("cache")},
		{name: "configuration over 1 MiB", cfg: func(s *setup, c map[string]any) {
			c["trustStores"] = map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{strings.Repeat("x", 3*mib/2)}}}
		}, want: badConfig()},
		{name: "stdin of 20 MiB", cfg: func(s *setup, c map[string]any) {
			c["trustStores"] = map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{strings.Repeat("x", 20*mib)}}}
		}, want: anyError()},
		{name: "JSON nested 100000 deep", cfg: func(s *setup, c map[string]any) { c["nestedReferences"] = json.RawMessage(nestedPlaceholder) },
			stdin: nested(100000), want: anyError()},
		{name: "JSON nested 5000 deep in the trust policy", cfg: func(s *setup, c map[string]any) {
			c["trustPolicyDoc"].(map[string]any)["trustPolicies"].([]any)[0].(map[string]any)["registryScopes"] = json.RawMessage(nestedPlaceholder)
		}, stdin: nested(5000), want: badConfig()},
	}
}

func TestHostileConfig(t *testing.T) { runTable(t, configCases()) }
