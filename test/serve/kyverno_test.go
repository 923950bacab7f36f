package serve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/kyverno"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// kimage is ref as Kyverno's images variable has it, written at pointer.
func kimage(t testing.TB, ref, pointer string) kyverno.Image {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	fatalIf(t, err)
	img := kyverno.Image{Registry: reference.Domain(named), Path: reference.Path(named), JSONPointer: pointer}
	img.Name = img.Path[strings.LastIndex(img.Path, "/")+1:]
	if d, ok := named.(reference.Digested); ok {
		img.Digest = d.Digest().String()
	} else if tg, ok := named.(reference.Tagged); ok {
		img.Tag = tg.Tag()
	} else {
		img.Tag = "latest"
	}
	img.Reference = img.Ref()
	img.ReferenceWithTag = img.Repository() + ":" + img.Tag
	return img
}

// kbody is a /checkimages request body.
func kbody(t testing.TB, images map[string]map[string]kyverno.Image, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"images": images}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	fatalIf(t, err)
	return append(b, '\n') // as Kyverno sends it
}

// checkImages POSTs body as Kyverno's apiCall does (no Content-Type) with
// token ("" for none) and returns the status, the body and, on 200, the
// decoded response.
func (f *fixture) checkImages(body []byte, token string) (int, string, kyverno.Response) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.checkURL, bytes.NewReader(body))
	fatalIf(f.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.kc.Do(req)
	fatalIf(f.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var kr kyverno.Response
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			f.t.Errorf("200 with Content-Type %q", ct)
		}
		if err := json.Unmarshal(raw, &kr); err != nil {
			f.t.Fatalf("200, not a response: %v\n%s", err, raw)
		}
	} else if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		f.t.Errorf("HTTP %d with Content-Type %q", resp.StatusCode, ct)
	}
	return resp.StatusCode, string(raw), kr
}

func newKyvernoFixture(t *testing.T, o fixtureOptions) *fixture {
	o.kyverno = true
	return newFixtureWith(t, "5m", nil, o)
}

// A Pod's and a Deployment's signed images: 200, verified, one patch per
// image given by tag pinning it to the verified digest, none for an image
// already given by digest.
func TestCheckImagesSigned(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	web, desc, _ := f.signed("team/web", "v1", "")
	initRef, initDesc, _ := f.signed("team/init", "v2", "")
	_, sideDesc, _ := f.signed("team/side", "v3", "")
	sideByDigest := f.stack.Registry.Host + "/team/side@" + sideDesc.Digest.String()
	host := f.stack.Registry.Host
	for _, tc := range []struct {
		name   string
		prefix string
	}{{"Pod", "/spec"}, {"Deployment", "/spec/template/spec"}} {
		t.Run(tc.name, func(t *testing.T) {
			images := map[string]map[string]kyverno.Image{
				"containers": {
					"web":  kimage(t, web, tc.prefix+"/containers/0/image"),
					"web2": kimage(t, web, tc.prefix+"/containers/2/image"),
					"side": kimage(t, sideByDigest, tc.prefix+"/containers/1/image"),
				},
				"initContainers": {"init": kimage(t, initRef, tc.prefix+"/initContainers/0/image")},
			}
			status, raw, resp := f.checkImages(kbody(t, images, map[string]any{"metadata": map[string]any{"any": "thing"}}), f.token)
			if status != http.StatusOK || !resp.Verified {
				t.Fatalf("HTTP %d %s", status, raw)
			}
			want := map[string]string{
				tc.prefix + "/containers/0/image":     host + "/team/web@" + desc.Digest.String(),
				tc.prefix + "/containers/2/image":     host + "/team/web@" + desc.Digest.String(),
				tc.prefix + "/initContainers/0/image": host + "/team/init@" + initDesc.Digest.String(),
			}
			if len(resp.Results) != len(want) {
				t.Errorf("%d patches, want %d: %+v", len(resp.Results), len(want), resp.Results)
			}
			for _, r := range resp.Results {
				if r.Op != "replace" || want[r.Path] != r.Value {
					t.Errorf("patch %+v, want replace %s with %s", r, r.Path, want[r.Path])
				}
			}
			if !strings.Contains(resp.Message, "3 images verified with trustPolicyDoc: ") || !strings.Contains(resp.Message, sideByDigest) {
				t.Errorf("message %q", resp.Message)
			}
		})
	}
	// No image at all: verified, nothing to patch.
	if status, raw, resp := f.checkImages(kbody(t, map[string]map[string]kyverno.Image{}, nil), f.token); status != 200 || !resp.Verified || resp.Results == nil || len(resp.Results) != 0 {
		t.Errorf("no images: HTTP %d %s", status, raw)
	}
}

// Refused or could not check: HTTP 406, text/plain, one line per failed
// image "<image>: <why>" with our report's message.
func TestCheckImagesRefused(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	good, _, _ := f.signed("team/app", "good", "")
	unsigned := f.unsigned("team/app", "unsigned")
	otherARN, _, err := f.stack.Emulator.CreateProfile("Other", 12)
	fatalIf(t, err)
	untrusted, _, _ := f.signed("team/app", "other", otherARN)
	revoked, _, job := f.signed("team/app", "revoked", "")
	fatalIf(t, f.stack.Emulator.RevokeJob(job))
	down, _, _ := f.signed("team/app", "down", "")
	one := func(ref string) map[string]map[string]kyverno.Image {
		return map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, ref, "/spec/containers/0/image")}}
	}
	for _, tc := range []struct {
		name, ref string
		want      []string
	}{
		{"unsigned", unsigned, []string{unsigned + ": no Notation signature found", "awssigner sign"}},
		{"untrusted", untrusted, []string{untrusted + ": ", otherARN, "not trusted"}},
		{"revoked", revoked, []string{revoked + ": ", "revoked", job}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := f.checkImages(kbody(t, one(tc.ref), nil), f.token)
			if status != http.StatusNotAcceptable {
				t.Fatalf("HTTP %d %s", status, body)
			}
			t.Logf("406: %s", body)
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
		})
	}
	t.Run("AWS down", func(t *testing.T) {
		f.stack.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500})
		defer f.stack.Emulator.ClearFaults()
		status, body, _ := f.checkImages(kbody(t, one(down), nil), f.token)
		if status != http.StatusNotAcceptable || !strings.HasPrefix(body, down+": ") || !strings.Contains(body, "GetRevocationStatus") {
			t.Fatalf("HTTP %d %s", status, body)
		}
	})
	// Several images: one line per failed image, none for the good one.
	images := map[string]map[string]kyverno.Image{"containers": {
		"a": kimage(t, good, "/spec/containers/0/image"), "b": kimage(t, unsigned, "/spec/containers/1/image"),
		"c": kimage(t, untrusted, "/spec/containers/2/image"),
	}}
	status, body, _ := f.checkImages(kbody(t, images, nil), f.token)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if status != http.StatusNotAcceptable || len(lines) != 2 || strings.Contains(body, good+":") {
		t.Errorf("HTTP %d, %d lines:\n%s", status, len(lines), body)
	}
}

// imageReferences select the images checked; the others are skipped and
// listed in the message.
func TestCheckImagesSelection(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	good, desc, _ := f.signed("team/app", "v1", "")
	unsigned := f.unsigned("other/tool", "v1")
	images := map[string]map[string]kyverno.Image{"containers": {
		"app": kimage(t, good, "/spec/containers/0/image"), "tool": kimage(t, unsigned, "/spec/containers/1/image"),
	}}
	host := f.stack.Registry.Host
	for _, tc := range []struct {
		patterns, skip []string
		status         int
		why            string
	}{
		{[]string{host + "/team/*"}, nil, 200, "not selected by imageReferences: "},
		{[]string{"*/team/app:v?"}, nil, 200, "not selected by imageReferences: "},
		{[]string{"nothing.example/*", "*/team/*"}, nil, 200, "not selected by imageReferences: "},
		{[]string{"*"}, nil, 406, ""},
		{nil, nil, 406, ""},
		{[]string{host + "/other/*"}, nil, 406, ""},
		{nil, []string{"*/other/tool:*"}, 200, "skipped by skipImageReferences: "},
		{[]string{"*"}, []string{host + "/other/*", "nothing.example/*"}, 200, "skipped by skipImageReferences: "},
		{nil, []string{"*/team/*"}, 406, ""},
	} {
		extra := map[string]any{}
		if tc.patterns != nil {
			extra["imageReferences"] = tc.patterns
		}
		if tc.skip != nil {
			extra["skipImageReferences"] = tc.skip
		}
		status, body, resp := f.checkImages(kbody(t, images, extra), f.token)
		if status != tc.status {
			t.Errorf("%q %q: HTTP %d %s", tc.patterns, tc.skip, status, body)
			continue
		}
		if status == 200 && (len(resp.Results) != 1 || resp.Results[0].Value != host+"/team/app@"+desc.Digest.String() ||
			!strings.Contains(resp.Message, tc.why+unsigned)) {
			t.Errorf("%q %q: %+v", tc.patterns, tc.skip, resp)
		}
		if status == 406 && !strings.HasPrefix(body, unsigned+": ") {
			t.Errorf("%q %q: %s", tc.patterns, tc.skip, body)
		}
	}
	// Keys Kyverno adds inside an image entry (v1.19: imagePullSecrets) are
	// ignored.
	raw := `{"images":{"containers":{"app":{"registry":"` + host + `","path":"team/app","name":"app","tag":"v1","jsonPointer":"/spec/containers/0/image","imagePullSecrets":null},` +
		`"b":{"registry":"` + host + `","path":"team/app","name":"app","tag":"v1","jsonPointer":"/spec/containers/1/image","imagePullSecrets":[{"name":"pull"}]}}}}`
	if status, body, resp := f.checkImages([]byte(raw), f.token); status != 200 || len(resp.Results) != 2 {
		t.Errorf("imagePullSecrets: HTTP %d %s", status, body)
	}
}

// Named trust policies: one per team. An image of team A's profile passes
// tp-a and is refused by tp-b and by the default document, whatever was
// checked (and cached) before; an unknown name is refused with the names.
func TestCheckImagesNamedTrustPolicies(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	aARN, _, err := f.stack.Emulator.CreateProfile("TeamA", 12)
	fatalIf(t, err)
	bARN, _, err := f.stack.Emulator.CreateProfile("TeamB", 12)
	fatalIf(t, err)
	doc := func(arn string) map[string]any {
		return f.stack.VerifierConfig("awssigner", "strict", []string{arn}, nil)["trustPolicyDoc"].(map[string]any)
	}
	f.opts.docs = map[string]any{"trustPolicyDocs": map[string]any{"tp-a": doc(aARN), "tp-b": doc(bARN)}}
	f.writeConfig(f.config("strict", nil, "5m", nil))
	f.srv.Reload()
	if f.srv.Generation() != 2 {
		t.Fatalf("configuration with trustPolicyDocs not applied:\n%s", f.logs.String())
	}
	ref, desc, _ := f.signed("team-a/app", "v1", aARN)
	images := map[string]map[string]kyverno.Image{"containers": {"app": kimage(t, ref, "/spec/containers/0/image")}}
	ask := func(tp string) (int, string, kyverno.Response) {
		extra := map[string]any{}
		if tp != "-" {
			extra["trustPolicy"] = tp
		}
		return f.checkImages(kbody(t, images, extra), f.token)
	}
	for round := 0; round < 2; round++ { // the second round from the outcome cache
		if status, body, resp := ask("tp-a"); status != 200 || len(resp.Results) != 1 || !strings.HasSuffix(resp.Results[0].Value, desc.Digest.String()) ||
			!strings.Contains(resp.Message, "trust policy tp-a") {
			t.Errorf("round %d tp-a: HTTP %d %s", round, status, body)
		}
		for _, tp := range []string{"tp-b", "", "-"} {
			if status, body, _ := ask(tp); status != 406 || !strings.Contains(body, aARN) {
				t.Errorf("round %d trustPolicy %q: HTTP %d %s", round, tp, status, body)
			}
		}
	}
	status, body, _ := ask("tp-c")
	if status != 406 || !strings.Contains(body, `trust policy "tp-c" is not configured`) || !strings.Contains(body, "tp-a, tp-b") {
		t.Errorf("unknown trust policy: HTTP %d %s", status, body)
	}
	if n := f.signerCalls(); n != 1 {
		t.Errorf("%d GetRevocationStatus calls, want 1 (tp-a once; the others refuse before the Signer)", n)
	}
}

// Requests Kyverno's apiCall never sends, and the two features refused on
// purpose: attestations and insecure.
func TestCheckImagesBadRequests(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	ok := map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, "127.0.0.1:1/app:v1", "/spec/containers/0/image")}}
	big := strings.Repeat("x", 300<<10)
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"not JSON", "{", 400, "not a JSON object"},
		{"array", "[]", 400, "not a JSON object"},
		{"trailing", `{"images":{}} {}`, 400, "data after its JSON object"},
		{"unknown key", `{"images":{},"trustpolicy":"tp-a"}`, 400, `request key "trustpolicy" is unknown`},
		{"no images", `{"imageReferences":["*"]}`, 400, "request has no images"},
		{"images wrong type", `{"images":[]}`, 400, `request key "images"`},
		{"no pointer", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1"}}}}`, 400, "images.containers.c.jsonPointer"},
		{"bad pointer", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1","jsonPointer":"spec/x"}}}}`, 400, "is not a pointer to an image field"},
		// The pointer is echoed into the policy's patchesJson6902 text: one
		// that would end its YAML string (and add a patch of its own), or
		// name a field other than an image, is refused.
		{"pointer breaking out of the patch", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1","jsonPointer":` +
			`"/spec/x\"\n- op: add\n  path: /spec/hostPID\n  value: true\n- path: \"/image"}}}}`, 400, "not a field name or index"},
		{"pointer to another field", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1","jsonPointer":"/metadata/name"}}}}`, 400, "not a pointer to an image field"},
		{"pointer with an escape", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1","jsonPointer":"/spec/a~1b/image"}}}}`, 400, "not a field name or index"},
		{"two images at one pointer", `{"images":{"containers":{"a":{"registry":"r.example","path":"a","tag":"v1","jsonPointer":"/spec/containers/0/image"},` +
			`"b":{"registry":"r.example","path":"b","tag":"v1","jsonPointer":"/spec/containers/0/image"}}}}`, 400, "have the same jsonPointer"},
		// Every entry is a reference as Kyverno writes one, whether
		// imageReferences selects it or not (its text is echoed in the
		// message); a tag never carries a digest.
		{"bad reference not selected", string(kbody(t, map[string]map[string]kyverno.Image{"containers": {
			"c": {Registry: "r.example", Path: "UPPER", Tag: "v1", JSONPointer: "/spec/containers/0/image"}}}, map[string]any{"imageReferences": []string{"nothing.example/*"}})), 400, "not an image reference"},
		{"digest in the tag", `{"images":{"containers":{"c":{"registry":"r.example","path":"app","tag":"v1@sha256:` + strings.Repeat("a", 64) + `","jsonPointer":"/spec/containers/0/image"}}}}`, 400, "is not a tag"},
		{"no path", `{"images":{"containers":{"c":{"registry":"r.example","jsonPointer":"/spec/x"}}}}`, 400, "has no path"},
		{"bad reference", `{"images":{"containers":{"c":{"registry":"r.example","path":"UPPER","tag":"v1","jsonPointer":"/x"}}}}`, 400, "not an image reference"},
		{"empty pattern", string(kbody(t, ok, map[string]any{"imageReferences": []string{""}})), 400, "imageReferences[0]"},
		{"too large", `{"images":{},"metadata":"` + big + `"}`, 413, "over 262144 bytes (server.maxBodyBytes)"},
		{"attestations", string(kbody(t, ok, map[string]any{"attestations": []any{map[string]any{"type": "sbom"}}})), 406, "attestations are not supported"},
		{"insecure", string(kbody(t, ok, map[string]any{"insecure": true})), 406, "insecure is not taken from a request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := f.checkImages([]byte(tc.body), f.token)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("HTTP %d %q, want %d %q", status, body, tc.status, tc.want)
			}
		})
	}
	// Empty attestations and insecure false are what kyverno-notation-aws
	// policies often pass: accepted (the image is then checked: unreachable
	// registry → 406 could not check).
	status, body, _ := f.checkImages(kbody(t, ok, map[string]any{"attestations": []any{}, "insecure": false}), f.token)
	if status != 406 || !strings.Contains(body, "could not check") {
		t.Errorf("empty attestations: HTTP %d %s", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, f.checkURL, nil)
	resp, err := f.kc.Do(req)
	fatalIf(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d", resp.StatusCode)
	}
}

// A Kyverno-only deployment: no Gatekeeper listener and no client CA
// configured; /checkimages serves, over TLS 1.2 too, without a client
// certificate; metrics carry endpoint "kyverno".
func TestCheckImagesWithoutGatekeeper(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{noGatekeeper: true})
	if f.srv.Addr() != "" {
		t.Errorf("Gatekeeper's listener at %s", f.srv.Addr())
	}
	ref, _, _ := f.signed("team/app", "v1", "")
	images := map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, ref, "/spec/containers/0/image")}}
	if status, body, resp := f.checkImages(kbody(t, images, nil), f.token); status != 200 || len(resp.Results) != 1 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	tls12, err := f.pki.ClientTLS(false)
	fatalIf(t, err)
	tls12.MaxVersion = 0x0303
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tls12}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, f.checkURL, bytes.NewReader(kbody(t, images, nil)))
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := c.Do(req)
	fatalIf(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.Version != 0x0303 {
		t.Errorf("TLS 1.2: HTTP %d", resp.StatusCode)
	}
	if s, b := f.get(f.srv.HealthAddr(), "/readyz"); s != 200 || !strings.Contains(b, `"ready":true`) {
		t.Errorf("/readyz %d %s", s, b)
	}
	f.wantMetrics(`awssigner_provider_requests_total{code="200",endpoint="kyverno"} 2`,
		`awssigner_provider_keys_total{endpoint="kyverno",outcome="verified"} 2`,
		`awssigner_outcome_cache_lookups_total{result="hit"} 1`)
}

// The built binary with only the Kyverno listener (test/serve.Start's
// options, as test/kyverno uses them): ready, answers /checkimages with the
// token Start issued, no Gatekeeper URL.
func TestKyvernoProcess(t *testing.T) {
	f := newFixture(t, "5m", nil) // the stack; its in-process server is not used
	ref, desc, _ := f.signed("team/app", "v1", "")
	p, err := Start(ctxT(t), binary, f.dir, f.stack.VerifierConfig("awssigner", "strict", nil, nil), WithKyverno(), WithoutGatekeeper())
	fatalIf(t, err)
	defer func() {
		p.Stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", p.Log())
		}
	}()
	if p.VerifyURL != "" || p.CheckImagesURL == "" || p.KyvernoToken == "" {
		t.Fatalf("process %+v", p)
	}
	client := p.KyvernoClient()
	defer client.CloseIdleConnections()
	images := map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, ref, "/spec/containers/0/image")}}
	status, body, err := p.CheckImages(ctxT(t), client, kbody(t, images, nil))
	fatalIf(t, err)
	var resp kyverno.Response
	if status != 200 || json.Unmarshal(body, &resp) != nil || len(resp.Results) != 1 || resp.Results[0].Value != f.stack.Registry.Host+"/team/app@"+desc.Digest.String() {
		t.Fatalf("HTTP %d %s", status, body)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// Only Kyverno's service accounts are served: the bearer token is checked
// with a TokenReview (audience, user), admitted tokens remembered briefly
// by their hash; with the TokenReview API unreachable or refusing serve,
// nobody new is admitted.
func TestCheckImagesCallerAuth(t *testing.T) {
	f := newKyvernoFixture(t, fixtureOptions{})
	ref, _, _ := f.signed("team/app", "v1", "")
	body := kbody(t, map[string]map[string]kyverno.Image{"containers": {"c": kimage(t, ref, "/spec/containers/0/image")}}, nil)
	r := f.reviewer
	reports := r.Issue("system:serviceaccount:kyverno:kyverno-reports-controller", "awssigner")
	for _, tc := range []struct {
		name, token string
		status      int
		want        string
	}{
		{"admission controller", f.token, 200, ""},
		{"reports controller", reports, 200, ""},
		{"Kyverno chart's default audience", r.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "kyverno-svc.kyverno.io"), 200, ""},
		{"no token", "", 401, "no bearer token"},
		{"unknown token", "not-a-token", 401, "the bearer token is not valid"},
		{"other service account", r.Issue("system:serviceaccount:default:app", "awssigner"), 403, `caller "system:serviceaccount:default:app" is not allowed`},
		{"wrong audience", r.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "https://kubernetes.default.svc"), 401, "not valid for audience awssigner"},
		{"not a token", `abc"def`, 401, "outside RFC 6750's token syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got, _ := f.checkImages(body, tc.token)
			if status != tc.status || !strings.Contains(got, tc.want) {
				t.Errorf("HTTP %d %q, want %d %q", status, got, tc.status, tc.want)
			}
		})
	}
	// Another scheme, and two headers.
	for _, h := range [][]string{{"Basic " + f.token}, {"Bearer " + f.token, "Bearer " + reports}} {
		req, _ := http.NewRequest(http.MethodPost, f.checkURL, bytes.NewReader(body))
		for _, v := range h {
			req.Header.Add("Authorization", v)
		}
		resp, err := f.kc.Do(req)
		fatalIf(t, err)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%q: HTTP %d %q", h, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}

	// Reviews so far: one per row but "no token" and "not a token".
	if n := r.Calls(); n != 6 {
		t.Errorf("%d TokenReviews for the table, want 6 (none without a token or for a value that is no token)", n)
	}
	// Cache: the two admitted tokens were reviewed once each; asking again
	// makes no review.
	before := r.Calls()
	for i := 0; i < 3; i++ {
		if status, got, _ := f.checkImages(body, f.token); status != 200 {
			t.Fatalf("HTTP %d %s", status, got)
		}
	}
	if r.Calls() != before {
		t.Errorf("%d TokenReviews for an admitted token within tokenCacheTTL, want 0", r.Calls()-before)
	}
	f.wantMetrics(`awssigner_caller_token_cache_lookups_total{result="hit"} 3`, `awssigner_caller_auth_total{outcome="allowed"} 6`,
		`awssigner_caller_auth_total{outcome="forbidden"} 1`, `awssigner_caller_auth_total{outcome="wrongAudience"} 1`,
		`awssigner_caller_auth_total{outcome="invalidToken"} 2`, `awssigner_caller_auth_total{outcome="noToken"} 3`,
		`awssigner_provider_requests_total{code="401",endpoint="kyverno"} 6`, `awssigner_provider_requests_total{code="403",endpoint="kyverno"} 1`)

	// Concurrent requests with a new token: one review.
	fresh := r.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "awssigner")
	before = r.Calls()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, got, _ := f.checkImages(body, fresh); status != 200 {
				t.Errorf("HTTP %d %s", status, got)
			}
		}()
	}
	wg.Wait()
	if n := r.Calls() - before; n != 1 {
		t.Errorf("%d TokenReviews for 20 simultaneous requests with one token, want 1", n)
	}

	// The API server down, or refusing serve's own token: a new token is
	// refused (503, fail closed); nothing of it is remembered.
	newToken := r.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "awssigner")
	for _, tc := range []struct {
		status int
		want   string
	}{{503, "answered the TokenReview with HTTP 503"}, {403, "bind serve's ServiceAccount to the ClusterRole system:auth-delegator"}} {
		r.Fail(tc.status)
		if status, got, _ := f.checkImages(body, newToken); status != 503 || !strings.Contains(got, tc.want) {
			t.Errorf("API server failing %d: HTTP %d %s", tc.status, status, got)
		}
	}
	r.Fail(0)
	if status, got, _ := f.checkImages(body, newToken); status != 200 {
		t.Errorf("API server back: HTTP %d %s", status, got)
	}
	r.Close()
	if status, got, _ := f.checkImages(body, r.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "awssigner")); status != 503 || !strings.Contains(got, "TokenReview to the Kubernetes API server") {
		t.Errorf("API server unreachable: HTTP %d %s", status, got)
	}
}

// An admitted token is remembered for tokenCacheTTL only: a token deleted
// in the cluster is refused once that has passed; with 0s every request
// is reviewed.
func TestCheckImagesTokenCacheTTL(t *testing.T) {
	f := newFixtureWith(t, "5m", map[string]any{"kyverno": map[string]any{"tokenCacheTTL": "300ms"}}, fixtureOptions{kyverno: true})
	body := kbody(t, map[string]map[string]kyverno.Image{}, nil)
	if status, got, _ := f.checkImages(body, f.token); status != 200 {
		t.Fatalf("HTTP %d %s", status, got)
	}
	f.reviewer.Revoke(f.token)
	if status, _, _ := f.checkImages(body, f.token); status != 200 {
		t.Errorf("within the TTL: HTTP %d", status)
	}
	time.Sleep(400 * time.Millisecond)
	if status, got, _ := f.checkImages(body, f.token); status != 401 {
		t.Errorf("after the TTL: HTTP %d %s", status, got)
	}

	f.writeConfig(f.config("strict", nil, "5m", map[string]any{"kyverno": map[string]any{"tokenCacheTTL": "0s"}}))
	f.srv.Reload()
	tok := f.reviewer.Issue("system:serviceaccount:kyverno:kyverno-admission-controller", "awssigner")
	before := f.reviewer.Calls()
	for i := 0; i < 3; i++ {
		f.checkImages(body, tok)
	}
	if n := f.reviewer.Calls() - before; n != 3 {
		t.Errorf("%d TokenReviews for 3 requests with tokenCacheTTL 0s", n)
	}
}
