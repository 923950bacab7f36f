package release

import (
	"strings"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/ratify"
)

// DefaultRegistry is where the project's releases are published (the
// chart's default image references point there).
const DefaultRegistry = "ghcr.io/ratify-aws-signer"

// Repository names under the registry.
const (
	RepoAwssigner = "awssigner"
	RepoRatify    = "ratify-awssigner"
	RepoPlugin    = "awssigner-plugin"
)

// Refs are the references a push of tag to registry writes.
type Refs struct {
	// Image is the awssigner image index, FIPS its -fips variant.
	Image, FIPS string
	// Ratify is Ratify with the plugin, tagged
	// <ratify version>-awssigner-<tag> (v1.4.6-awssigner-0.1.0): its own tag
	// for every plugin build, never a moving one (docs/ratify-values).
	Ratify string
	// Plugin is the dynamic-plugin artifact per platform (linux/amd64 →
	// <registry>/awssigner-plugin:<tag>-linux-amd64).
	Plugin map[string]string
}

// RefsFor returns the references of a push.
func RefsFor(registry, tag string, platforms []string) Refs {
	registry = strings.TrimSuffix(registry, "/")
	rv := RatifyVersion()
	r := Refs{
		Image:  registry + "/" + RepoAwssigner + ":" + tag,
		FIPS:   registry + "/" + RepoAwssigner + ":" + tag + "-fips",
		Ratify: registry + "/" + RepoRatify + ":" + RatifyTag(rv, tag),
		Plugin: map[string]string{},
	}
	for _, p := range platforms {
		r.Plugin[p] = registry + "/" + RepoPlugin + ":" + tag + "-" + strings.ReplaceAll(p, "/", "-")
	}
	return r
}

// RatifyVersion is the tag of the pinned Ratify base (v1.4.6).
func RatifyVersion() string {
	ref := ratify.Base()
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	return ref[strings.LastIndex(ref, ":")+1:]
}

// RatifyTag is the Ratify image's tag for a Ratify version and a release tag.
func RatifyTag(ratifyVersion, tag string) string { return ratifyVersion + "-awssigner-" + tag }
