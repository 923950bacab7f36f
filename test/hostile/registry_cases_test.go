package hostile

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

const (
	reasonIntegrity   = "integrity"
	reasonRegistry    = "registryUnavailable"
	reasonAuth        = "registryAuthFailed"
	reasonNotSigner   = "notAWSSigner"
	reasonSubject     = "subjectMismatch"
	reasonRevocation  = "revocationUnavailable"
	reasonRevoked     = "revoked"
	reasonAlgorithm   = "unsupportedAlgorithm"
	reasonSigningTime = "signingTime"
)

// lyingLength: a response whose Content-Length header is not the
// descriptor's size is refused by oras-go before any byte is read. No
// content was judged, so the product says the registry could not be read
// (couldNotCheck, fail closed); a body that is longer or shorter than
// declared is refused as integrity.
func lyingLength() want { return couldNotCheck(reasonRegistry) }

// boundedRedirects: a registry client follows no more redirects than
// net/http's own limit of 10 (oras-go's auth.Client drops that limit, so
// the product sets its own), so a loop is a few requests, not thousands.
func boundedRedirects(t *testing.T, s *setup, _ outcome) {
	n := s.reg.hits[tEnvelope].Load()
	if n > 11 {
		t.Errorf("%d envelope requests round the redirect loop, want at most 11", n)
	}
	t.Logf("%d envelope requests round the redirect loop", n)
}

// bigManifest is a signature manifest of about size bytes (the padding is
// an annotation), still shaped as a Notation signature of a.
func bigManifest(a *artifact, size int) []byte {
	subj := a.subject
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: sigkit.ArtifactTypeNotary, Config: ocispec.DescriptorEmptyJSON,
		Layers: []ocispec.Descriptor{a.envelopeDesc}, Subject: &subj, Annotations: map[string]string{"pad": strings.Repeat("p", size)}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	return b
}

func twistOn(tg target, f func(w http.ResponseWriter, r *http.Request, it item)) func(*setup) twist {
	return func(*setup) twist { return on(tg, f) }
}

// plantContent gives the run a TMPDIR of its own and plants, in every one
// of the plugin's private cache slots, a content-cache entry with the
// wrong content (same size) for the signature manifest and the envelope.
func plantContent(s *setup) error {
	tmp := filepath.Join(s.dir, "tmp")
	s.env = append(s.env, "TMPDIR="+tmp)
	for i := range 8 {
		dir := filepath.Join(tmp, fmt.Sprintf("ratify-aws-signer-oras-%d", os.Getuid()), fmt.Sprintf("slot-%d", i), "awssigner-content")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		for _, c := range []struct {
			d    digest.Digest
			data []byte
		}{{s.a.manifestDesc.Digest, s.a.manifest}, {s.a.envelopeDesc.Digest, s.a.envelope}} {
			if err := os.WriteFile(filepath.Join(dir, c.d.Algorithm().String()+"-"+c.d.Encoded()), tampered(c.data), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// registryCases: a hostile registry, one misbehaviour per case.
func registryCases() []hcase {
	const mib = 1 << 20
	return []hcase{
		{name: "baseline", want: verified()},
		{name: "baseline sha384 digests", sign: signOpts{alg: digest.SHA384}, want: verified()},
		{name: "baseline sha512 digests", sign: signOpts{alg: digest.SHA512}, want: verified()},

		// Hangs and drips: could not check, before the deadline.
		{name: "subject resolution hangs", twist: twistOn(tSubject, hang), want: couldNotCheck(reasonRegistry)},
		{name: "signature manifest hangs", twist: twistOn(tManifest, hang), want: couldNotCheck(reasonRegistry)},
		{name: "envelope hangs", twist: twistOn(tEnvelope, hang), want: couldNotCheck(reasonRegistry)},
		{name: "envelope drips 1 byte per 100ms", twist: twistOn(tEnvelope, drip), want: couldNotCheck(reasonRegistry)},
		{name: "signature manifest drips 1 byte per 100ms", twist: twistOn(tManifest, drip), want: couldNotCheck(reasonRegistry)},
		{name: "registry unreachable", subject: func(s *setup) string {
			addr, _ := harness.FreeAddr()
			return addr + "/" + repo + "@" + s.a.subject.Digest.String()
		}, want: couldNotCheck(reasonRegistry)},

		// Bodies that do not match their descriptors.
		{name: "envelope endless body", twist: twistOn(tEnvelope, endless), want: refused(reasonIntegrity)},
		{name: "signature manifest endless body", twist: twistOn(tManifest, endless), want: refused(reasonIntegrity)},
		{name: "envelope longer than declared (chunked, +1 MiB)", twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { chunked(longer(it, mib))(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "envelope Content-Length over the descriptor's (+64 KiB)", twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { withLength(longer(it, 64<<10))(w, r, it) })
		}, want: lyingLength()},
		{name: "envelope shorter than declared (chunked, half)", twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { chunked(it.data[:len(it.data)/2])(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "envelope wrong content sha256", twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { withLength(tampered(it.data))(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "envelope wrong content sha384", sign: signOpts{alg: digest.SHA384}, twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { withLength(tampered(it.data))(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "envelope wrong content sha512", sign: signOpts{alg: digest.SHA512}, twist: func(*setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) { withLength(tampered(it.data))(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "signature manifest wrong content sha256", twist: func(*setup) twist {
			return on(tManifest, func(w http.ResponseWriter, r *http.Request, it item) { withLength(tampered(it.data))(w, r, it) })
		}, want: refused(reasonIntegrity)},
		{name: "signature manifest wrong content sha512", sign: signOpts{alg: digest.SHA512}, twist: func(*setup) twist {
			return on(tManifest, func(w http.ResponseWriter, r *http.Request, it item) { withLength(tampered(it.data))(w, r, it) })
		}, want: refused(reasonIntegrity)},

		// A 20 MiB signature manifest: declared honestly it is not fetched;
		// behind a small descriptor it is cut off.
		{name: "signature manifest 20 MiB, declared", prepare: func(s *setup) error {
			s.big = bigManifest(s.a, 20*mib)
			d := digest.FromBytes(s.big)
			s.reg.add("manifests/"+d.String(), item{ocispec.MediaTypeImageManifest, s.big, d, tOther})
			return nil
		}, desc: func(s *setup, d map[string]any) {
			d["digest"], d["size"] = digest.FromBytes(s.big).String(), len(s.big)
		}, want: refused(reasonIntegrity), after: func(t *testing.T, s *setup, _ outcome) {
			if n := s.reg.hits[tOther].Load(); n != 0 {
				t.Errorf("the 20 MiB manifest was requested %d times; its declared size is over the limit", n)
			}
		}},
		{name: "signature manifest 20 MiB behind its real descriptor", twist: func(s *setup) twist {
			s.big = bigManifest(s.a, 20*mib)
			return on(tManifest, func(w http.ResponseWriter, r *http.Request, it item) { chunked(s.big)(w, r, it) })
		}, want: refused(reasonIntegrity)},

		// Subjects by tag.
		{name: "subject by tag", prepare: func(s *setup) error {
			s.reg.add("manifests/v1", item{ocispec.MediaTypeImageManifest, s.a.subjectBytes, s.a.subject.Digest, tSubject})
			return nil
		}, subject: func(s *setup) string { return s.reg.host + "/" + repo + ":v1" }, want: verified()},
		{name: "subject tag resolved to another image", prepare: func(s *setup) error {
			b, err := s.w.sign(signOpts{})
			if err != nil {
				return err
			}
			s.reg.add("manifests/v1", item{ocispec.MediaTypeImageManifest, b.subjectBytes, b.subject.Digest, tSubject})
			return nil
		}, subject: func(s *setup) string { return s.reg.host + "/" + repo + ":v1" }, want: refused(reasonSubject)},

		// Lying referrer descriptors on stdin.
		{name: "descriptor size smaller than the manifest", desc: func(s *setup, d map[string]any) { d["size"] = s.a.manifestDesc.Size - 10 }, want: lyingLength()},
		{name: "descriptor size larger than the manifest", desc: func(s *setup, d map[string]any) { d["size"] = s.a.manifestDesc.Size + 10 }, want: lyingLength()},
		{name: "descriptor size zero", desc: func(s *setup, d map[string]any) { d["size"] = 0 }, want: refused()},
		{name: "descriptor media type image index", desc: func(s *setup, d map[string]any) { d["mediaType"] = ocispec.MediaTypeImageIndex }, want: refused(reasonNotSigner)},
		{name: "descriptor artifact type SBOM", desc: func(s *setup, d map[string]any) { d["artifactType"] = "application/spdx+json" }, want: refused(reasonNotSigner)},
		{name: "descriptor digest md5", desc: func(s *setup, d map[string]any) { d["digest"] = "md5:" + strings.Repeat("0", 32) }, want: refused()},
		{name: "descriptor digest a path", desc: func(s *setup, d map[string]any) { d["digest"] = "sha256:../../../../etc/passwd" }, want: refused()},
		{name: "subject digest of an unknown algorithm", subject: func(s *setup) string { return s.reg.host + "/" + repo + "@sha999:" + strings.Repeat("a", 64) },
			want: want{errorCode: -1}},
		{name: "subject not a reference", subject: func(s *setup) string { return "not a reference" }, want: want{errorCode: -1}},
		{name: "descriptor names another image's signature", prepare: func(s *setup) error {
			b, err := s.w.sign(signOpts{})
			if err != nil {
				return err
			}
			s.reg.addArtifact(b)
			s.a2 = b
			return nil
		}, desc: func(s *setup, d map[string]any) {
			d["digest"], d["size"] = s.a2.manifestDesc.Digest.String(), s.a2.manifestDesc.Size
		}, want: refused(reasonSubject)},

		// Lying signature manifests.
		{name: "manifest declares a 33 MiB envelope", sign: signOpts{manifest: func(m *ocispec.Manifest) { m.Layers[0].Size = 33 * mib }},
			want: refused(reasonIntegrity), after: func(t *testing.T, s *setup, _ outcome) {
				if n := s.reg.hits[tEnvelope].Load(); n != 0 {
					t.Errorf("the envelope was requested %d times; its declared size is over the limit", n)
				}
			}},
		{name: "manifest declares the envelope 100 bytes short", sign: signOpts{manifest: func(m *ocispec.Manifest) { m.Layers[0].Size -= 100 }},
			want: lyingLength()},
		{name: "manifest artifact type SBOM", sign: signOpts{manifest: func(m *ocispec.Manifest) { m.ArtifactType = "application/spdx+json" }}, want: refused(reasonNotSigner)},
		{name: "manifest with two envelopes", sign: signOpts{manifest: func(m *ocispec.Manifest) { m.Layers = append(m.Layers, m.Layers[0]) }}, want: refused(reasonNotSigner)},
		{name: "manifest envelope of media type COSE", sign: signOpts{manifest: func(m *ocispec.Manifest) { m.Layers[0].MediaType = "application/cose" }}, want: refused(reasonNotSigner)},
		{name: "manifest subject is another image", sign: signOpts{manifest: func(m *ocispec.Manifest) {
			d := *m.Subject
			d.Digest = digest.FromString("another image")
			m.Subject = &d
		}}, want: refused(reasonSubject)},

		// Redirects.
		{name: "envelope redirect loop", twist: twistOn(tEnvelope, redirectLoop), want: couldNotCheck(reasonRegistry), after: boundedRedirects},
		{name: "envelope redirect loop, 10.5 s deadline", twist: twistOn(tEnvelope, redirectLoop), cfg: func(s *setup, c map[string]any) {
			c["revocation"] = map[string]any{"timeout": "10s", "cacheTTL": "0s"}
		}, want: want{verdict: "couldNotCheck", reasons: []string{reasonRegistry}, deadline: 11 * time.Second}, after: boundedRedirects},
		{name: "envelope redirected to another loopback port", twist: func(s *setup) twist {
			s.other = newElsewhere()
			s.closers = append(s.closers, s.other.srv.Close)
			return on(tEnvelope, s.other.redirectTo)
		}, want: verified(), after: func(t *testing.T, s *setup, _ outcome) {
			if s.other.sawCreds.Load() {
				t.Errorf("the registry's credentials followed the redirect to another origin (%s)", s.other.srv.URL)
			}
		}},
		{name: "envelope redirected to a closed port", twist: func(s *setup) twist {
			return on(tEnvelope, func(w http.ResponseWriter, r *http.Request, it item) {
				addr, _ := harness.FreeAddr()
				http.Redirect(w, r, "http://"+addr+"/blob", http.StatusTemporaryRedirect)
			})
		}, want: couldNotCheck(reasonRegistry)},

		// The plugin's content cache holds wrong content: it is not used.
		{name: "content cache planted with wrong content", prepare: plantContent, want: verified(), after: func(t *testing.T, s *setup, _ outcome) {
			if s.reg.hits[tManifest].Load() == 0 || s.reg.hits[tEnvelope].Load() == 0 {
				t.Errorf("the signature was not read from the registry (manifest %d, envelope %d reads): the planted content was used",
					s.reg.hits[tManifest].Load(), s.reg.hits[tEnvelope].Load())
			}
			// The planted entry was where the plugin looks: it was replaced.
			d := s.a.envelopeDesc.Digest
			paths, _ := filepath.Glob(filepath.Join(s.dir, "tmp", "*", "slot-*", "awssigner-content", d.Algorithm().String()+"-"+d.Encoded()))
			replaced := false
			for _, p := range paths {
				if b, err := os.ReadFile(p); err == nil && string(b) == string(s.a.envelope) {
					replaced = true
				}
			}
			if !replaced {
				t.Errorf("no slot's content cache holds the envelope after the run (%d planted files): is the case planting where the plugin looks?", len(paths))
			}
		}},
		{name: "content cache planted with wrong content, envelope hangs", prepare: plantContent, twist: twistOn(tEnvelope, hang), want: couldNotCheck(reasonRegistry)},

		// Transport tricks.
		{name: "envelope gzip bomb (1 GiB of zeros)", twist: twistOn(tEnvelope, gzipBomb), want: refused(reasonIntegrity)},
		{name: "signature manifest gzip bomb (1 GiB of zeros)", twist: twistOn(tManifest, gzipBomb), want: refused(reasonIntegrity)},
		{name: "envelope with a 10 MiB response header", twist: twistOn(tEnvelope, hugeHeader), want: couldNotCheck(reasonRegistry)},

		// Refusals and errors.
		{name: "403 with a 1 MiB error message of braces and escapes", twist: twistOn(tEnvelope, loudError), want: couldNotCheck(reasonAuth)},
		{name: "403 echoing the credentials", twist: twistOn(tEnvelope, echoAuth), want: couldNotCheck(reasonAuth)},
		{name: "401 on every request", twist: func(*setup) twist {
			return func(w http.ResponseWriter, r *http.Request, _ target, it item) bool {
				status(http.StatusUnauthorized)(w, r, it)
				return true
			}
		}, want: couldNotCheck(reasonAuth)},
		{name: "403 on the envelope", twist: twistOn(tEnvelope, status(http.StatusForbidden)), want: couldNotCheck(reasonAuth)},
		{name: "403 on subject resolution", twist: twistOn(tSubject, status(http.StatusForbidden)), want: couldNotCheck(reasonAuth)},
		{name: "500 on the signature manifest", twist: twistOn(tManifest, status(http.StatusInternalServerError)), want: couldNotCheck(reasonRegistry)},
		{name: "503 on subject resolution", twist: twistOn(tSubject, status(http.StatusServiceUnavailable)), want: couldNotCheck(reasonRegistry)},
	}
}

func TestHostileRegistry(t *testing.T) { runTable(t, registryCases()) }
