package release

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/cabundle"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/image"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/layer"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/plugin"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/ratify"
	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/sbom"
)

// standInRatify pushes a small two-platform index shaped like Ratify's
// image (a binary, /.ratify/plugins with a built-in plugin, Ratify's user
// and entrypoint) plus an attestation manifest without a platform, as
// buildx publishes, and returns it pinned by digest.
func standInRatify(t *testing.T, host string) (name.Digest, v1.ImageIndex) {
	t.Helper()
	mtime := time.Unix(1700000000, 0)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		l, err := layer.Build([]layer.Entry{
			{Path: "/app", Mode: fs.ModeDir | 0o755},
			{Path: "/app/ratify", Mode: 0o755, Data: []byte("stand-in ratify " + arch)},
			{Path: "/.ratify", Mode: fs.ModeDir | 0o755, UID: 65532, GID: 65532},
			{Path: "/.ratify/plugins", Mode: fs.ModeDir | 0o755, UID: 65532, GID: 65532},
			{Path: "/.ratify/plugins/sbom", Mode: 0o755, UID: 65532, GID: 65532, Data: []byte("built-in plugin " + arch)},
		}, mtime)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), mutate.Addendum{Layer: l, MediaType: types.OCILayer})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture = "linux", arch
		cfg.Config = v1.Config{User: "65532:65532", Entrypoint: []string{"/app/ratify"}, Cmd: []string{"serve", "--http", ":6001"}, Env: []string{"RATIFY_CONFIG=/.ratify/"}}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	att, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: mustLayer(t, "/attestation.json", "{}", mtime), MediaType: types.OCILayer})
	if err != nil {
		t.Fatal(err)
	}
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}})
	tag, err := name.NewTag(host + "/upstream/ratify:v1.4.6")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return tag.Context().Digest(d.String()), idx
}

func mustLayer(t *testing.T, p, data string, mtime time.Time) *layer.Layer {
	l, err := layer.Build([]layer.Entry{{Path: p, Mode: 0o644, Data: []byte(data)}}, mtime)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// tarEntry is one entry of a pulled layer.
type tarEntry struct {
	mode     int64
	uid, gid int
	typ      byte
	mtime    time.Time
	data     []byte
}

func readLayer(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	var last string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		if p < last {
			t.Errorf("layer entries not sorted: %s after %s", p, last)
		}
		last = p
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = tarEntry{mode: h.Mode, uid: h.Uid, gid: h.Gid, typ: h.Typeflag, mtime: h.ModTime, data: data}
	}
}

type pushedSet struct {
	host   string
	base   name.Digest
	baseIx v1.ImageIndex
	emu    *emulator
	dir    string
	byName map[string]Pushed
}

// pushAll pushes the build to a fresh local registry, signed through the
// emulator, once per test that needs it.
func pushAll(t *testing.T) *pushedSet {
	t.Helper()
	m := built(t)
	host := startRegistry(t)
	base, baseIx := standInRatify(t, host)
	emu := startEmulator(t)
	dir := t.TempDir()
	start := time.Now()
	pushed, err := Push(context.Background(), PushOptions{
		Dist: fx.dist, Registry: host + "/release", Tag: "0.1.0-test", PlainHTTP: true, RatifyBase: base.String(),
		Awssigner:  filepath.Join(fx.dist, m.Binaries[VariantStd]["linux/amd64"]),
		ProfileARN: emu.profileARN, AWSEndpoint: emu.url, Env: awsEnv(dir), Log: testLog{t},
	})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	t.Logf("push, sign and SBOMs: %s", time.Since(start).Round(100*time.Millisecond))
	ps := &pushedSet{host: host, base: base, baseIx: baseIx, emu: emu, dir: dir, byName: map[string]Pushed{}}
	for _, p := range pushed {
		ps.byName[p.Name] = p
	}
	return ps
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestPushPullCheck is the whole release path against a local registry
// and the AWS Signer emulator: push, pull back, check every file, run the
// binary from the image, verify the signatures, find the SBOMs.
func TestPushPullCheck(t *testing.T) {
	m := built(t)
	ps := pushAll(t)
	wantNames := []string{RefImage, RefFIPS, RefRatify, RefPluginPrefix + "linux-amd64", RefPluginPrefix + "linux-arm64"}
	for _, n := range wantNames {
		if _, ok := ps.byName[n]; !ok {
			t.Fatalf("push results lack %s: %v", n, ps.byName)
		}
	}
	refs := RefsFor(ps.host+"/release", "0.1.0-test", []string{"linux/amd64", "linux/arm64"})

	binaries := map[string]map[string][]byte{}
	for variant, byPlatform := range m.Binaries {
		binaries[variant] = map[string][]byte{}
		for p, rel := range byPlatform {
			b, err := os.ReadFile(filepath.Join(fx.dist, rel))
			if err != nil {
				t.Fatal(err)
			}
			binaries[variant][p] = b
		}
	}

	extracted := map[string]string{} // variant → amd64 binary pulled from the image
	binDir := t.TempDir()
	for _, c := range []struct{ name, variant, tag string }{{RefImage, VariantStd, refs.Image}, {RefFIPS, VariantFIPS, refs.FIPS}} {
		t.Run(c.name, func(t *testing.T) {
			idx := pullIndex(t, c.tag, ps.byName[c.name].Pinned)
			im, _ := idx.IndexManifest()
			if got := platformsOf(im); got != "linux/amd64 linux/arm64" {
				t.Fatalf("platforms %q", got)
			}
			for _, d := range im.Manifests {
				p := d.Platform.OS + "/" + d.Platform.Architecture
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				checkConfig(t, cfg, m, p)
				files := imageFiles(t, img, m.Created)
				checkAwssignerFiles(t, files, binaries[c.variant][p])
				checkFIPSSetting(t, c.variant, p, files[image.BinaryPath].data)
				if p == "linux/amd64" {
					f := filepath.Join(binDir, c.variant+"-awssigner")
					if err := os.WriteFile(f, files[image.BinaryPath].data, 0o755); err != nil {
						t.Fatal(err)
					}
					extracted[c.variant] = f
				}
				checkSBOM(t, ps.host, c.tag, d, binaries[c.variant][p])
			}
		})
	}

	t.Run("binary from the image", func(t *testing.T) {
		bin := extracted[VariantStd]
		if bin == "" {
			t.Fatal("no amd64 binary extracted")
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "awssigner "+testVersion {
			t.Fatalf("version: %q %v", out, err)
		}
		if v := versionJSON(t, bin); !strings.Contains(v.FIPS, "not a FIPS build") {
			t.Errorf("version -o json: %+v", v)
		}
		// The default arguments name a real subcommand (serve takes --config).
		args := append(append([]string{}, image.DefaultArgs...), "--help")
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "awssigner serve --config") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if s := setting(info, "GOFIPS140"); s != "" && s != "off" {
			t.Errorf("standard binary built with GOFIPS140=%s", s)
		}
		checkPluginRun(t, bin, ps)
	})

	t.Run("fips binary", func(t *testing.T) {
		bin := extracted[VariantFIPS]
		if bin == "" {
			t.Fatal("no amd64 fips binary extracted")
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		// certified = v1.0.0-c2097c7c in Go 1.26 ($GOROOT/lib/fips140/certified.txt).
		if s := setting(info, "GOFIPS140"); !strings.HasPrefix(s, "v1.0.0") {
			t.Errorf("GOFIPS140=%q, want the certified module v1.0.0-…", s)
		}
		if s := setting(info, "DefaultGODEBUG"); !strings.Contains(s, "fips140=on") {
			t.Errorf("DefaultGODEBUG=%q, want fips140=on (FIPS mode by default)", s)
		}
		// The binary says it is a FIPS build in FIPS mode, and verifies the
		// release in FIPS mode (P-384 ECDSA, SHA-384) ...
		if v := versionJSON(t, bin); v.Version != testVersion || !strings.Contains(v.FIPS, "GOFIPS140=v1.0.0") || !strings.Contains(v.FIPS, "FIPS mode on") {
			t.Errorf("version -o json: %+v", v)
		}
		checkPluginRun(t, bin, ps)
		// ... and refuses to verify with FIPS mode turned off.
		if v := versionJSON(t, bin, "GODEBUG=fips140=off"); !strings.Contains(v.FIPS, "OFF") {
			t.Errorf("version -o json with fips140=off: %+v", v)
		}
		out, stderr, _ := runPlugin(t, bin, ps, "GODEBUG=fips140=off")
		if strings.Contains(out, `"isSuccess":true`) || !strings.Contains(strings.ToLower(out), "fips") {
			t.Errorf("plugin run with fips140=off: %s\nstderr %s", out, stderr)
		}
		t.Logf("fips binary with fips140=off: %s", strings.TrimSpace(out))
	})

	t.Run("ratify image", func(t *testing.T) {
		idx := pullIndex(t, refs.Ratify, ps.byName[RefRatify].Pinned)
		if !strings.HasSuffix(refs.Ratify, ":v1.4.6-awssigner-0.1.0-test") {
			t.Errorf("Ratify image tag %s, want v1.4.6-awssigner-<tag>", refs.Ratify)
		}
		im, _ := idx.IndexManifest()
		if got := platformsOf(im); got != "linux/amd64 linux/arm64" {
			t.Fatalf("platforms %q (the stand-in's attestation must be left out)", got)
		}
		if im.Annotations["org.opencontainers.image.base.name"] != ps.base.String() {
			t.Errorf("base.name annotation %q, want %s", im.Annotations["org.opencontainers.image.base.name"], ps.base)
		}
		baseIm, _ := ps.baseIx.IndexManifest()
		for _, d := range im.Manifests {
			p := d.Platform.OS + "/" + d.Platform.Architecture
			img, _ := idx.Image(d.Digest)
			var baseImg v1.Image
			for _, bd := range baseIm.Manifests {
				if bd.Platform.OS+"/"+bd.Platform.Architecture == p {
					baseImg, _ = ps.baseIx.Image(bd.Digest)
				}
			}
			checkOnBase(t, img, baseImg, p, m, binaries[VariantStd][p])
			if p == "linux/amd64" {
				checkRatifyRunsImagePlugin(t, ps, img)
			}
			checkSBOM(t, ps.host, refs.Ratify, d, binaries[VariantStd][p])
		}
	})

	t.Run("plugin artifacts", func(t *testing.T) {
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			ref := refs.Plugin[p]
			r, _ := name.ParseReference(ref)
			desc, err := remote.Get(r)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest.String() != m.Digests[RefPluginPrefix+strings.ReplaceAll(p, "/", "-")] {
				t.Errorf("%s is %s, built %s", ref, desc.Digest, m.Digests[RefPluginPrefix+strings.ReplaceAll(p, "/", "-")])
			}
			var man v1.Manifest
			if err := json.Unmarshal(desc.Manifest, &man); err != nil {
				t.Fatal(err)
			}
			if man.ArtifactType != plugin.ArtifactType || len(man.Layers) != 1 || man.Annotations[plugin.PlatformAnnotation] != p {
				t.Fatalf("%s: manifest %s", ref, desc.Manifest)
			}
			img, _ := desc.Image()
			ls, _ := img.Layers()
			rc, _ := ls[0].Compressed()
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, binaries[VariantStd][p]) {
				t.Errorf("%s: first layer (%d bytes) is not the %s binary (%d bytes)", ref, len(got), p, len(binaries[VariantStd][p]))
			}
			checkSBOM(t, ps.host, ref, v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, binaries[VariantStd][p])
		}
	})

	t.Run("ratify downloads the plugin artifact", func(t *testing.T) {
		checkRatifyDownloadsPlugin(t, ps, ps.byName[RefPluginPrefix+"linux-amd64"].Pinned, binaries[VariantStd]["linux/amd64"])
	})

	t.Run("signatures verify", func(t *testing.T) {
		bin := extracted[VariantStd]
		for _, n := range wantNames {
			p := ps.byName[n]
			args := []string{"verify", p.Pinned, "--trusted-profile", ps.emu.profileARN, "--trust-store-pem", ps.emu.rootPEM,
				"--aws-endpoint", ps.emu.url, "--plain-http", "-o", "json"}
			cmd := exec.Command(bin, args...)
			cmd.Env = awsEnv(ps.dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("awssigner verify %s: %v\n%s", p.Pinned, err, out)
				continue
			}
			var v struct {
				Verified   bool `json:"verified"`
				Signatures []struct {
					SignatureDigest string `json:"signatureDigest"`
				} `json:"signatures"`
			}
			if err := json.Unmarshal(out, &v); err != nil || !v.Verified || len(v.Signatures) != 1 || v.Signatures[0].SignatureDigest != p.Signature {
				t.Errorf("verify %s: %s (pushed signature %s)", p.Pinned, out, p.Signature)
			}
		}
		// An untrusted profile is refused: the check can fail.
		cmd := exec.Command(bin, "verify", ps.byName[RefImage].Pinned, "--trusted-profile", "arn:aws:signer:us-west-2:111122223333:/signing-profiles/Other",
			"--trust-store-pem", ps.emu.rootPEM, "--aws-endpoint", ps.emu.url, "--plain-http")
		cmd.Env = awsEnv(ps.dir)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("verify with another profile passed:\n%s", out)
		}
	})
}

func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

func digestOf(t *testing.T, idx v1.ImageIndex) string {
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pullIndex pulls tag and checks it is the pinned digest.
func pullIndex(t *testing.T, tag, pinned string) v1.ImageIndex {
	t.Helper()
	r, err := name.ParseReference(tag)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("pull %s: %v", tag, err)
	}
	if got := r.Context().Digest(digestOf(t, idx)).String(); got != pinned {
		t.Errorf("%s resolves to %s, push said %s", tag, got, pinned)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("%s: media type %s", tag, mt)
	}
	return idx
}

func platformsOf(im *v1.IndexManifest) string {
	var ps []string
	for _, d := range im.Manifests {
		ps = append(ps, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	sort.Strings(ps)
	return strings.Join(ps, " ")
}

func checkConfig(t *testing.T, cfg *v1.ConfigFile, m *Manifest, platform string) {
	t.Helper()
	if cfg.OS+"/"+cfg.Architecture != platform {
		t.Errorf("config platform %s/%s, index says %s", cfg.OS, cfg.Architecture, platform)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("%s: user %q", platform, c.User)
	}
	if strings.Join(c.Entrypoint, " ") != image.BinaryPath || strings.Join(c.Cmd, " ") != "serve" {
		t.Errorf("%s: entrypoint %q cmd %q", platform, c.Entrypoint, c.Cmd)
	}
	for _, e := range append(append([]string{}, c.Entrypoint...), c.Cmd...) {
		if strings.Contains(e, "sh") && strings.Contains(e, "/bin/") {
			t.Errorf("%s: a shell in the command: %q", platform, e)
		}
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source": "https://example.test/ratify-aws-signer", "org.opencontainers.image.revision": m.Commit,
		"org.opencontainers.image.version": testVersion, "org.opencontainers.image.licenses": "NOASSERTION",
	} {
		if c.Labels[k] != want {
			t.Errorf("%s: label %s = %q, want %q", platform, k, c.Labels[k], want)
		}
	}
	if !cfg.Created.Time.Equal(m.Created) {
		t.Errorf("%s: created %s, want the commit time %s", platform, cfg.Created, m.Created)
	}
}

// imageFiles flattens an image's layers (no whiteouts are expected) and
// checks every entry's time.
func imageFiles(t *testing.T, img v1.Image, mtime time.Time) map[string]tarEntry {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]tarEntry{}
	for _, l := range ls {
		for p, e := range readLayer(t, l) {
			if !e.mtime.Equal(mtime) {
				t.Errorf("%s: mtime %s, want the commit time %s", p, e.mtime, mtime)
			}
			files[p] = e
		}
	}
	return files
}

func checkAwssignerFiles(t *testing.T, files map[string]tarEntry, binary []byte) {
	t.Helper()
	type want struct {
		mode     int64
		uid, gid int
		dir      bool
	}
	wants := map[string]want{
		"/etc": {0o755, 0, 0, true}, "/etc/passwd": {0o644, 0, 0, false}, "/etc/group": {0o644, 0, 0, false},
		"/etc/ssl": {0o755, 0, 0, true}, "/etc/ssl/certs": {0o755, 0, 0, true}, cabundle.Path: {0o644, 0, 0, false},
		"/home": {0o755, 0, 0, true}, image.Home: {0o700, 65532, 65532, true}, "/tmp": {0o1777, 0, 0, true},
		"/usr": {0o755, 0, 0, true}, "/usr/local": {0o755, 0, 0, true}, "/usr/local/bin": {0o755, 0, 0, true},
		image.BinaryPath: {0o755, 0, 0, false},
	}
	for p, e := range files {
		w, ok := wants[p]
		if !ok {
			t.Errorf("unexpected file %s in the image", p)
			continue
		}
		isDir := e.typ == tar.TypeDir
		if e.mode != w.mode || e.uid != w.uid || e.gid != w.gid || isDir != w.dir || (!isDir && e.typ != tar.TypeReg) {
			t.Errorf("%s: mode %o uid %d gid %d type %c, want mode %o uid %d gid %d dir %t", p, e.mode, e.uid, e.gid, e.typ, w.mode, w.uid, w.gid, w.dir)
		}
	}
	for p := range wants {
		if _, ok := files[p]; !ok {
			t.Errorf("the image lacks %s", p)
		}
	}
	if !bytes.Equal(files[image.BinaryPath].data, binary) {
		t.Errorf("%s is not the built binary", image.BinaryPath)
	}
	if !strings.Contains(string(files["/etc/passwd"].data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd: %q", files["/etc/passwd"].data)
	}
	if n := bytes.Count(files[cabundle.Path].data, []byte("BEGIN CERTIFICATE")); n < 100 {
		t.Errorf("%s has %d certificates", cabundle.Path, n)
	}
}

// checkOnBase: the Ratify image is the base image, layers, config and all,
// with exactly one layer more, holding only the plugin.
func checkOnBase(t *testing.T, img, base v1.Image, platform string, m *Manifest, binary []byte) {
	t.Helper()
	if base == nil {
		t.Fatalf("%s: the stand-in base has no such platform", platform)
	}
	ls, _ := img.Layers()
	bls, _ := base.Layers()
	if len(ls) != len(bls)+1 {
		t.Fatalf("%s: %d layers on a base of %d", platform, len(ls), len(bls))
	}
	for i, bl := range bls {
		a, _ := ls[i].Digest()
		b, _ := bl.Digest()
		if a != b {
			t.Errorf("%s: layer %d is %s, the base's is %s", platform, i, a, b)
		}
	}
	cfg, _ := img.ConfigFile()
	bcfg, _ := base.ConfigFile()
	if fmt.Sprint(cfg.Config) != fmt.Sprint(bcfg.Config) || cfg.OS != bcfg.OS || cfg.Architecture != bcfg.Architecture {
		t.Errorf("%s: config changed:\n%+v\nbase:\n%+v", platform, cfg.Config, bcfg.Config)
	}
	for i, d := range bcfg.RootFS.DiffIDs {
		if cfg.RootFS.DiffIDs[i] != d {
			t.Errorf("%s: diff_id %d changed", platform, i)
		}
	}
	last := ls[len(ls)-1]
	if d, _ := last.Digest(); d.String() != m.RatifyLayers[platform] {
		t.Errorf("%s: plugin layer %s, `make image` recorded %s", platform, d, m.RatifyLayers[platform])
	}
	entries := readLayer(t, last)
	if len(entries) != 1 {
		t.Errorf("%s: plugin layer has %d entries, want 1", platform, len(entries))
	}
	e, ok := entries[ratify.PluginPath]
	if !ok || e.typ != tar.TypeReg || e.mode != 0o755 || e.uid != 65532 || e.gid != 65532 || !e.mtime.Equal(m.Created) {
		t.Errorf("%s: %s: %+v (present %t), want a regular file 0755 65532:65532 at the commit time", platform, ratify.PluginPath, e, ok)
	}
	if !bytes.Equal(e.data, binary) {
		t.Errorf("%s: %s is not the %s binary", platform, ratify.PluginPath, platform)
	}
}

// checkSBOM finds the SPDX referrer of desc and checks it describes binary.
func checkSBOM(t *testing.T, host, ref string, desc v1.Descriptor, binary []byte) {
	t.Helper()
	r, _ := name.ParseReference(ref)
	idx, err := remote.Referrers(r.Context().Digest(desc.Digest.String()))
	if err != nil {
		t.Fatalf("referrers of %s@%s: %v", r.Context(), desc.Digest, err)
	}
	im, _ := idx.IndexManifest()
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if d.ArtifactType == sbom.MediaType {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s@%s: %d SBOM referrers, want 1 (%+v)", r.Context(), desc.Digest, len(found), im.Manifests)
	}
	img, err := remote.Image(r.Context().Digest(found[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	rc, _ := ls[0].Compressed()
	data, _ := io.ReadAll(rc)
	rc.Close()
	var doc sbom.Document
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256Sum(binary))
	if doc.SPDXVersion != "SPDX-2.3" || len(doc.Packages) < 10 || doc.Packages[0].Checksums[0].Value != sum {
		t.Errorf("SBOM of %s@%s: version %s, %d packages, checksum %v (binary %s)", r.Context(), desc.Digest, doc.SPDXVersion, len(doc.Packages), doc.Packages[0].Checksums, sum)
	}
	if !strings.Contains(string(data), `"github.com/aws/aws-sdk-go-v2"`) {
		t.Errorf("SBOM of %s@%s does not list the AWS SDK", r.Context(), desc.Digest)
	}
}

// checkFIPSSetting: the -fips binaries (both platforms) carry the certified
// FIPS module and FIPS mode by default; the others do not.
func checkFIPSSetting(t *testing.T, variant, platform string, binary []byte) {
	t.Helper()
	info, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("%s %s: %v", variant, platform, err)
	}
	module, godebug := setting(info, "GOFIPS140"), setting(info, "DefaultGODEBUG")
	fips := strings.HasPrefix(module, "v1.0.0") && strings.Contains(godebug, "fips140=on")
	if fips != (variant == VariantFIPS) {
		t.Errorf("%s %s: GOFIPS140=%q DefaultGODEBUG=%q", variant, platform, module, godebug)
	}
}

type versionOut struct {
	Version string `json:"version"`
	FIPS    string `json:"fips"`
}

// versionJSON runs `bin version -o json` with extra environment variables.
func versionJSON(t *testing.T, bin string, env ...string) versionOut {
	t.Helper()
	cmd := exec.Command(bin, "version", "-o", "json")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	var v versionOut
	if err != nil || json.Unmarshal(out, &v) != nil {
		t.Fatalf("%s version -o json: %v\n%s", bin, err, out)
	}
	return v
}
