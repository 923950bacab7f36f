package cli

import (
	"context"
	"errors"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/errdef"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/oci"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

// maxSignatures bounds the signatures read for one image (notation's
// default for signature verification attempts).
const maxSignatures = 100

// subject is an image resolved to its digest, with its signatures listed.
type subject struct {
	Given      string
	Image      oci.Image
	Desc       ocispec.Descriptor
	Signatures []ocispec.Descriptor
	// Skipped is how many signatures beyond maxSignatures were not read.
	Skipped int
}

// openImage parses the reference; errors are bad usage.
func (a *app) openImage(cmd *cobra.Command, reference string, f registryFlags) (oci.Image, error) {
	img, err := oci.Open(reference, a.ociOptions(f))
	if err != nil {
		return oci.Image{}, usageErr(cmd, "%v", err)
	}
	if img.Ref.Reference == "" {
		return oci.Image{}, usageErr(cmd, "%s names no tag or digest; give <registry>/<repository>:<tag> or <registry>/<repository>@sha256:<digest>", reference)
	}
	return img, nil
}

// resolve resolves img to its descriptor; a failure is could-not-check.
// what is prefixed to the error; advice is appended when the reference
// does not exist.
func resolve(ctx context.Context, img oci.Image, what, advice string) (ocispec.Descriptor, error) {
	desc, err := img.Resolve(ctx)
	if err == nil {
		return desc, nil
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return ocispec.Descriptor{}, failErr("%scould not resolve %s to a digest: the registry has no manifest %q in %s; check the tag or digest%s", what, img.Ref, img.Ref.Reference, img.Repository(), advice)
	}
	return ocispec.Descriptor{}, failErr("%scould not resolve %s to a digest: %s; %s", what, img.Ref, signature.Describe(err), signature.Hint(err))
}

// readSubject opens, resolves and lists the signatures of reference.
func (a *app) readSubject(ctx context.Context, cmd *cobra.Command, reference string, f registryFlags) (*subject, error) {
	img, err := a.openImage(cmd, reference, f)
	if err != nil {
		return nil, err
	}
	desc, err := resolve(ctx, img, "", "")
	if err != nil {
		return nil, err
	}
	sigs, err := img.Signatures(ctx, desc)
	if err != nil {
		return nil, failErr("could not list the Notation signatures of %s@%s: %s; %s", img.Repository(), desc.Digest, signature.Describe(err), signature.Hint(err))
	}
	s := &subject{Given: reference, Image: img, Desc: desc, Signatures: sigs}
	if len(sigs) > maxSignatures {
		s.Skipped = len(sigs) - maxSignatures
		s.Signatures = sigs[:maxSignatures]
	}
	return s, nil
}

// Reference is "<registry>/<repository>@<digest>".
func (s *subject) Reference() string { return s.Image.Repository() + "@" + s.Desc.Digest.String() }
