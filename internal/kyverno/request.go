package kyverno

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/provider"
)

// Bounds of one request that are not configuration: the body is bounded by
// server.maxBodyBytes and the number of images by server.maxKeys.
const (
	// MaxPatternLength bounds one imageReferences pattern (an image
	// reference is at most a few hundred characters).
	MaxPatternLength = 1024
	// maxPointerLength bounds one jsonPointer.
	maxPointerLength = 1024
	// maxTrustPolicyName bounds trustPolicy (a trustPolicyDocs name is a
	// DNS-1123 subdomain).
	maxTrustPolicyName = 253
	// MaxMatchSteps bounds the work of matching one request's patterns
	// against its images (steps of Match, about a nanosecond each): patterns
	// such as "*a*a*a…b" cost up to len(pattern)·len(image) each, so
	// without it a request within maxBodyBytes could take seconds of CPU
	// outside any deadline. Policies' patterns ("*.dkr.ecr.*.amazonaws.com/*")
	// use a few steps per character.
	MaxMatchSteps = 1 << 24
)

// Request is the body Kyverno's apiCall POSTs: one JSON object keyed by
// the rule's data keys, as kyverno-notation-aws takes it.
type Request struct {
	// Images is Kyverno's images variable: image lists ("containers",
	// "initContainers", "ephemeralContainers", or a custom extractor's
	// name) → container name → image.
	Images map[string]map[string]Image
	// ImageReferences select the images to check (wildcards * and ?);
	// none: every image. SkipImageReferences exempt images (same
	// matching); an image matching both is skipped.
	ImageReferences, SkipImageReferences []string
	// TrustPolicy names the trust policy document (trustPolicyDocs key);
	// "": trustPolicyDoc.
	TrustPolicy string
	// Attestations are kyverno-notation-aws's attestation checks; not
	// supported (a request with any is refused).
	Attestations []json.RawMessage
	// Insecure asks for registries without TLS; not taken from a request
	// (a request with it is refused).
	Insecure bool
}

// Image is one entry of Kyverno's images variable. Kyverno may add keys in
// later versions; they are ignored here (the request's own keys are
// decoded strictly).
type Image struct {
	Registry         string `json:"registry"`
	Path             string `json:"path"`
	Name             string `json:"name"`
	Tag              string `json:"tag"`
	Digest           string `json:"digest"`
	Reference        string `json:"reference"`
	ReferenceWithTag string `json:"referenceWithTag"`
	// JSONPointer is where the image is written in the admitted object
	// (RFC 6901), e.g. /spec/template/spec/containers/0/image.
	JSONPointer string `json:"jsonPointer"`
}

// Ref is the image as Kyverno parsed it: "<registry>/<path>@<digest>" when
// it has a digest, else "<registry>/<path>:<tag>" (ImageInfo.String in
// Kyverno). Built from the parts, so the reference checked and the
// repository of the patch are the same.
func (i Image) Ref() string {
	name := i.Repository()
	if i.Digest != "" {
		return name + "@" + i.Digest
	}
	tag := i.Tag
	if tag == "" {
		tag = "latest"
	}
	return name + ":" + tag
}

// Repository is "<registry>/<path>" ("<path>" when Kyverno gives no
// registry, as with its default-registry mutation off).
func (i Image) Repository() string {
	if i.Registry == "" {
		return i.Path
	}
	return i.Registry + "/" + i.Path
}

// entry is one image of the request where it is written: ref is
// image.Ref(), norm the reference checked (provider.NormalizeImage).
type entry struct {
	list, container string
	image           Image
	ref, norm       string
}

func (e entry) where() string { return "images." + e.list + "." + e.container }

// requestError is a request that is not one Kyverno's apiCall sends (400).
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// knownKeys are the request's keys; any other is refused, so a misspelt
// key in a policy ("trustpolicy") is not silently ignored.
var knownKeys = []string{"attestations", "imageReferences", "images", "insecure", "metadata", "skipImageReferences", "trustPolicy"}

// decode parses the body strictly: an object of the known keys only, one
// JSON value, images and patterns within their bounds.
func decode(body []byte, maxImages int) (*Request, []entry, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, nil, badRequest("request body is not a JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, badRequest("request body has data after its JSON object")
	}
	if top == nil {
		return nil, nil, badRequest("request body is null; want an object with images")
	}
	for k := range top {
		if !slices.Contains(knownKeys, k) {
			return nil, nil, badRequest("request key %q is unknown (known keys: %s); check the apiCall's data in the Kyverno policy", k, strings.Join(knownKeys, ", "))
		}
	}
	var r Request
	field := func(key string, into any) error {
		raw, ok := top[key]
		if !ok || string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return badRequest("request key %q: %v", key, err)
		}
		return nil
	}
	for _, f := range []struct {
		key  string
		into any
	}{{"images", &r.Images}, {"imageReferences", &r.ImageReferences}, {"skipImageReferences", &r.SkipImageReferences}, {"trustPolicy", &r.TrustPolicy},
		{"attestations", &r.Attestations}, {"insecure", &r.Insecure}} {
		if err := field(f.key, f.into); err != nil {
			return nil, nil, err
		}
	}
	if r.Images == nil {
		return nil, nil, badRequest("request has no images; pass Kyverno's images variable (data: [{key: images, value: \"{{images}}\"}])")
	}
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"imageReferences", r.ImageReferences}, {"skipImageReferences", r.SkipImageReferences}} {
		if len(list.patterns) > maxImages {
			return nil, nil, badRequest("request has %d %s, over the limit of %d (server.maxKeys)", len(list.patterns), list.key, maxImages)
		}
		for i, p := range list.patterns {
			if p == "" || len(p) > MaxPatternLength {
				return nil, nil, badRequest("%s[%d] must be 1 to %d characters, got %d", list.key, i, MaxPatternLength, len(p))
			}
		}
	}
	r.ImageReferences, r.SkipImageReferences = distinct(r.ImageReferences), distinct(r.SkipImageReferences)
	if len(r.TrustPolicy) > maxTrustPolicyName {
		return nil, nil, badRequest("trustPolicy is %d characters; a trustPolicyDocs name has at most %d", len(r.TrustPolicy), maxTrustPolicyName)
	}
	var entries []entry
	for _, list := range slices.Sorted(maps.Keys(r.Images)) {
		for _, name := range slices.Sorted(maps.Keys(r.Images[list])) {
			entries = append(entries, entry{list: list, container: name, image: r.Images[list][name]})
		}
	}
	if len(entries) > maxImages {
		return nil, nil, &tooLarge{msg: fmt.Sprintf("request has %d images, over the limit of %d (server.maxKeys)", len(entries), maxImages)}
	}
	patched := map[string]string{} // jsonPointer → where
	for i := range entries {
		e := &entries[i]
		if e.image.Path == "" {
			return nil, nil, badRequest("%s has no path; pass Kyverno's images variable unchanged", e.where())
		}
		var err error
		if e.ref, e.norm, err = e.image.check(); err != nil {
			return nil, nil, badRequest("%s is not an image reference as Kyverno writes one (%q): %v; pass Kyverno's images variable unchanged", e.where(), cut(e.ref, maxPointerLength), err)
		}
		if e.image.Digest != "" {
			continue // checked by digest, nothing to patch
		}
		if err := checkPointer(e.image.JSONPointer); err != nil {
			return nil, nil, badRequest("%s.jsonPointer: %v; the verified digest is patched in there, so it must name the image field Kyverno found the image in", e.where(), err)
		}
		if other, dup := patched[e.image.JSONPointer]; dup {
			return nil, nil, badRequest("%s and %s have the same jsonPointer %s; Kyverno gives each image field once", other, e.where(), e.image.JSONPointer)
		}
		patched[e.image.JSONPointer] = e.where()
	}
	return &r, entries, nil
}

// check tells whether i's parts make one image reference as Kyverno
// builds them (its registry, path, tag or digest parsed from the image
// field): Ref() must parse back to the same repository and the same tag or
// digest, so the reference checked and the repository of the patch are
// the image Kyverno found. It returns Ref() and the reference to verify.
func (i Image) check() (ref, norm string, err error) {
	ref = i.Ref()
	parsed, err := reference.Parse(ref)
	if err != nil {
		return ref, "", err
	}
	named, ok := parsed.(reference.Named)
	switch {
	case !ok || named.Name() != i.Repository():
		return ref, "", fmt.Errorf("registry %q and path %q are not one repository name", i.Registry, i.Path)
	case i.Digest != "":
		if d, ok := parsed.(reference.Digested); !ok || d.Digest().String() != i.Digest {
			return ref, "", fmt.Errorf("digest %q is not a digest", i.Digest)
		}
	default:
		if t, ok := parsed.(reference.Tagged); !ok || (t.Tag() != i.Tag && i.Tag != "") {
			return ref, "", fmt.Errorf("tag %q is not a tag", i.Tag)
		}
	}
	norm, err = provider.NormalizeImage(ref)
	return ref, norm, err
}

func distinct(s []string) []string {
	if s == nil {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(s)))
}

// tooLarge is a request over a count limit (413).
type tooLarge struct{ msg string }

func (e *tooLarge) Error() string { return e.msg }

// checkPointer accepts the JSON pointers (RFC 6901) Kyverno writes for an
// image field: "/"-separated names and indexes of letters, digits, ".",
// "_" and "-", the last one "image" (/spec/containers/0/image,
// /spec/template/spec/initContainers/1/image, …). The pointer is echoed
// in the patch Kyverno applies, through a policy's patchesJson6902 text, so
// nothing else gets through: no escapes (~0, ~1), quotes, spaces, braces
// or line breaks that could end the YAML string it is put in, and no
// field other than an image (Kyverno's custom image extractors write other
// pointers, which are refused: give such images by digest).
func checkPointer(p string) error {
	if len(p) > maxPointerLength {
		return fmt.Errorf("is %d characters, over %d", len(p), maxPointerLength)
	}
	if p == "" {
		return fmt.Errorf("is missing")
	}
	tokens := strings.Split(p, "/")
	if tokens[0] != "" || len(tokens) < 3 || tokens[len(tokens)-1] != "image" {
		return fmt.Errorf("%q is not a pointer to an image field (want /…/<index>/image, e.g. /spec/containers/0/image)", p)
	}
	for _, t := range tokens[1:] {
		if t == "" || strings.IndexFunc(t, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
		}) >= 0 {
			return fmt.Errorf("%q has a part %q that is not a field name or index of letters, digits, '.', '_' and '-'", p, t)
		}
	}
	return nil
}

// Match tells whether s matches pattern, where * stands for any run of
// characters ("/" included) and ? for exactly one, as Kyverno's
// imageReferences do. It backtracks to the last * only, so it takes at
// most about len(pattern)·len(s) steps (never exponentially many).
func Match(pattern, s string) bool {
	steps := math.MaxInt
	return match(pattern, s, &steps)
}

// match is Match taking one step of *steps per character compared; it
// gives up (false, *steps < 0) when they run out.
func match(pattern, s string, steps *int) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		if *steps--; *steps < 0 {
			return false
		}
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
