package hostile

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

// world is what every case shares: the AWS Signer emulator (the honest
// answers, revocations) and its profile "Team", whose CA signs envelopes.
type world struct {
	emu                    *signeremu.Emulator
	ca                     *sigkit.CA
	profileARN, versionARN string
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func getWorld(t *testing.T) *world {
	t.Helper()
	worldOnce.Do(func() {
		emu, err := signeremu.Start(signeremu.Options{})
		if err != nil {
			worldErr = err
			return
		}
		w := &world{emu: emu, ca: emu.CA()}
		if w.profileARN, w.versionARN, err = emu.CreateProfile("Team", 12); err != nil {
			emu.Close()
			worldErr = err
			return
		}
		theWorld = w
	})
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return theWorld
}

func closeWorld() {
	if theWorld != nil {
		theWorld.emu.Close()
	}
}

const repo = "team/app"

// artifact is an image and one signature of it, as a registry serves them.
type artifact struct {
	subject      ocispec.Descriptor
	subjectBytes []byte
	manifest     []byte // the signature manifest
	manifestDesc ocispec.Descriptor
	envelope     []byte
	envelopeDesc ocispec.Descriptor
	jobARN       string
}

// signOpts changes how an artifact is made.
type signOpts struct {
	// edit changes the envelope's spec before it is signed.
	edit func(*sigkit.Spec) error
	// envelope replaces the envelope bytes (malformed envelopes).
	envelope []byte
	// alg addresses the signature manifest and the envelope (default sha256).
	alg digest.Algorithm
	// manifest edits the signature manifest before it is encoded.
	manifest func(*ocispec.Manifest)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sign makes an image and a signature of it by profile "Team" with a job
// of its own (so revoking it touches no other case).
func (w *world) sign(o signOpts) (*artifact, error) {
	a := &artifact{jobARN: fmt.Sprintf("arn:aws:signer:us-west-2:%s:/signing-jobs/%s-%s-%s-%s-%s", w.emu.Account(), randomHex(4), randomHex(2), randomHex(2), randomHex(2), randomHex(6))}
	img := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        ocispec.DescriptorEmptyJSON,
		"layers":        []any{},
		"annotations":   map[string]string{"nonce": randomHex(8)},
	}
	var err error
	if a.subjectBytes, err = json.Marshal(img); err != nil {
		return nil, err
	}
	a.subject = sigkit.Descriptor(ocispec.MediaTypeImageManifest, a.subjectBytes)
	if o.envelope != nil {
		a.envelope = o.envelope
	} else {
		spec := sigkit.Spec{Subject: a.subject, ProfileVersionARN: w.versionARN, JobARN: a.jobARN, SigningTime: time.Now().Add(-time.Minute)}
		if o.edit != nil {
			if err := o.edit(&spec); err != nil {
				return nil, err
			}
		}
		env, err := w.ca.Sign(spec)
		if err != nil {
			return nil, err
		}
		a.envelope = env.Raw
	}
	alg := o.alg
	if alg == "" {
		alg = digest.SHA256
	}
	a.envelopeDesc = ocispec.Descriptor{MediaType: sigkit.MediaTypeJWS, Digest: alg.FromBytes(a.envelope), Size: int64(len(a.envelope))}
	subj := a.subject
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: sigkit.ArtifactTypeNotary,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{a.envelopeDesc},
		Subject:      &subj,
	}
	m.SchemaVersion = 2
	if o.manifest != nil {
		o.manifest(&m)
	}
	if a.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	a.manifestDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: alg.FromBytes(a.manifest), Size: int64(len(a.manifest))}
	return a, nil
}

// mustSign is sign for a test goroutine.
func (w *world) mustSign(t *testing.T, o signOpts) *artifact {
	t.Helper()
	a, err := w.sign(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// referenceDesc is the referrer descriptor Ratify passes on stdin.
func (a *artifact) referenceDesc() map[string]any {
	return map[string]any{
		"mediaType":    a.manifestDesc.MediaType,
		"digest":       a.manifestDesc.Digest.String(),
		"size":         a.manifestDesc.Size,
		"artifactType": sigkit.ArtifactTypeNotary,
	}
}

// config is the verifier configuration of a policy of the given level
// trusting profile "Team", with the emulator's root, revocation against
// endpoint (the emulator when empty), no revocation cache, and extra keys
// merged in.
func (w *world) config(level, endpoint string, extra map[string]any) map[string]any {
	if endpoint == "" {
		endpoint = w.emu.URL()
	}
	statement := map[string]any{
		"name": "team", "registryScopes": []string{"*"},
		"signatureVerification": map[string]any{"level": level},
		"trustStores":           []string{"signingAuthority:aws-signer-ts"},
		"trustedIdentities":     []string{w.profileARN},
	}
	if level == "skip" {
		// notation refuses trust stores and identities with skip.
		delete(statement, "trustStores")
		delete(statement, "trustedIdentities")
	}
	c := map[string]any{
		"name":           "verifier-awssigner",
		"type":           "awssigner",
		"artifactTypes":  sigkit.ArtifactTypeNotary,
		"trustPolicyDoc": map[string]any{"version": "1.0", "trustPolicies": []any{statement}},
		"trustStores":    map[string]any{"signingAuthority": map[string]any{"aws-signer-ts": []string{string(w.ca.RootPEM())}}},
		"revocation":     map[string]any{"timeout": "2s", "cacheTTL": "0s"},
		"aws":            map[string]any{"endpoint": endpoint},
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// stdinDoc is the document Ratify writes to the plugin's stdin.
func stdinDoc(config map[string]any, desc map[string]any, orasCache string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"config":        config,
		"storeConfig":   map[string]any{"version": "1.0.0", "pluginBinDirs": nil, "store": map[string]any{"name": "oras", "useHttp": true, "localCachePath": orasCache}},
		"referenceDesc": desc,
	})
}

// runDir makes a run's HOME with a Docker config that logs in to host
// with the registry credentials.
func runDir(parent, host string) (string, error) {
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return "", err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + registryPassword))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	if err := os.MkdirAll(filepath.Join(dir, "docker"), 0o700); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "docker", "config.json"), cfg, 0o600)
}
