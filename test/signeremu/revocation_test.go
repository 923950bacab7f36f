package signeremu

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/aws-sdk-go-v2/service/signer/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/sigkit"
)

// entryFor returns the certificateHashes entry of s whose certificate is
// the chain's i-th.
func entryFor(t *testing.T, s signed, i int) string {
	t.Helper()
	h := CertificateHash(s.content.SignerInfo.CertificateChain[i])
	for _, e := range CertificateHashes(s.content.SignerInfo.CertificateChain) {
		if strings.HasPrefix(e, h) {
			return e
		}
	}
	t.Fatalf("no entry for certificate %d", i)
	return ""
}

func TestGetRevocationStatus(t *testing.T) {
	type env struct {
		e *Emulator
		c *signer.Client
		s signed
	}
	revokeProfile := func(t *testing.T, v env, effective time.Time) {
		t.Helper()
		version := v.s.versionARN[strings.LastIndex(v.s.versionARN, "/")+1:]
		if _, err := v.c.RevokeSigningProfile(context.Background(), &signer.RevokeSigningProfileInput{
			ProfileName: aws.String("rev_profile"), ProfileVersion: aws.String(version), EffectiveTime: aws.Time(effective), Reason: aws.String("test"),
		}); err != nil {
			t.Fatalf("RevokeSigningProfile: %v", err)
		}
	}
	tests := []struct {
		name   string
		revoke func(t *testing.T, v env)
		want   func(t *testing.T, v env) []string
	}{
		{"nothing_revoked", func(*testing.T, env) {}, nil},
		{"job_revoked_via_api", func(t *testing.T, v env) {
			if _, err := v.c.RevokeSignature(context.Background(), &signer.RevokeSignatureInput{JobId: aws.String(v.s.jobID), Reason: aws.String("test")}); err != nil {
				t.Fatalf("RevokeSignature: %v", err)
			}
		}, func(_ *testing.T, v env) []string { return []string{v.s.jobARN} }},
		{"job_revoked_via_go", func(t *testing.T, v env) {
			if err := v.e.RevokeJob(v.s.jobARN); err != nil {
				t.Fatal(err)
			}
		}, func(_ *testing.T, v env) []string { return []string{v.s.jobARN} }},
		{"other_job_revoked", func(t *testing.T, v env) {
			other := signVia(t, v.c, "rev_profile", "other")
			if _, err := v.c.RevokeSignature(context.Background(), &signer.RevokeSignatureInput{JobId: aws.String(other.jobID), Reason: aws.String("test")}); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"profile_revoked_before_signature", func(t *testing.T, v env) {
			revokeProfile(t, v, v.s.signingTime.Add(-time.Hour))
		}, func(_ *testing.T, v env) []string { return []string{v.s.versionARN} }},
		{"profile_revoked_at_signature_time", func(t *testing.T, v env) {
			revokeProfile(t, v, v.s.signingTime)
		}, func(_ *testing.T, v env) []string { return []string{v.s.versionARN} }},
		{"profile_revoked_after_signature", func(t *testing.T, v env) {
			revokeProfile(t, v, v.s.signingTime.Add(time.Hour))
		}, nil},
		{"profile_revoked_via_go", func(t *testing.T, v env) {
			if err := v.e.RevokeProfileVersion(v.s.versionARN, v.s.signingTime.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, func(_ *testing.T, v env) []string { return []string{v.s.versionARN} }},
		{"other_profile_version_revoked", func(t *testing.T, v env) {
			next := putProfile(t, v.c, "rev_profile", nil)
			if err := v.e.RevokeProfileVersion(aws.ToString(next.ProfileVersionArn), v.s.signingTime.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"leaf_revoked", func(_ *testing.T, v env) {
			v.e.RevokeCertificate(v.s.content.SignerInfo.CertificateChain[0])
		}, func(t *testing.T, v env) []string { return []string{entryFor(t, v.s, 0)} }},
		{"intermediate_revoked_by_hash", func(t *testing.T, v env) {
			if err := v.e.RevokeCertificateHash(strings.ToUpper(CertificateHash(v.s.content.SignerInfo.CertificateChain[2]))); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, v env) []string { return []string{entryFor(t, v.s, 2)} }},
		{"root_revoked", func(_ *testing.T, v env) {
			v.e.RevokeCertificate(v.e.CA().Root.Cert)
		}, func(t *testing.T, v env) []string { return []string{entryFor(t, v.s, 3)} }},
		{"unrelated_certificate_revoked", func(t *testing.T, v env) {
			c, err := sigkit.NewCert(sigkit.CertSpec{Subject: pkix.Name{CommonName: "elsewhere"}, NotBefore: fixedNow, NotAfter: fixedNow.Add(time.Hour)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v.e.RevokeCertificate(c.Cert)
			// Also a job and a version of which the request says nothing.
			if err := v.e.RevokeJob("arn:aws:signer:us-west-2:111122223333:/signing-jobs/00000000-0000-0000-0000-000000000000"); err != nil {
				t.Fatal(err)
			}
			if err := v.e.RevokeProfileVersion("arn:aws:signer:us-west-2:111122223333:/signing-profiles/ghost/AAAAAAAAAA", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"everything_revoked", func(t *testing.T, v env) {
			if err := v.e.RevokeJob(v.s.jobARN); err != nil {
				t.Fatal(err)
			}
			if err := v.e.RevokeProfileVersion(v.s.versionARN, v.s.signingTime); err != nil {
				t.Fatal(err)
			}
			v.e.RevokeCertificate(v.s.content.SignerInfo.CertificateChain[1])
		}, func(t *testing.T, v env) []string { return []string{v.s.jobARN, v.s.versionARN, entryFor(t, v.s, 1)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmu(t, Options{})
			c := sdkClient(t, e, "us-west-2", 1)
			putProfile(t, c, "rev_profile", nil)
			v := env{e: e, c: c, s: signVia(t, c, "rev_profile", tt.name)}
			tt.revoke(t, v)
			var want []string
			if tt.want != nil {
				want = tt.want(t, v)
			}
			slices.Sort(want)
			got := revoked(t, c, revocationInput(v.s))
			if !slices.Equal(got, want) {
				t.Errorf("revokedEntities = %q, want %q", got, want)
			}
			// Whatever is revoked, only what the request named comes back.
			in := revocationInput(v.s)
			named := append([]string{*in.JobArn, *in.ProfileVersionArn}, in.CertificateHashes...)
			for _, g := range got {
				if !slices.Contains(named, g) {
					t.Errorf("echoed %q, which the request did not contain", g)
				}
			}
		})
	}
}

func TestRevocationHashOrderIrrelevant(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "order", nil)
	s := signVia(t, c, "order", "x")
	e.RevokeCertificate(s.content.SignerInfo.CertificateChain[0])
	in := revocationInput(s)
	want := entryFor(t, s, 0)
	for _, order := range [][]string{in.CertificateHashes, reversed(in.CertificateHashes)} {
		in.CertificateHashes = order
		if got := revoked(t, c, in); !slices.Equal(got, []string{want}) {
			t.Errorf("order %q: revoked %q, want the leaf entry", order, got)
		}
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func TestGetRevocationStatusValidation(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	putProfile(t, c, "val", nil)
	s := signVia(t, c, "val", "x")
	swapPartition := func(a, partition, region string) string {
		a = strings.Replace(a, "arn:aws:", "arn:"+partition+":", 1)
		return strings.Replace(a, ":us-west-2:", ":"+region+":", 1)
	}
	tests := []struct {
		name   string
		region string
		mutate func(in *signer.GetRevocationStatusInput)
		opt    func(*signer.Options)
		ok     bool
	}{
		{name: "control", ok: true, mutate: func(*signer.GetRevocationStatusInput) {}},
		{name: "no_certificate_hashes", mutate: func(in *signer.GetRevocationStatusInput) { in.CertificateHashes = []string{} }},
		{name: "empty_job_arn", mutate: func(in *signer.GetRevocationStatusInput) { in.JobArn = aws.String("") }},
		{name: "empty_platform", mutate: func(in *signer.GetRevocationStatusInput) { in.PlatformId = aws.String("") }},
		{name: "other_platform", mutate: func(in *signer.GetRevocationStatusInput) { in.PlatformId = aws.String("AWSLambda-SHA384-ECDSA") }},
		{name: "empty_profile_version", mutate: func(in *signer.GetRevocationStatusInput) { in.ProfileVersionArn = aws.String("") }},
		{name: "no_signature_timestamp", mutate: func(*signer.GetRevocationStatusInput) {}, opt: dropQuery("signatureTimestamp")},
		{name: "unversioned_profile_arn", mutate: func(in *signer.GetRevocationStatusInput) {
			a := *in.ProfileVersionArn
			in.ProfileVersionArn = aws.String(a[:strings.LastIndex(a, "/")])
		}},
		{name: "malformed_job_arn", mutate: func(in *signer.GetRevocationStatusInput) { in.JobArn = aws.String("not-an-arn") }},
		{name: "short_hash", mutate: func(in *signer.GetRevocationStatusInput) { in.CertificateHashes = []string{"abc123"} }},
		{name: "uppercase_hash", mutate: func(in *signer.GetRevocationStatusInput) {
			in.CertificateHashes = []string{strings.ToUpper(in.CertificateHashes[0])}
		}},
		{name: "cross_partition_arns", mutate: func(in *signer.GetRevocationStatusInput) {
			in.JobArn = aws.String(swapPartition(*in.JobArn, "aws-cn", "cn-north-1"))
			in.ProfileVersionArn = aws.String(swapPartition(*in.ProfileVersionArn, "aws-cn", "cn-north-1"))
		}},
		{name: "cross_partition_region", region: "us-gov-west-1", mutate: func(*signer.GetRevocationStatusInput) {}},
		{name: "same_partition_other_region", region: "eu-west-1", ok: true, mutate: func(*signer.GetRevocationStatusInput) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := c
			if tt.region != "" {
				cl = sdkClient(t, e, tt.region, 1)
			}
			in := revocationInput(s)
			tt.mutate(in)
			var opts []func(*signer.Options)
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			out, err := cl.GetRevocationStatus(context.Background(), in, opts...)
			if tt.ok {
				if err != nil || len(out.RevokedEntities) != 0 {
					t.Fatalf("control request: %v, %v", out, err)
				}
				return
			}
			var ve *types.ValidationException
			if !errors.As(err, &ve) {
				t.Fatalf("error = %v, want *types.ValidationException", err)
			}
			if ve.ErrorMessage() == "" {
				t.Errorf("ValidationException without a message")
			}
		})
	}
}
