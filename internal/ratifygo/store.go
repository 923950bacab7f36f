package ratifygo

import (
	"context"
	"strings"
	"sync"

	ratify "github.com/notaryproject/ratify-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxResolved bounds the digest-resolution cache.
const maxResolved = 8192

// resolvedDigests remembers the descriptor of manifests resolved by
// digest. A digest names immutable content, so its media type and size
// never change; a tag is always resolved again.
type resolvedDigests struct {
	mu sync.Mutex
	m  map[string]ocispec.Descriptor
}

func (r *resolvedDigests) get(ref string) (ocispec.Descriptor, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.m[ref]
	return d, ok
}

func (r *resolvedDigests) put(ref string, d ocispec.Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= maxResolved {
		clear(r.m)
	}
	r.m[ref] = d
}

// subjectStore is the Store one validation sees: the engine's
// RegistryStore, with a digest reference resolved from memory when it was
// resolved before, and referrers listed for the image itself only. The
// signatures are leaves: the policy passes an image on one verified
// signature of its own, so what refers to a signature (a signature of a
// signature) cannot change the decision, and listing it would cost a
// registry round trip per signature.
type subjectStore struct {
	*ratify.RegistryStore
	resolved *resolvedDigests
	mu       sync.Mutex
	subject  digest.Digest
}

func (s *subjectStore) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	byDigest := strings.Contains(ref, "@")
	if byDigest {
		if d, ok := s.resolved.get(ref); ok {
			s.setSubject(d.Digest)
			return d, nil
		}
	}
	d, err := s.RegistryStore.Resolve(ctx, ref)
	if err != nil {
		return d, err
	}
	if byDigest && strings.HasSuffix(ref, "@"+d.Digest.String()) {
		s.resolved.put(ref, d)
	}
	s.setSubject(d.Digest)
	return d, nil
}

func (s *subjectStore) setSubject(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subject == "" {
		s.subject = d
	}
}

func (s *subjectStore) ListReferrers(ctx context.Context, ref string, artifactTypes []string, fn func([]ocispec.Descriptor) error) error {
	s.mu.Lock()
	subject := s.subject
	s.mu.Unlock()
	if subject == "" || !strings.HasSuffix(ref, "@"+subject.String()) {
		return nil
	}
	return s.RegistryStore.ListReferrers(ctx, ref, artifactTypes, fn)
}
