// Package signing asks AWS Signer to sign an OCI artifact: it builds the
// Notation payload for the artifact's descriptor and calls SignPayload with
// the profile named by a signing-profile ARN, returning the JWS envelope
// AWS Signer produced.
package signing

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
)

// PayloadFormat is the Notation payload media type AWS Signer signs.
const PayloadFormat = "application/vnd.cncf.notary.payload.v1+json"

// Signed is the outcome of one SignPayload call.
type Signed struct {
	Envelope []byte
	JobID    string
	JobOwner string
	// Metadata is what AWS returned beside the signature; Notation stores it
	// as signature manifest annotations.
	Metadata map[string]string
}

// Payload is the Notation payload for subject.
func Payload(subject ocispec.Descriptor) ([]byte, error) {
	return json.Marshal(map[string]any{"targetArtifact": ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}})
}

// Sign signs subject with the profile of profileARN (a signing-profile ARN
// without version); the region and owner come from the ARN.
func Sign(ctx context.Context, clients *signerapi.Factory, profileARN string, subject ocispec.Descriptor) (*Signed, error) {
	p, err := awssigner.ParseProfileARN(profileARN)
	if err != nil {
		return nil, err
	}
	if p.Version != "" {
		return nil, fmt.Errorf("%q is a profile-version ARN; sign with the profile ARN %s", profileARN, p.Unversioned())
	}
	if err := subject.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("subject digest %q: %w", subject.Digest, err)
	}
	region, err := clients.RegionFor(profileARN)
	if err != nil {
		return nil, err
	}
	client, err := clients.Client(ctx, region)
	if err != nil {
		return nil, err
	}
	payload, err := Payload(subject)
	if err != nil {
		return nil, err
	}
	out, err := client.SignPayload(ctx, &signer.SignPayloadInput{
		Payload:       payload,
		PayloadFormat: aws.String(PayloadFormat),
		ProfileName:   aws.String(p.Name),
		ProfileOwner:  aws.String(p.Account),
	})
	if err != nil {
		return nil, fmt.Errorf("AWS Signer SignPayload with profile %s in %s: %w", p.Name, region, err)
	}
	if len(out.Signature) == 0 {
		return nil, fmt.Errorf("AWS Signer returned no signature for job %s", aws.ToString(out.JobId))
	}
	return &Signed{Envelope: out.Signature, JobID: aws.ToString(out.JobId), JobOwner: aws.ToString(out.JobOwner), Metadata: out.Metadata}, nil
}
