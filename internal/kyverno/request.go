package kyverno

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Bounds of one request that are not configuration: the body is bounded by
// server.maxBodyBytes and the number of images by server.maxKeys.
const (
	// MaxPatternLength bounds one imageReferences pattern (an image
	// reference is at most a few hundred characters).
	MaxPatternLength = 1024
	// maxPointerLength bounds one jsonPointer.
	maxPointerLength = 1024
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

// entry is one image of the request where it is written.
type entry struct {
	list, container string
	image           Image
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
	var entries []entry
	for _, list := range slices.Sorted(maps.Keys(r.Images)) {
		for _, name := range slices.Sorted(maps.Keys(r.Images[list])) {
			entries = append(entries, entry{list: list, container: name, image: r.Images[list][name]})
		}
	}
	if len(entries) > maxImages {
		return nil, nil, &tooLarge{msg: fmt.Sprintf("request has %d images, over the limit of %d (server.maxKeys)", len(entries), maxImages)}
	}
	for _, e := range entries {
		if e.image.Path == "" {
			return nil, nil, badRequest("%s has no path; pass Kyverno's images variable unchanged", e.where())
		}
		if e.image.Digest == "" {
			if err := checkPointer(e.image.JSONPointer); err != nil {
				return nil, nil, badRequest("%s.jsonPointer: %v; without it the verified digest cannot be patched in", e.where(), err)
			}
		}
	}
	return &r, entries, nil
}

// tooLarge is a request over a count limit (413).
type tooLarge struct{ msg string }

func (e *tooLarge) Error() string { return e.msg }

// checkPointer accepts an RFC 6901 JSON pointer to a member: "/" then
// reference tokens with "~" escaped as "~0" or "~1".
func checkPointer(p string) error {
	if p == "" || p[0] != '/' || len(p) > maxPointerLength {
		return fmt.Errorf("%q is not a JSON pointer of at most %d characters starting with /", p, maxPointerLength)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf("%q has a ~ that is not ~0 or ~1", p)
		}
	}
	return nil
}

// Match tells whether s matches pattern, where * stands for any run of
// characters ("/" included) and ? for exactly one, as Kyverno's
// imageReferences do. Linear backtracking: O(len(pattern)·len(s)).
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
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
