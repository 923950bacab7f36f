// Package registry serves a real in-memory OCI registry
// (go-containerregistry's) on a loopback port, with or without the OCI 1.1
// referrers API, so tests cover both the API and the referrers tag schema
// that clients fall back to.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	srv  *http.Server
	done chan struct{}
}

// Options configure a registry.
type Options struct {
	// Referrers enables the OCI referrers API; without it clients use the
	// referrers tag schema.
	Referrers bool
	// Addr to listen on (default 127.0.0.1:0).
	Addr string
	// Log receives request lines (default: discarded).
	Log io.Writer
}

// Start serves a new empty registry.
func Start(o Options) (*Registry, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	var h http.Handler = ggcr.New(ggcr.Logger(log.New(w, "registry: ", log.LstdFlags)), ggcr.WithReferrersSupport(o.Referrers))
	if o.Referrers {
		h = specArtifactType{h}
	}
	r := &Registry{Host: l.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("registry: %v", err)
		}
	}()
	return r, nil
}

// specArtifactType corrects one deviation of go-containerregistry's
// referrers API: it reports each referrer's artifactType from its config
// media type only, while the OCI distribution spec (1.1) takes the
// manifest's artifactType field first. Notation signatures pushed as OCI
// 1.1 manifests carry artifactType beside an empty config, so without this
// every signature would be listed as application/vnd.oci.empty.v1+json.
type specArtifactType struct{ next http.Handler }

func (s specArtifactType) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := strings.LastIndex(r.URL.Path, "/referrers/")
	if r.Method != http.MethodGet || i < 0 || !strings.HasPrefix(r.URL.Path, "/v2/") {
		s.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	var index ocispec.Index
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &index) != nil {
		copyResponse(w, rec)
		return
	}
	repo := r.URL.Path[len("/v2/"):i]
	for j, d := range index.Manifests {
		m := httptest.NewRecorder()
		s.next.ServeHTTP(m, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+d.Digest.String(), nil))
		var manifest struct {
			ArtifactType string `json:"artifactType"`
		}
		if m.Code == http.StatusOK && json.Unmarshal(m.Body.Bytes(), &manifest) == nil && manifest.ArtifactType != "" {
			index.Manifests[j].ArtifactType = manifest.ArtifactType
		}
	}
	body, err := json.Marshal(index)
	if err != nil {
		copyResponse(w, rec)
		return
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// Close stops the registry.
func (r *Registry) Close() error {
	err := r.srv.Close()
	<-r.done
	return err
}

// PushImage stores a small OCI image (config and one layer) in repo, tags
// it, and returns its descriptor: something for tests to sign.
func PushImage(ctx context.Context, repo *remote.Repository, tag string, layer []byte) (ocispec.Descriptor, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	cfgDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, config)
	layerDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, layer)
	for _, b := range []struct {
		d ocispec.Descriptor
		c []byte
	}{{cfgDesc, config}, {layerDesc, layer}} {
		if err := repo.Push(ctx, b.d, bytes.NewReader(b.c)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
			return ocispec.Descriptor{}, err
		}
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		ConfigDescriptor: &cfgDesc,
		Layers:           []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if tag != "" {
		if err := repo.Tag(ctx, desc, tag); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, nil
}
