package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signing"
)

type signFlags struct {
	registry    registryFlags
	profileARN  string
	awsEndpoint string
	awsRegion   string
	timeout     time.Duration
}

// signReport is what sign did, as printed with --output json.
type signReport struct {
	Image                    string             `json:"image"`
	Reference                string             `json:"reference"`
	Subject                  ocispec.Descriptor `json:"subject"`
	SignatureDigest          string             `json:"signatureDigest"`
	Signature                ocispec.Descriptor `json:"signature"`
	SigningProfileARN        string             `json:"signingProfileArn"`
	SigningProfileVersionARN string             `json:"signingProfileVersionArn,omitempty"`
	SigningJobID             string             `json:"signingJobId"`
	SigningJobOwner          string             `json:"signingJobOwner,omitempty"`
	SigningJobARN            string             `json:"signingJobArn,omitempty"`
	SigningTime              *time.Time         `json:"signingTime,omitempty"`
	Expiry                   *time.Time         `json:"expiry,omitempty"`
	Annotations              map[string]string  `json:"annotations,omitempty"`
}

func (a *app) signCommand() *cobra.Command {
	var f signFlags
	cmd := &cobra.Command{
		Use:   "sign <image> --profile-arn ARN",
		Short: "Sign an image with AWS Signer and push the Notation signature",
		Long: strings.TrimSpace(`
Sign an image with an AWS Signer signing profile (platform
Notation-OCI-SHA384-ECDSA): resolve the reference to its digest, ask AWS
Signer SignPayload for a signature of that digest (region and profile owner
from the profile ARN), and push the returned envelope next to the image as a
Notation signature (OCI referrers, with the referrers tag schema where the
registry has no referrers API). Prints the signature's digest.

AWS credentials come from the SDK default chain and need signer:SignPayload
on the profile; registry credentials as for every command.`),
		Example: `  awssigner sign 111122223333.dkr.ecr.us-west-2.amazonaws.com/app:v1 \
      --profile-arn arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod`,
		Args: exactArgs(1, "one image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runSign(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profileARN, "profile-arn", "", "AWS Signer signing-profile ARN, arn:aws:signer:<region>:<account>:/signing-profiles/<name> (required)")
	fl.StringVar(&f.awsEndpoint, "aws-endpoint", "", "AWS Signer endpoint URL (default: SDK resolution, AWS_ENDPOINT_URL_SIGNER)")
	fl.StringVar(&f.awsRegion, "aws-region", "", "AWS region to call (default: the profile ARN's region)")
	fl.BoolVar(&f.registry.plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to the registry (local registries)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "time limit for the whole command (0: none)")
	return cmd
}

// checkProfileARN accepts exactly a signing-profile ARN (no version).
func checkProfileARN(cmd *cobra.Command, s string) (awssigner.ProfileARN, error) {
	if s == "" {
		return awssigner.ProfileARN{}, usageErr(cmd, "--profile-arn is required: the AWS Signer signing profile to sign with, arn:aws:signer:<region>:<account>:/signing-profiles/<name>")
	}
	p, err := awssigner.ParseProfileARN(s)
	if err != nil {
		return p, usageErr(cmd, "--profile-arn: %v; sign with a signing-profile ARN such as arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod", err)
	}
	if p.Version != "" {
		return p, usageErr(cmd, "--profile-arn %q is a profile-version ARN; AWS Signer signs with the profile's current version, give %s", s, p.Unversioned())
	}
	return p, nil
}

func (a *app) runSign(cmd *cobra.Command, reference string, f *signFlags) error {
	profile, err := checkProfileARN(cmd, f.profileARN)
	if err != nil {
		return err
	}
	if f.awsEndpoint != "" {
		if err := awssigner.CheckEndpoint(f.awsEndpoint); err != nil {
			return usageErr(cmd, "--aws-endpoint: %v", err)
		}
	}
	if f.awsRegion != "" {
		if err := awssigner.CheckRegion(f.awsRegion); err != nil {
			return usageErr(cmd, "--aws-region: %v", err)
		}
	}
	clients, err := signerapi.NewFactory(signerapi.Options{Region: f.awsRegion, Endpoint: f.awsEndpoint, AppID: "ratify-aws-signer_" + a.version,
		MaxAttempts: config.DefaultMaxAttempts, MaxBackoff: config.DefaultMaxBackoff})
	if err != nil {
		return failErr("%v", err)
	}
	region, err := clients.RegionFor(profile.Unversioned())
	if err != nil {
		return usageErr(cmd, "--profile-arn: %v", err)
	}
	ctx := cmd.Context()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	img, err := a.openImage(cmd, reference, f.registry)
	if err != nil {
		return err
	}
	desc, err := resolve(ctx, img, "nothing signed: ", " (push the image first, or sign an existing tag or digest)")
	if err != nil {
		return err
	}
	signed, err := signing.Sign(ctx, clients, profile.Unversioned(), desc)
	if err != nil {
		return failErr("nothing signed: %v; check the profile exists and is active in %s, and that the AWS identity of the SDK default credential chain may call signer:SignPayload on it", err, region)
	}
	sigDesc, err := img.PushSignature(ctx, desc, signed.Envelope, signature.MediaTypeJWS, signed.Metadata)
	if err != nil {
		return failErr("AWS Signer signed %s (job %s) but the signature could not be pushed to %s: %s; %s, then sign again", desc.Digest, signed.JobID, img.Repository(), signature.Describe(err), signature.Hint(err))
	}
	rep := signReport{
		Image:             reference,
		Reference:         img.Repository() + "@" + desc.Digest.String(),
		Subject:           desc,
		SignatureDigest:   sigDesc.Digest.String(),
		Signature:         ocispec.Descriptor{MediaType: sigDesc.MediaType, ArtifactType: signature.ArtifactType, Digest: sigDesc.Digest, Size: sigDesc.Size},
		SigningProfileARN: profile.Unversioned(),
		SigningJobID:      signed.JobID,
		SigningJobOwner:   signed.JobOwner,
		Annotations:       signed.Metadata,
	}
	// The job and profile version as signed into the envelope.
	if info := inspectSignature(desc, signed.Envelope, signature.MediaTypeJWS); info.Error == "" {
		rep.SigningProfileVersionARN, rep.SigningJobARN = info.SigningProfileVersionARN, info.SigningJobARN
		rep.SigningTime, rep.Expiry = info.SigningTime, info.Expiry
	}
	if a.json() {
		a.printJSON(rep)
		return nil
	}
	fmt.Fprintf(a.stdout, "Signed %s\n", rep.Reference)
	kv := newKV(a.stdout, "  ")
	kv.line("signing profile", orDefault(rep.SigningProfileVersionARN, rep.SigningProfileARN))
	kv.line("signing job", orDefault(rep.SigningJobARN, rep.SigningJobID))
	if rep.SigningTime != nil {
		kv.line("signed", formatTime(*rep.SigningTime))
	}
	if rep.Expiry != nil {
		kv.line("expires", formatTime(*rep.Expiry))
	}
	kv.line("signature", rep.SignatureDigest)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
