package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
)

// A hostile AWS Signer endpoint (aws.endpoint): GetRevocationStatus is
// answered by the case's handler; anything else by the emulator.
func revocations(f http.HandlerFunc) func(s *setup) http.Handler {
	return func(s *setup) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/revocations" {
				f(w, r)
				return
			}
			s.w.emu.ServeHTTP(w, r)
		})
	}
}

func badJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"revokedEntities":[`))
}

// hugeBody streams 100 MiB of valid JSON that says nothing is revoked: a
// client that reads it all would verify.
func hugeBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write([]byte(`{"revokedEntities":[],"padding":"`)); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for sent := 0; sent < 100<<20; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
			return
		}
	}
	_, _ = w.Write([]byte(`"}`))
}

// resetMidBody sends headers and part of the body, then resets the
// connection.
func resetMidBody(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"revokedEnt")
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// late answers honestly after 3 s, past the 2 s revocation budget.
func late(s *setup) http.Handler {
	return revocations(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(3 * time.Second):
		}
		s.w.emu.ServeHTTP(w, r)
	})(s)
}

// hangSigner never answers (until the client gives up).
func hangSigner(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(15 * time.Second):
	}
}

// dripSigner sends an honest-looking answer one byte every 100 ms.
func dripSigner(w http.ResponseWriter, r *http.Request) {
	body := []byte(`{"revokedEntities":[]}`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	for i := range body {
		if _, err := w.Write(body[i : i+1]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func oddBadRequest(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte("<html><body>\x00\xff nope {{{ ]]"))
}

// echoAuth refuses with the request's Authorization header (SigV4: the
// access key ID) in the message.
func echoAuthSigner(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
	w.WriteHeader(http.StatusForbidden)
	b, _ := json.Marshal(map[string]string{"message": "denied for " + r.Header.Get("Authorization")})
	_, _ = w.Write(b)
}

// redirectLoop sends GetRevocationStatus round a redirect loop and counts
// the hops.
func redirectLoopSigner(hops *atomic.Int64) func(s *setup) http.Handler {
	return func(s *setup) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/revocations" || r.URL.Path == "/loop" {
				hops.Add(1)
				http.Redirect(w, r, "/loop?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
				return
			}
			s.w.emu.ServeHTTP(w, r)
		})
	}
}

func throttled(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"message":"Rate exceeded"}`))
}

func internalError(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", "InternalServiceErrorException")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"message":""}`))
}

// calls asserts how many GetRevocationStatus calls the endpoint received.
func calls(lo, hi int64) func(t *testing.T, s *setup, _ outcome) {
	return func(t *testing.T, s *setup, _ outcome) {
		n := s.aws.calls.Load()
		if n < lo || n > hi {
			t.Errorf("%d GetRevocationStatus calls, want %d to %d (retries bounded)", n, lo, hi)
		}
		t.Logf("%d GetRevocationStatus calls", n)
	}
}

func signerCases() []hcase {
	unavailable := func(level string) want {
		if level == "strict" {
			return couldNotCheck(reasonRevocation)
		}
		w := verified()
		w.revocation = "unavailable"
		return w
	}
	cases := []hcase{
		{name: "baseline through the endpoint", signer: func(s *setup) http.Handler { return s.w.emu }, want: verified(), after: calls(1, 1)},
	}
	faults := []struct {
		name    string
		handler func(s *setup) http.Handler
	}{
		{"bad JSON", revocations(badJSON)},
		{"100 MiB body", revocations(hugeBody)},
		{"connection reset mid-body", revocations(resetMidBody)},
		{"answer after 3s", late},
		{"never answers", revocations(hangSigner)},
		{"answer dripped 1 byte per 100ms", revocations(dripSigner)},
		{"400 with an HTML body", revocations(oddBadRequest)},
		{"429 throttled", revocations(throttled)},
		{"403 echoing the credentials", revocations(echoAuthSigner)},
		{"500 internal error", revocations(internalError)},
	}
	for _, f := range faults {
		for _, level := range []string{"strict", "permissive"} {
			cases = append(cases, hcase{name: f.name + " " + level, level: level, signer: f.handler, want: unavailable(level),
				after: calls(1, config.DefaultMaxAttempts)})
		}
	}
	// AWS Signer never redirects: a loop is not followed (one request per
	// attempt), whatever the budget.
	loop := func(name, level, timeout string, deadline time.Duration) hcase {
		var hops atomic.Int64
		w := unavailable(level)
		w.deadline = deadline
		return hcase{name: name, level: level, signer: redirectLoopSigner(&hops), want: w,
			cfg: func(s *setup, c map[string]any) {
				c["revocation"] = map[string]any{"timeout": timeout, "cacheTTL": "0s"}
			},
			after: func(t *testing.T, s *setup, _ outcome) {
				if n := hops.Load(); n > config.DefaultMaxAttempts {
					t.Errorf("%d requests round the redirect loop, want at most %d (one per attempt)", n, config.DefaultMaxAttempts)
				}
				t.Logf("%d requests round the redirect loop", hops.Load())
			}}
	}
	cases = append(cases,
		loop("redirect loop strict", "strict", "2s", 0),
		loop("redirect loop permissive", "permissive", "2s", 0),
		loop("redirect loop strict, 10 s budget", "strict", "10s", 11*time.Second),
	)
	return cases
}

func TestHostileSigner(t *testing.T) { runTable(t, signerCases()) }
