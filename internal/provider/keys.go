package provider

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// imageRef turns a Gatekeeper key into the image reference to verify.
// Keys are image references as written in the Pod ("nginx:1.27",
// "registry/app@sha256:…"), optionally prefixed with a "[namespace]"
// scope (the template's ratifyNamespace parameter for Ratify); the scope
// is accepted and ignored, as this provider has one configuration.
// Docker Hub short names are expanded ("nginx" →
// "docker.io/library/nginx:latest").
func imageRef(key string) (string, error) {
	ref := key
	if strings.HasPrefix(ref, "[") {
		i := strings.Index(ref, "]")
		if i < 0 {
			return "", fmt.Errorf("key %q starts a [namespace] scope but does not close it", key)
		}
		ref = ref[i+1:]
	}
	if ref == "" {
		return "", fmt.Errorf("key %q names no image", key)
	}
	out, err := NormalizeImage(ref)
	if err != nil {
		return "", fmt.Errorf("key %q is not an image reference: %v", key, err)
	}
	return out, nil
}

// NormalizeImage is the image reference to verify for ref as written in a
// Pod: Docker Hub short names expanded, ":latest" added when neither a tag
// nor a digest is given.
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}
