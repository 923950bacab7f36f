package signeremu

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/aws-sdk-go-v2/service/signer/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/notaryproject/notation-core-go/signature"
	_ "github.com/notaryproject/notation-core-go/signature/jws"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signerapi"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// fixedNow is the emulator clock in tests: recent, so the CA's
// certificates cover it, and whole seconds, so times compare exactly.
var fixedNow = time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)

func startEmu(t *testing.T, opts Options) *Emulator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	e, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// sdkClient is the real SDK client for region, pointed at e, making at most
// attempts attempts per call.
func sdkClient(t *testing.T, e *Emulator, region string, attempts int) *signer.Client {
	t.Helper()
	f, err := signerapi.NewFactory(signerapi.Options{
		Endpoint:    e.URL(),
		MaxAttempts: attempts,
		MaxBackoff:  20 * time.Millisecond,
		Base: &aws.Config{
			Region:      region,
			Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Client(context.Background(), region)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func notaryPayload(t *testing.T, content string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"targetArtifact": sigkit.Descriptor("application/vnd.oci.image.manifest.v1+json", []byte(content))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putProfile(t *testing.T, c *signer.Client, name string, v *types.SignatureValidityPeriod) *signer.PutSigningProfileOutput {
	t.Helper()
	out, err := c.PutSigningProfile(context.Background(), &signer.PutSigningProfileInput{
		ProfileName:             aws.String(name),
		PlatformId:              aws.String(PlatformID),
		SignatureValidityPeriod: v,
	})
	if err != nil {
		t.Fatalf("PutSigningProfile %s: %v", name, err)
	}
	return out
}

// signed is one signature made through the SDK, with the facts a
// revocation query needs.
type signed struct {
	jobID, jobARN, versionARN string
	signingTime, expiry       time.Time
	payload                   []byte
	content                   *signature.EnvelopeContent
}

func signVia(t *testing.T, c *signer.Client, profile, artifact string) signed {
	t.Helper()
	payload := notaryPayload(t, artifact)
	out, err := c.SignPayload(context.Background(), &signer.SignPayloadInput{
		Payload:       payload,
		PayloadFormat: aws.String(PayloadFormat),
		ProfileName:   aws.String(profile),
	})
	if err != nil {
		t.Fatalf("SignPayload: %v", err)
	}
	content := verifyEnvelope(t, out.Signature)
	s := signed{
		jobID:       aws.ToString(out.JobId),
		jobARN:      extAttr(t, content, sigkit.HeaderSigningJob),
		versionARN:  extAttr(t, content, sigkit.HeaderProfileVersion),
		signingTime: content.SignerInfo.SignedAttributes.SigningTime,
		expiry:      content.SignerInfo.SignedAttributes.Expiry,
		payload:     payload,
		content:     content,
	}
	return s
}

// verifyEnvelope parses raw as a Notation JWS envelope and verifies it.
func verifyEnvelope(t *testing.T, raw []byte) *signature.EnvelopeContent {
	t.Helper()
	env, err := signature.ParseEnvelope(sigkit.MediaTypeJWS, raw)
	if err != nil {
		t.Fatalf("ParseEnvelope: %v", err)
	}
	content, err := env.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return content
}

func extAttr(t *testing.T, c *signature.EnvelopeContent, key string) string {
	t.Helper()
	a, err := c.SignerInfo.ExtendedAttribute(key)
	if err != nil {
		t.Fatalf("attribute %s: %v", key, err)
	}
	if !a.Critical {
		t.Errorf("attribute %s is not critical", key)
	}
	s, ok := a.Value.(string)
	if !ok {
		t.Fatalf("attribute %s is %T, want string", key, a.Value)
	}
	return s
}

func revocationInput(s signed) *signer.GetRevocationStatusInput {
	return &signer.GetRevocationStatusInput{
		CertificateHashes:  CertificateHashes(s.content.SignerInfo.CertificateChain),
		JobArn:             aws.String(s.jobARN),
		PlatformId:         aws.String(PlatformID),
		ProfileVersionArn:  aws.String(s.versionARN),
		SignatureTimestamp: aws.Time(s.signingTime),
	}
}

func revoked(t *testing.T, c *signer.Client, in *signer.GetRevocationStatusInput) []string {
	t.Helper()
	out, err := c.GetRevocationStatus(context.Background(), in)
	if err != nil {
		t.Fatalf("GetRevocationStatus: %v", err)
	}
	got := slices.Clone(out.RevokedEntities)
	slices.Sort(got)
	return got
}

// errorCode returns the AWS error code of err ("" for nil).
func errorCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an API error", err)
	}
	return ae.ErrorCode()
}

// dropQuery is a per-call SDK option removing a query parameter after
// serialization, to send requests the SDK's own validation would stop.
func dropQuery(name string) func(*signer.Options) {
	return func(o *signer.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Build.Add(middleware.BuildMiddlewareFunc("dropQuery", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					q := req.URL.Query()
					q.Del(name)
					req.URL.RawQuery = q.Encode()
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
		})
	}
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
