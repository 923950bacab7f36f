package hostile

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hcase is one hostile run: a verifying baseline (a good signature in a
// good registry, the emulator answering, a strict policy) changed in one
// thing.
type hcase struct {
	name string
	// sign changes the signature (envelope, digests).
	sign signOpts
	// level of the trust policy (default strict).
	level string
	// twist makes the registry misbehave.
	twist func(s *setup) twist
	// desc edits the referrer descriptor on stdin.
	desc func(s *setup, d map[string]any)
	// signer, when set, is the AWS Signer endpoint instead of the emulator.
	signer func(s *setup) http.Handler
	// cfg edits the verifier configuration.
	cfg func(s *setup, c map[string]any)
	// prepare runs after the registry is up.
	prepare func(s *setup) error
	// stdin edits the stdin document's bytes.
	stdin func([]byte) []byte
	// limit overrides how long the run may take before it is killed.
	limit time.Duration
	// subject overrides RATIFY_VERIFIER_SUBJECT.
	subject func(s *setup) string
	want    want
	// after makes extra assertions.
	after func(t *testing.T, s *setup, o outcome)
}

// setup is a case's running parts.
type setup struct {
	w     *world
	a     *artifact
	a2    *artifact // a second signature, when a case needs one
	reg   *hreg
	aws   *hsigner
	other *elsewhere
	dir   string
	// big is large content a case serves.
	big []byte
	// env is added to the run's environment.
	env []string
	// closers stop extra servers.
	closers []func()
}

func (s *setup) close() {
	for _, c := range s.closers {
		c()
	}
	if s.aws != nil {
		s.aws.srv.Close()
	}
	if s.reg != nil {
		s.reg.close()
		// Keep the counters for the checks; let the content go.
		s.reg.mu.Lock()
		s.reg.items, s.reg.twist = nil, nil
		s.reg.mu.Unlock()
	}
	s.big = nil
}

// hsigner is an AWS Signer endpoint of a case's making; it counts the
// GetRevocationStatus calls it receives.
type hsigner struct {
	srv   *httptest.Server
	calls atomic.Int64
}

func newSigner(h http.Handler) *hsigner {
	s := &hsigner{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/revocations" {
			s.calls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	return s
}

func (c hcase) setup(w *world, base string) (*setup, invocation, error) {
	s := &setup{w: w}
	a, err := w.sign(c.sign)
	if err != nil {
		return nil, invocation{}, err
	}
	s.a = a
	var tw twist
	if c.twist != nil {
		tw = c.twist(s)
	}
	s.reg = newRegistry(a, tw)
	endpoint := ""
	if c.signer != nil {
		s.aws = newSigner(c.signer(s))
		endpoint = s.aws.srv.URL
	}
	if s.dir, err = runDir(base, s.reg.host); err != nil {
		return s, invocation{}, err
	}
	if c.prepare != nil {
		if err := c.prepare(s); err != nil {
			return s, invocation{}, err
		}
	}
	level := c.level
	if level == "" {
		level = "strict"
	}
	cfg := w.config(level, endpoint, nil)
	if c.cfg != nil {
		c.cfg(s, cfg)
	}
	desc := a.referenceDesc()
	if c.desc != nil {
		c.desc(s, desc)
	}
	subject := s.reg.subjectRef(a)
	if c.subject != nil {
		subject = c.subject(s)
	}
	in, err := stdinDoc(cfg, desc, filepath.Join(s.dir, "oras"))
	if err != nil {
		return s, invocation{}, err
	}
	if c.stdin != nil {
		in = c.stdin(in)
	}
	return s, invocation{subject: subject, stdin: in, dir: s.dir, env: s.env, limit: c.limit}, nil
}

// runTable runs every case's plugin process (sharing the slots with the
// other tables, which run in parallel), then checks each as a subtest.
func runTable(t *testing.T, cases []hcase) {
	t.Helper()
	t.Parallel()
	w := getWorld(t)
	base := t.TempDir()
	type res struct {
		s   *setup
		o   outcome
		err error
	}
	out := make([]res, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			s, inv, err := c.setup(w, base)
			if s != nil {
				// Servers stop (and large content goes) as soon as the run ends.
				defer s.close()
			}
			if err != nil {
				out[i] = res{s: s, err: err}
				return
			}
			out[i] = res{s: s, o: run(inv)}
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := out[i]
			if r.err != nil {
				t.Fatal(r.err)
			}
			check(t, t.Name(), r.o, c.want)
			if c.after != nil {
				c.after(t, r.s, r.o)
			}
		})
	}
}
