package serve

// The /checkimages endpoint under odd but legal Kyverno inputs, a hostile
// caller and a hostile TokenReview API (the findings of the endpoint's
// security review; each test names what it guards).

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/registry"
)

// An image given by tag and digest is checked by its digest, whatever the
// tag names, and gets no patch (it is already pinned).
func TestCheckImagesTagAndDigest(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	_, signedDesc, _ := f.signed("team/app", "signed", "")
	_, unsignedDesc, err := f.stack.PushImage(ctxT(t), "team/app", "unsigned")
	fatalIf(t, err)
	host := f.stack.Registry.Host
	image := func(tag string, d ocispec.Descriptor) map[string]map[string]kyverno.Image {
		img := kyverno.Image{Registry: host, Path: "team/app", Name: "app", Tag: tag, Digest: d.Digest.String(), JSONPointer: "/spec/containers/0/image"}
		img.Reference = img.Ref()
		return map[string]map[string]kyverno.Image{"containers": {"c": img}}
	}
	// The signed tag with the unsigned digest: refused, the digest named.
	status, body, _ := f.checkImages(kbody(t, image("signed", unsignedDesc), nil), f.token)
	if status != http.StatusNotAcceptable || !strings.HasPrefix(body, host+"/team/app@"+unsignedDesc.Digest.String()+": ") {
		t.Errorf("signed tag, unsigned digest: HTTP %d %s", status, body)
	}
	// The unsigned tag with the signed digest: verified by digest, no patch.
	status, body, resp := f.checkImages(kbody(t, image("unsigned", signedDesc), nil), f.token)
	if status != http.StatusOK || len(resp.Results) != 0 || !strings.Contains(resp.Message, host+"/team/app@"+signedDesc.Digest.String()) {
		t.Errorf("unsigned tag, signed digest: HTTP %d %s", status, body)
	}
}

// A tag that resolves to an image index: the index is what is verified
// and what the patch pins (the kubelet then pulls by the index's digest);
// a signature on one platform's manifest does not pass the index.
func TestCheckImagesIndex(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	img, err := f.stack.Image("team/multi")
	fatalIf(t, err)
	var manifests []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		d, err := registry.PushImage(ctx, img.Repo, "", []byte("multi "+arch+" "+time.Now().String()))
		fatalIf(t, err)
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, d)
	}
	pushIndex := func(tag string) ocispec.Descriptor {
		raw, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests,
			Annotations: map[string]string{"tag": tag}})
		fatalIf(t, err)
		d := content.NewDescriptorFromBytes(ocispec.MediaTypeImageIndex, raw)
		fatalIf(t, img.Repo.Push(ctx, d, bytes.NewReader(raw)))
		fatalIf(t, img.Repo.Tag(ctx, d, tag))
		return d
	}
	signedIndex := pushIndex("signed")
	_, _, err = f.stack.Sign(ctx, "team/multi", signedIndex, "")
	fatalIf(t, err)
	unsignedIndex := pushIndex("platform-signed")
	_, _, err = f.stack.Sign(ctx, "team/multi", manifests[0], "")
	fatalIf(t, err)

	host := f.stack.Registry.Host
	one := func(tag string) map[string]map[string]kyverno.Image {
		return map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, host+"/team/multi:"+tag, "/spec/containers/0/image")}}
	}
	status, body, resp := f.checkImages(kbody(t, one("signed"), nil), f.token)
	if status != http.StatusOK || len(resp.Results) != 1 || resp.Results[0].Value != host+"/team/multi@"+signedIndex.Digest.String() {
		t.Errorf("signed index by tag: HTTP %d %s (want the index %s pinned)", status, body, signedIndex.Digest)
	}
	status, body, _ = f.checkImages(kbody(t, one("platform-signed"), nil), f.token)
	if status != http.StatusNotAcceptable || !strings.Contains(body, "no Notation signature found") {
		t.Errorf("index %s unsigned, one platform signed: HTTP %d %s", unsignedIndex.Digest, status, body)
	}
}

// server.maxKeys bounds the image entries of a request: exactly maxKeys
// are served (the same image in each: one check, one patch per place),
// one more is 413.
func TestCheckImagesMaxKeys(t *testing.T) {
	f := newFixtureWith(t, "5m", map[string]any{"maxKeys": 3}, fixtureOptions{kyverno: true})
	ref, desc, _ := f.signed("team/app", "v1", "")
	images := func(n int) map[string]map[string]kyverno.Image {
		c := map[string]kyverno.Image{}
		for i := 0; i < n; i++ {
			c[fmt.Sprintf("c%d", i)] = kimage(t, ref, fmt.Sprintf("/spec/containers/%d/image", i))
		}
		return map[string]map[string]kyverno.Image{"containers": c}
	}
	status, body, resp := f.checkImages(kbody(t, images(3), nil), f.token)
	if status != http.StatusOK || len(resp.Results) != 3 {
		t.Fatalf("maxKeys images: HTTP %d %s", status, body)
	}
	for _, r := range resp.Results {
		if r.Value != f.stack.Registry.Host+"/team/app@"+desc.Digest.String() {
			t.Errorf("patch %+v", r)
		}
	}
	if status, body, _ := f.checkImages(kbody(t, images(4), nil), f.token); status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "4 images, over the limit of 3 (server.maxKeys)") {
		t.Errorf("maxKeys+1 images: HTTP %d %s", status, body)
	}
	if n := f.signerCalls(); n != 1 {
		t.Errorf("%d GetRevocationStatus calls for one image in 3 places, want 1", n)
	}
}

// A 406 body stays within 64 KiB however many images fail, and says how
// many lines were left out (Kyverno drops a body over its
// maxAPICallResponseLength, and the denial is read by people).
func TestCheckImagesRefusalBounded(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	c := map[string]kyverno.Image{}
	long := strings.Repeat("x", 150)
	for i := 0; i < config.DefaultMaxKeys; i++ {
		c[fmt.Sprintf("c%d", i)] = kimage(t, fmt.Sprintf("%s/team/%s%d:v1", f.stack.Registry.Host, long, i), fmt.Sprintf("/spec/containers/%d/image", i))
	}
	status, body, _ := f.checkImages(kbody(t, map[string]map[string]kyverno.Image{"containers": c}, nil), f.token)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if status != http.StatusNotAcceptable || len(body) > 64<<10+256 || !strings.Contains(lines[len(lines)-1], "more images not verified") {
		t.Fatalf("HTTP %d, %d bytes, %d lines, last %q", status, len(body), len(lines), lines[len(lines)-1])
	}
	t.Logf("%d images refused: %d bytes, %d lines, last %q", config.DefaultMaxKeys, len(body), len(lines), lines[len(lines)-1])
}

// Patterns that are costly to match (each up to len(pattern)·len(image)
// steps) against many images are refused after a bounded amount of work,
// not matched for seconds outside any deadline.
func TestCheckImagesPatternCost(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	c := map[string]kyverno.Image{}
	path := strings.Repeat("a", 200)
	for i := 0; i < 200; i++ {
		c[fmt.Sprintf("c%d", i)] = kimage(t, fmt.Sprintf("%s/%s:v%d", f.stack.Registry.Host, path, i), fmt.Sprintf("/spec/containers/%d/image", i))
	}
	var patterns []string
	for i := 0; i < 200; i++ {
		patterns = append(patterns, fmt.Sprintf("*%sb%d", strings.Repeat("a", 100), i))
	}
	start := time.Now()
	status, body, _ := f.checkImages(kbody(t, map[string]map[string]kyverno.Image{"containers": c}, map[string]any{"imageReferences": patterns}), f.token)
	if status != http.StatusBadRequest || !strings.Contains(body, "steps to match") {
		t.Errorf("HTTP %d %.300s", status, body)
	}
	t.Logf("answered in %s", time.Since(start))
}

// A caller that sends its body slowly is answered when the request budget
// ends (server.kyverno.timeout), not held until the server's 10 s
// ReadTimeout.
func TestCheckImagesSlowBody(t *testing.T) {
	f := newFixtureWith(t, "5m", map[string]any{"kyverno": map[string]any{"timeout": "500ms"}}, fixtureOptions{kyverno: true})
	tlsCfg, err := f.pki.ClientTLS(false)
	fatalIf(t, err)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"images":`)) // then nothing more
	// The client's transport waits for its body write to end even after
	// its Timeout: end it after that, so a serve that does not answer
	// fails this test instead of hanging it.
	time.AfterFunc(6*time.Second, func() { pw.CloseWithError(errors.New("the test stopped sending")) })
	req, err := http.NewRequest(http.MethodPost, f.checkURL, pr)
	fatalIf(t, err)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer within the client's 5 s: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), "within the request budget (server.kyverno.timeout 500ms)") {
		t.Errorf("HTTP %d %s", resp.StatusCode, raw)
	}
}

// A TokenReview API that echoes the token it is asked about (in
// status.error, or as the username): the caller's token reaches neither
// the 401/403 body nor serve's log.
func TestCheckImagesTokenReviewEcho(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	var mu sync.Mutex
	mode := "error"
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rev map[string]any
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rev)
		token, _ := rev["spec"].(map[string]any)["token"].(string)
		mu.Lock()
		m := mode
		mu.Unlock()
		if m == "error" {
			rev["status"] = map[string]any{"authenticated": false, "error": "[invalid bearer token, token " + token + " is unknown]"}
		} else {
			rev["status"] = map[string]any{"authenticated": true, "user": map[string]any{"username": "system:serviceaccount:x:" + token}, "audiences": []string{"awssigner"}}
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(rev)
	}))
	defer api.Close()
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	fatalIf(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o600))
	fatalIf(t, os.WriteFile(tokenFile, []byte("serve-own-token-0123456789"), 0o600))
	f.writeConfig(f.config("strict", nil, "5m", map[string]any{"kyverno": map[string]any{"tokenReview": map[string]any{"apiServer": api.URL, "caFile": caFile, "tokenFile": tokenFile}}}))
	f.srv.Reload()
	if f.srv.Generation() != 2 {
		t.Fatalf("configuration not applied:\n%s", f.logs.String())
	}
	body := kbody(t, map[string]map[string]kyverno.Image{}, nil)
	for _, tc := range []struct {
		mode   string
		status int
	}{{"error", 401}, {"username", 403}} {
		mu.Lock()
		mode = tc.mode
		mu.Unlock()
		token := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0" + tc.mode
		status, got, _ := f.checkImages(body, token)
		if status != tc.status || strings.Contains(got, token) || !strings.Contains(got, "[token]") {
			t.Errorf("%s: HTTP %d %q", tc.mode, status, got)
		}
		if strings.Contains(f.logs.String(), token) {
			t.Errorf("%s: serve's log has the caller's token", tc.mode)
		}
	}
}

// Configuration reloads while Kyverno's requests run: every request
// answers with the generation it started with (no error, the right
// digest), and a reload that drops the caller from allowedCallers is
// obeyed at once (its admission is not served from the token cache).
func TestCheckImagesReloadWhileServing(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	ref, desc, _ := f.signed("team/app", "v1", "")
	body := kbody(t, map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, ref, "/spec/containers/0/image")}}, nil)
	want := f.stack.Registry.Host + "/team/app@" + desc.Digest.String()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[int]int{}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, raw, resp := f.checkImages(body, f.token)
				mu.Lock()
				answers[status]++
				mu.Unlock()
				if status != http.StatusOK || len(resp.Results) != 1 || resp.Results[0].Value != want {
					t.Errorf("during reloads: HTTP %d %s", status, raw)
					return
				}
			}
		}()
	}
	for i := 0; i < 6; i++ {
		ttl := []string{"30s", "1s"}[i%2]
		f.writeConfig(f.config("strict", nil, "5m", map[string]any{"kyverno": map[string]any{"tokenCacheTTL": ttl}}))
		f.srv.Reload()
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if f.srv.Generation() != 7 {
		t.Errorf("generation %d after 6 reloads", f.srv.Generation())
	}
	t.Logf("answers during reloads: %v", answers)

	// The token is cached now; a configuration without its user refuses it.
	if status, raw, _ := f.checkImages(body, f.token); status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, raw)
	}
	f.writeConfig(f.config("strict", nil, "5m", map[string]any{"kyverno": map[string]any{"allowedCallers": []string{"system:serviceaccount:kyverno:kyverno-reports-controller"}}}))
	f.srv.Reload()
	if status, raw, _ := f.checkImages(body, f.token); status != http.StatusForbidden {
		t.Errorf("after allowedCallers dropped the caller: HTTP %d %s", status, raw)
	}
}
