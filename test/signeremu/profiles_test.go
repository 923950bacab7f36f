package signeremu

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/aws-sdk-go-v2/service/signer/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

var versionRE = regexp.MustCompile(`^[a-zA-Z0-9]{10}$`)

func TestPutGetSigningProfile(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	tests := []struct {
		name     string
		validity *types.SignatureValidityPeriod
		want     types.SignatureValidityPeriod
	}{
		{"default_validity", nil, types.SignatureValidityPeriod{Value: 135, Type: types.ValidityTypeMonths}},
		{"days", &types.SignatureValidityPeriod{Value: 30, Type: types.ValidityTypeDays}, types.SignatureValidityPeriod{Value: 30, Type: types.ValidityTypeDays}},
		{"years", &types.SignatureValidityPeriod{Value: 2, Type: types.ValidityTypeYears}, types.SignatureValidityPeriod{Value: 2, Type: types.ValidityTypeYears}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put := putProfile(t, c, tt.name, tt.validity)
			wantARN := "arn:aws:signer:us-west-2:111122223333:/signing-profiles/" + tt.name
			if aws.ToString(put.Arn) != wantARN {
				t.Errorf("arn = %q, want %q", aws.ToString(put.Arn), wantARN)
			}
			if v := aws.ToString(put.ProfileVersion); !versionRE.MatchString(v) {
				t.Errorf("profileVersion %q is not 10 alphanumerics", v)
			}
			if got, want := aws.ToString(put.ProfileVersionArn), wantARN+"/"+aws.ToString(put.ProfileVersion); got != want {
				t.Errorf("profileVersionArn = %q, want %q", got, want)
			}

			get, err := c.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String(tt.name)})
			if err != nil {
				t.Fatalf("GetSigningProfile: %v", err)
			}
			if aws.ToString(get.ProfileName) != tt.name || aws.ToString(get.Arn) != wantARN ||
				aws.ToString(get.ProfileVersion) != aws.ToString(put.ProfileVersion) ||
				aws.ToString(get.ProfileVersionArn) != aws.ToString(put.ProfileVersionArn) {
				t.Errorf("GetSigningProfile identity = %q %q %q %q, want what Put returned",
					aws.ToString(get.ProfileName), aws.ToString(get.Arn), aws.ToString(get.ProfileVersion), aws.ToString(get.ProfileVersionArn))
			}
			if aws.ToString(get.PlatformId) != PlatformID || aws.ToString(get.PlatformDisplayName) != PlatformDisplayName {
				t.Errorf("platform = %q / %q", aws.ToString(get.PlatformId), aws.ToString(get.PlatformDisplayName))
			}
			if get.SignatureValidityPeriod == nil || *get.SignatureValidityPeriod != tt.want {
				t.Errorf("signatureValidityPeriod = %+v, want %+v", get.SignatureValidityPeriod, tt.want)
			}
			if get.Status != types.SigningProfileStatusActive || get.RevocationRecord != nil {
				t.Errorf("status = %q, revocation record %+v; want Active and none", get.Status, get.RevocationRecord)
			}
		})
	}
}

func TestPutSigningProfileNewVersionEachTime(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	first := putProfile(t, c, "versions", nil)
	second := putProfile(t, c, "versions", &types.SignatureValidityPeriod{Value: 7, Type: types.ValidityTypeDays})
	if aws.ToString(first.ProfileVersion) == aws.ToString(second.ProfileVersion) {
		t.Fatalf("both Puts returned version %q", aws.ToString(first.ProfileVersion))
	}
	get, err := c.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String("versions")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(get.ProfileVersionArn) != aws.ToString(second.ProfileVersionArn) || get.SignatureValidityPeriod.Value != 7 {
		t.Errorf("current version = %q (%d), want the second Put's %q (7)", aws.ToString(get.ProfileVersionArn), get.SignatureValidityPeriod.Value, aws.ToString(second.ProfileVersionArn))
	}
	// New signatures carry the current version.
	s := signVia(t, c, "versions", "a")
	if s.versionARN != aws.ToString(second.ProfileVersionArn) {
		t.Errorf("signature profile version = %q, want %q", s.versionARN, aws.ToString(second.ProfileVersionArn))
	}
}

func TestSigningProfileErrors(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	ctx := context.Background()
	putProfile(t, c, "owned", nil)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"unsupported_platform", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("p1"), PlatformId: aws.String("AWSLambda-SHA384-ECDSA")})
			return err
		}, CodeValidation},
		{"name_too_short", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("p"), PlatformId: aws.String(PlatformID)})
			return err
		}, CodeValidation},
		{"name_with_dash", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("my-profile"), PlatformId: aws.String(PlatformID)})
			return err
		}, CodeValidation},
		{"name_too_long", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String(strings.Repeat("a", 65)), PlatformId: aws.String(PlatformID)})
			return err
		}, CodeValidation},
		{"bad_validity_type", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("p2"), PlatformId: aws.String(PlatformID),
				SignatureValidityPeriod: &types.SignatureValidityPeriod{Value: 3, Type: "WEEKS"}})
			return err
		}, CodeValidation},
		{"zero_validity", func() error {
			_, err := c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("p3"), PlatformId: aws.String(PlatformID),
				SignatureValidityPeriod: &types.SignatureValidityPeriod{Type: types.ValidityTypeDays}})
			return err
		}, CodeValidation},
		{"get_missing", func() error {
			_, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("missing")})
			return err
		}, CodeResourceNotFound},
		{"get_other_owner", func() error {
			_, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("owned"), ProfileOwner: aws.String("999999999999")})
			return err
		}, CodeAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorCode(t, tt.call()); got != tt.want {
				t.Errorf("error code = %q, want %q", got, tt.want)
			}
		})
	}
	if n := len(e.Jobs()); n != 0 {
		t.Errorf("failed calls recorded %d jobs", n)
	}
}

func TestRevokeSigningProfile(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	ctx := context.Background()
	put := putProfile(t, c, "to_revoke", nil)
	effective := fixedNow.Add(-time.Hour)

	_, err := c.RevokeSigningProfile(ctx, &signer.RevokeSigningProfileInput{
		ProfileName: aws.String("to_revoke"), ProfileVersion: aws.String("NoSuchVers"), EffectiveTime: aws.Time(effective), Reason: aws.String("test"),
	})
	if got := errorCode(t, err); got != CodeResourceNotFound {
		t.Errorf("revoking an unknown version: code %q, want %s", got, CodeResourceNotFound)
	}
	if _, err := c.RevokeSigningProfile(ctx, &signer.RevokeSigningProfileInput{
		ProfileName: aws.String("to_revoke"), ProfileVersion: put.ProfileVersion, EffectiveTime: aws.Time(effective), Reason: aws.String("test"),
	}); err != nil {
		t.Fatalf("RevokeSigningProfile: %v", err)
	}
	get, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("to_revoke")})
	if err != nil {
		t.Fatal(err)
	}
	if get.Status != types.SigningProfileStatusRevoked || get.RevocationRecord == nil {
		t.Fatalf("status %q, record %+v; want Revoked with a record", get.Status, get.RevocationRecord)
	}
	if !aws.ToTime(get.RevocationRecord.RevocationEffectiveFrom).Equal(effective) || !aws.ToTime(get.RevocationRecord.RevokedAt).Equal(fixedNow) {
		t.Errorf("revocation record times = %v / %v, want %v / %v", get.RevocationRecord.RevocationEffectiveFrom, get.RevocationRecord.RevokedAt, effective, fixedNow)
	}

	// Revocation is final: the profile neither signs nor takes new versions.
	_, err = c.SignPayload(ctx, &signer.SignPayloadInput{Payload: notaryPayload(t, "x"), PayloadFormat: aws.String(PayloadFormat), ProfileName: aws.String("to_revoke")})
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Errorf("SignPayload with a revoked profile: %v, want ValidationException", err)
	}
	_, err = c.PutSigningProfile(ctx, &signer.PutSigningProfileInput{ProfileName: aws.String("to_revoke"), PlatformId: aws.String(PlatformID)})
	if got := errorCode(t, err); got != CodeValidation {
		t.Errorf("Put on a revoked profile: code %q, want %s", got, CodeValidation)
	}
}

func TestSignPayload(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	tests := []struct {
		profile  string
		validity *types.SignatureValidityPeriod
		expiry   time.Time
	}{
		{"default_months", nil, fixedNow.AddDate(0, 135, 0)},
		{"ten_days", &types.SignatureValidityPeriod{Value: 10, Type: types.ValidityTypeDays}, fixedNow.AddDate(0, 0, 10)},
		{"one_year", &types.SignatureValidityPeriod{Value: 1, Type: types.ValidityTypeYears}, fixedNow.AddDate(1, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			put := putProfile(t, c, tt.profile, tt.validity)
			payload := notaryPayload(t, tt.profile)
			out, err := c.SignPayload(context.Background(), &signer.SignPayloadInput{
				Payload: payload, PayloadFormat: aws.String(PayloadFormat), ProfileName: aws.String(tt.profile),
			})
			if err != nil {
				t.Fatalf("SignPayload: %v", err)
			}
			if aws.ToString(out.JobOwner) != "111122223333" {
				t.Errorf("jobOwner = %q", aws.ToString(out.JobOwner))
			}
			if out.Metadata == nil {
				t.Errorf("metadata missing")
			}
			content := verifyEnvelope(t, out.Signature)
			if !bytes.Equal(content.Payload.Content, payload) || content.Payload.ContentType != PayloadFormat {
				t.Errorf("signed payload = %s (%s), want %s", content.Payload.Content, content.Payload.ContentType, payload)
			}
			attrs := content.SignerInfo.SignedAttributes
			if !attrs.SigningTime.Equal(fixedNow) {
				t.Errorf("signing time = %v, want %v", attrs.SigningTime, fixedNow)
			}
			if !attrs.Expiry.Equal(tt.expiry) {
				t.Errorf("expiry = %v, want signing time + validity = %v", attrs.Expiry, tt.expiry)
			}
			if got := extAttr(t, content, sigkit.HeaderProfileVersion); got != aws.ToString(put.ProfileVersionArn) {
				t.Errorf("profile version attribute = %q, want %q", got, aws.ToString(put.ProfileVersionArn))
			}
			wantJob := "arn:aws:signer:us-west-2:111122223333:/signing-jobs/" + aws.ToString(out.JobId)
			if got := extAttr(t, content, sigkit.HeaderSigningJob); got != wantJob {
				t.Errorf("job attribute = %q, want %q", got, wantJob)
			}
			chain := content.SignerInfo.CertificateChain
			if len(chain) != 4 || !chain[3].Equal(e.CA().Root.Cert) {
				t.Errorf("chain has %d certificates, want 4 ending in the emulator's root", len(chain))
			}
			jobs := e.Jobs()
			last := jobs[len(jobs)-1]
			if last.ID != aws.ToString(out.JobId) || last.ARN != wantJob || last.ProfileVersionARN != aws.ToString(put.ProfileVersionArn) || !last.SigningTime.Equal(fixedNow) {
				t.Errorf("recorded job = %+v", last)
			}
		})
	}
}

func TestSignPayloadErrors(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "signer_p", nil)
	good := notaryPayload(t, "ok")
	tests := []struct {
		name    string
		payload []byte
		format  string
		profile string
		owner   string
		want    string
	}{
		{"control", good, PayloadFormat, "signer_p", "", ""},
		{"wrong_format", good, "application/json", "signer_p", "", CodeValidation},
		{"empty_payload", []byte{}, PayloadFormat, "signer_p", "", CodeValidation},
		{"payload_too_big", append(good[:len(good)-1:len(good)-1], []byte(`,"x":"`+strings.Repeat("a", MaxPayloadSize)+`"}`)...), PayloadFormat, "signer_p", "", CodeValidation},
		{"not_json", []byte("hello"), PayloadFormat, "signer_p", "", CodeValidation},
		{"no_target_artifact", []byte(`{"subject":{}}`), PayloadFormat, "signer_p", "", CodeValidation},
		{"extra_member", append(good[:len(good)-1:len(good)-1], []byte(`,"x":1}`)...), PayloadFormat, "signer_p", "", CodeValidation},
		{"bad_digest", []byte(`{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nothex","size":2}}`), PayloadFormat, "signer_p", "", CodeValidation},
		{"no_media_type", []byte(`{"targetArtifact":{"digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":5}}`), PayloadFormat, "signer_p", "", CodeValidation},
		{"unknown_profile", good, PayloadFormat, "nope_profile", "", CodeResourceNotFound},
		{"other_owner", good, PayloadFormat, "signer_p", "999999999999", CodeAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &signer.SignPayloadInput{Payload: tt.payload, PayloadFormat: aws.String(tt.format), ProfileName: aws.String(tt.profile)}
			if tt.owner != "" {
				in.ProfileOwner = aws.String(tt.owner)
			}
			_, err := c.SignPayload(context.Background(), in)
			if got := errorCode(t, err); got != tt.want {
				t.Errorf("error %v: code %q, want %q", err, got, tt.want)
			}
		})
	}
	if n := len(e.Jobs()); n != 1 {
		t.Errorf("%d jobs recorded, want only the control's", n)
	}
}

func TestRegions(t *testing.T) {
	e := startEmu(t, Options{})
	tests := []struct {
		region, partition string
	}{
		{"us-west-2", "aws"},
		{"eu-central-1", "aws"},
		{"us-gov-west-1", "aws-us-gov"},
		{"cn-north-1", "aws-cn"},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			c := sdkClient(t, e, tt.region, 1)
			name := "p_" + strings.ReplaceAll(tt.region, "-", "_")
			put := putProfile(t, c, name, nil)
			prefix := "arn:" + tt.partition + ":signer:" + tt.region + ":111122223333:"
			if !strings.HasPrefix(aws.ToString(put.ProfileVersionArn), prefix) {
				t.Errorf("profile version ARN %q does not start with %q", aws.ToString(put.ProfileVersionArn), prefix)
			}
			s := signVia(t, c, name, tt.region)
			if !strings.HasPrefix(s.jobARN, prefix+"/signing-jobs/") {
				t.Errorf("job ARN %q does not start with %q", s.jobARN, prefix)
			}
			if cn := s.content.SignerInfo.CertificateChain[1].Subject.CommonName; !strings.Contains(cn, tt.region) {
				t.Errorf("regional CA %q is not the %s one", cn, tt.region)
			}
			if got := revoked(t, c, revocationInput(s)); len(got) != 0 {
				t.Errorf("fresh signature reported revoked: %v", got)
			}
		})
	}
	// Profiles are regional.
	other := sdkClient(t, e, "ap-south-1", 1)
	_, err := other.GetSigningProfile(context.Background(), &signer.GetSigningProfileInput{ProfileName: aws.String("p_us_west_2")})
	if got := errorCode(t, err); got != CodeResourceNotFound {
		t.Errorf("profile visible from another region: code %q", got)
	}
}

func TestDefaultRegionAndAccountWithoutSigV4(t *testing.T) {
	e, err := New(Options{Region: "eu-west-1", Account: "444455556666"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/signing-profiles/plain", strings.NewReader(`{"platformId":"`+PlatformID+`"}`)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"arn":"arn:aws:signer:eu-west-1:444455556666:/signing-profiles/plain"`) {
		t.Errorf("unsigned Put answered %d %s", rec.Code, rec.Body)
	}
	if _, err := New(Options{Account: "12"}); err == nil {
		t.Errorf("New accepted a malformed account")
	}
}

func TestUnknownRoute(t *testing.T) {
	e := startEmu(t, Options{})
	tests := []struct{ method, path string }{
		{http.MethodGet, "/signing-platforms"},
		{http.MethodDelete, "/signing-profiles/x"},
		{http.MethodGet, "/"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.URL()+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Amzn-ErrorType") != CodeUnknownOperation ||
			!strings.Contains(body.String(), tt.method+" "+tt.path) {
			t.Errorf("%s %s: %d %q %s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body.String())
		}
	}
}
