package hostile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// target is which of the plugin's three registry reads a request is.
type target int

const (
	tSubject  target = iota // HEAD (or GET) of the image manifest: resolving the subject
	tManifest               // GET of the signature manifest
	tEnvelope               // GET of the envelope blob
	tOther                  // anything else a case adds
	nTargets
)

// item is content the registry serves.
type item struct {
	mediaType string
	data      []byte
	digest    digest.Digest
	tg        target
}

// twist replaces the registry's answer to one request; it reports whether
// it answered.
type twist func(w http.ResponseWriter, r *http.Request, tg target, it item) bool

// hreg is a registry of our own on 127.0.0.1 (plain HTTP) that serves the
// three OCI endpoints the plugin reads, behind basic authentication with
// the registry credentials, and lets a case twist any answer.
type hreg struct {
	srv   *httptest.Server
	host  string
	twist twist

	mu    sync.Mutex
	items map[string]item // "manifests/<ref>" or "blobs/<digest>"
	hits  [nTargets]atomic.Int64
}

func newRegistry(a *artifact, tw twist) *hreg {
	h := &hreg{twist: tw, items: map[string]item{}}
	if a != nil {
		h.addArtifact(a)
	}
	h.srv = httptest.NewServer(h)
	h.host = strings.TrimPrefix(h.srv.URL, "http://")
	return h
}

func (h *hreg) close() { h.srv.Close() }

func (h *hreg) addArtifact(a *artifact) {
	h.add("manifests/"+a.subject.Digest.String(), item{ocispec.MediaTypeImageManifest, a.subjectBytes, a.subject.Digest, tSubject})
	h.add("manifests/"+a.manifestDesc.Digest.String(), item{ocispec.MediaTypeImageManifest, a.manifest, a.manifestDesc.Digest, tManifest})
	h.add("blobs/"+a.envelopeDesc.Digest.String(), item{a.envelopeDesc.MediaType, a.envelope, a.envelopeDesc.Digest, tEnvelope})
}

func (h *hreg) add(key string, it item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items[key] = it
}

// subjectRef is the reference Ratify passes as RATIFY_VERIFIER_SUBJECT.
func (h *hreg) subjectRef(a *artifact) string {
	return h.host + "/" + repo + "@" + a.subject.Digest.String()
}

func (h *hreg) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != registryUser || p != registryPassword {
		w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
		registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/"+repo+"/")
	h.mu.Lock()
	it, ok := h.items[p]
	h.mu.Unlock()
	if !ok || p == r.URL.Path {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "unknown "+r.URL.Path)
		return
	}
	h.hits[it.tg].Add(1)
	if h.twist != nil && h.twist(w, r, it.tg, it) {
		return
	}
	serve(w, r, it)
}

func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]string{"code": code, "message": msg}}})
}

func headers(w http.ResponseWriter, it item, length int) {
	w.Header().Set("Content-Type", it.mediaType)
	w.Header().Set("Docker-Content-Digest", it.digest.String())
	if length >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(length))
	}
}

// serve answers honestly.
func serve(w http.ResponseWriter, r *http.Request, it item) {
	headers(w, it, len(it.data))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(it.data)
}

// on applies f to requests for tg and answers the others honestly.
func on(tg target, f func(w http.ResponseWriter, r *http.Request, it item)) twist {
	return func(w http.ResponseWriter, r *http.Request, got target, it item) bool {
		if got != tg {
			return false
		}
		f(w, r, it)
		return true
	}
}

// hang never answers (until the client gives up, or 15 s).
func hang(w http.ResponseWriter, r *http.Request, _ item) {
	select {
	case <-r.Context().Done():
	case <-time.After(15 * time.Second):
	}
}

// drip sends the right headers, then one byte every 100 ms.
func drip(w http.ResponseWriter, r *http.Request, it item) {
	headers(w, it, len(it.data))
	w.WriteHeader(http.StatusOK)
	for i := range it.data {
		if _, err := w.Write(it.data[i : i+1]); err != nil {
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

// endless sends the content, then more, forever (chunked, no length; at
// most 16 GiB or 20 s).
func endless(w http.ResponseWriter, r *http.Request, it item) {
	headers(w, it, -1)
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(it.data); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	stop := time.Now().Add(20 * time.Second)
	for sent := int64(0); sent < 16<<30 && time.Now().Before(stop); sent += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
			return
		}
	}
}

// chunked sends body with no Content-Length.
func chunked(body []byte) func(w http.ResponseWriter, r *http.Request, it item) {
	return func(w http.ResponseWriter, r *http.Request, it item) {
		headers(w, it, -1)
		w.WriteHeader(http.StatusOK)
		for len(body) > 0 && r.Context().Err() == nil {
			n := min(len(body), 256<<10)
			if _, err := w.Write(body[:n]); err != nil {
				return
			}
			body = body[n:]
		}
	}
}

// withLength sends body with its own (honest) Content-Length.
func withLength(body []byte) func(w http.ResponseWriter, r *http.Request, it item) {
	return func(w http.ResponseWriter, r *http.Request, it item) {
		headers(w, it, len(body))
		_, _ = w.Write(body)
	}
}

// longer is the content followed by n more bytes.
func longer(it item, n int) []byte {
	return append(append([]byte{}, it.data...), bytes.Repeat([]byte(" "), n)...)
}

// tampered is the content with one byte changed (same length, other digest).
func tampered(data []byte) []byte {
	out := append([]byte{}, data...)
	i := len(out) / 2
	if out[i] == 'x' {
		out[i] = 'y'
	} else {
		out[i] = 'x'
	}
	return out
}

func status(code int) func(w http.ResponseWriter, r *http.Request, it item) {
	return func(w http.ResponseWriter, r *http.Request, it item) {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
		}
		registryError(w, code, "DENIED", http.StatusText(code))
	}
}

// echoAuth refuses with the request's Authorization header in the error
// message, as a registry that echoes what it was sent would.
func echoAuth(w http.ResponseWriter, r *http.Request, it item) {
	registryError(w, http.StatusForbidden, "DENIED", "denied for "+r.Header.Get("Authorization"))
}

// loudError refuses with a 1 MiB error message full of braces, newlines
// and terminal escapes.
func loudError(w http.ResponseWriter, r *http.Request, it item) {
	registryError(w, http.StatusForbidden, "DENIED", strings.Repeat("{\"x\":1}\n\x1b[31m", 1<<20/12))
}

// hugeHeader answers with a 10 MiB response header.
func hugeHeader(w http.ResponseWriter, r *http.Request, it item) {
	w.Header().Set("X-Padding", strings.Repeat("p", 10<<20))
	serve(w, r, it)
}

var (
	bombOnce sync.Once
	bomb     []byte
)

// gzipBomb sends 1 GiB of zeros gzip-compressed with Content-Encoding:
// gzip: 1024 gzip members of 1 MiB of zeros each (a multi-member stream,
// about 1 MiB on the wire).
func gzipBomb(w http.ResponseWriter, r *http.Request, it item) {
	bombOnce.Do(func() {
		var member bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
		_, _ = zw.Write(make([]byte, 1<<20))
		_ = zw.Close()
		bomb = bytes.Repeat(member.Bytes(), 1024)
	})
	w.Header().Set("Content-Type", it.mediaType)
	w.Header().Set("Docker-Content-Digest", it.digest.String())
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Set("Content-Length", fmt.Sprint(len(bomb)))
	_, _ = w.Write(bomb)
}

// redirectLoop redirects a request to itself.
func redirectLoop(w http.ResponseWriter, r *http.Request, it item) {
	http.Redirect(w, r, r.URL.Path+"?again="+fmt.Sprint(time.Now().UnixNano()), http.StatusTemporaryRedirect)
}

// elsewhere is a second loopback server (another port) that serves
// content without authentication, as a registry's blob storage does, and
// remembers whether the registry's credentials followed the redirect.
type elsewhere struct {
	srv      *httptest.Server
	mu       sync.Mutex
	items    map[string]item
	sawCreds atomic.Bool
}

func newElsewhere() *elsewhere {
	e := &elsewhere{items: map[string]item{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			e.sawCreds.Store(true)
		}
		e.mu.Lock()
		it, ok := e.items[r.URL.Path]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		serve(w, r, it)
	}))
	return e
}

// redirectTo redirects to the same content on e.
func (e *elsewhere) redirectTo(w http.ResponseWriter, r *http.Request, it item) {
	p := "/storage/" + it.digest.Encoded()
	e.mu.Lock()
	e.items[p] = it
	e.mu.Unlock()
	http.Redirect(w, r, e.srv.URL+p, http.StatusTemporaryRedirect)
}
