package release

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/plugin"
)

// PublishPlugin pushes one plugin binary as a dynamic-plugin artifact
// tagged ref and returns <repository>@<digest> (the chart's
// plugin.source.artifact) and the binary's platform. The manifest's
// created time is SOURCE_DATE_EPOCH when set (so a rebuild gives the same
// digest), else now.
func PublishPlugin(ctx context.Context, file, ref, version string, plainHTTP bool, kc authn.Keychain) (pinned, platform string, err error) {
	var opts []name.Option
	if plainHTTP {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, append(opts, name.StrictValidation)...)
	if err != nil {
		if _, derr := name.NewDigest(ref); derr == nil {
			return "", "", fmt.Errorf("-ref %q is a digest: give a tag; the digest is printed after the push", ref)
		}
		return "", "", fmt.Errorf("-ref %q: want <registry>/<repository>:<tag>: %w", ref, err)
	}
	created, err := sourceDate()
	if err != nil {
		return "", "", err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", err
	}
	img, platform, err := plugin.Artifact(data, version, created, nil)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", file, err)
	}
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)); err != nil {
		return "", "", fmt.Errorf("push %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	return tag.Context().Digest(d.String()).String(), platform, nil
}

func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}
