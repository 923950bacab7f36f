package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

func TestRatifyVerify(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		mode := "referrers-tag-fallback"
		if referrers {
			mode = "referrers-api"
		}
		t.Run(mode, func(t *testing.T) {
			s := newStack(t, referrers)
			c := ctx(t)
			otherARN, _, err := s.Emulator.CreateProfile("Other", 12)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("signed by the trusted profile", func(t *testing.T) {
				ref, desc, err := s.PushImage(c, "team/app", "good")
				if err != nil {
					t.Fatal(err)
				}
				sig, job, err := s.Sign(c, "team/app", desc, "")
				if err != nil {
					t.Fatal(err)
				}
				out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				reps := awsReports(out)
				if !out.IsSuccess || len(reps) != 1 || !reps[0].IsSuccess {
					t.Fatalf("not verified: %s", out.Stdout)
				}
				r := reps[0]
				if r.ReferenceDigest != sig.Digest.String() || r.Name != "verifier-awssigner" {
					t.Errorf("report names %s / %s", r.ReferenceDigest, r.Name)
				}
				for k, want := range map[string]any{
					"signingProfileArn": s.ProfileARN, "signingProfileVersionArn": s.VersionARN, "signingJobArn": job,
					"verificationLevel": "strict", "revocationStatus": "notRevoked", "matchedIdentity": s.ProfileARN,
				} {
					if r.Extensions[k] != want {
						t.Errorf("extensions.%s = %v, want %v", k, r.Extensions[k], want)
					}
				}
				for _, k := range []string{"signingTime", "expiry"} {
					v, _ := r.Extensions[k].(string)
					if _, err := time.Parse(time.RFC3339, v); err != nil {
						t.Errorf("extensions.%s = %q is not RFC 3339", k, v)
					}
				}
				mustContain(t, "message", r.Message, "verified (level strict", s.VersionARN)
			})

			t.Run("signed by another profile", func(t *testing.T) {
				ref, desc, _ := s.PushImage(c, "team/app", "other")
				if _, _, err := s.Sign(c, "team/app", desc, otherARN); err != nil {
					t.Fatal(err)
				}
				out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				reps := awsReports(out)
				if out.IsSuccess || len(reps) != 1 || reps[0].IsSuccess {
					t.Fatalf("verified: %s", out.Stdout)
				}
				mustContain(t, "message", reps[0].Message, otherARN, s.ProfileARN, "not trusted")
				if reps[0].Extensions["reason"] != "untrustedIdentity" {
					t.Errorf("reason %v", reps[0].Extensions["reason"])
				}
			})

			t.Run("revoked job", func(t *testing.T) {
				ref, desc, _ := s.PushImage(c, "team/app", "revoked")
				_, job, err := s.Sign(c, "team/app", desc, "")
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Emulator.RevokeJob(job); err != nil {
					t.Fatal(err)
				}
				out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				reps := awsReports(out)
				if out.IsSuccess || len(reps) != 1 {
					t.Fatalf("verified: %s", out.Stdout)
				}
				mustContain(t, "message", reps[0].Message, "revoked", job)
				if reps[0].Extensions["revocationStatus"] != "revoked" {
					t.Errorf("revocationStatus %v", reps[0].Extensions["revocationStatus"])
				}
			})

			t.Run("AWS down: strict refuses, permissive admits with a warning", func(t *testing.T) {
				ref, desc, _ := s.PushImage(c, "team/app", "outage")
				if _, _, err := s.Sign(c, "team/app", desc, ""); err != nil {
					t.Fatal(err)
				}
				s.Emulator.SetFault(signeremu.OpGetRevocationStatus, signeremu.Fault{Status: 500, Code: "InternalServiceErrorException", Message: "outage"})
				defer s.Emulator.ClearFaults()
				out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				if reps := awsReports(out); out.IsSuccess || len(reps) != 1 {
					t.Fatalf("strict verified during an outage: %s", out.Stdout)
				} else {
					mustContain(t, "message", reps[0].Message, "could not be checked", "InternalServiceErrorException")
				}
				out = verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "permissive", nil, nil))
				reps := awsReports(out)
				if !out.IsSuccess || len(reps) != 1 {
					t.Fatalf("permissive refused during an outage: %s", out.Stdout)
				}
				if reps[0].Extensions["revocationStatus"] != "unavailable" || reps[0].Extensions["warnings"] == nil {
					t.Errorf("no warning: %v", reps[0].Extensions)
				}
				mustContain(t, "message", reps[0].Message, "warnings")
			})

			t.Run("unsigned image", func(t *testing.T) {
				ref, _, _ := s.PushImage(c, "team/app", "unsigned")
				out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				if out.IsSuccess {
					t.Fatalf("unsigned image verified: %s", out.Stdout)
				}
				if len(awsReports(out)) != 0 {
					t.Errorf("a report for an image without signatures: %s", out.Stdout)
				}
			})

			t.Run("two signatures, one valid: any passes, all fails", func(t *testing.T) {
				ref, desc, _ := s.PushImage(c, "team/app", "two")
				if _, _, err := s.Sign(c, "team/app", desc, otherARN); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Sign(c, "team/app", desc, ""); err != nil {
					t.Fatal(err)
				}
				out := verify(t, s, ref, "any", s.VerifierConfig("verifier-awssigner", "strict", nil, nil))
				reps := awsReports(out)
				if !out.IsSuccess || len(reps) != 2 {
					t.Fatalf("any: %s", out.Stdout)
				}
				ok := 0
				for _, r := range reps {
					if r.IsSuccess {
						ok++
					}
				}
				if ok != 1 {
					t.Fatalf("%d of 2 signatures verified, want 1: %s", ok, out.Stdout)
				}
				if out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil)); out.IsSuccess {
					t.Fatalf("all: verified with one bad signature: %s", out.Stdout)
				}
			})

			t.Run("digest reference", func(t *testing.T) {
				_, desc, _ := s.PushImage(c, "team/app", "bydigest")
				if _, _, err := s.Sign(c, "team/app", desc, ""); err != nil {
					t.Fatal(err)
				}
				ref := fmt.Sprintf("%s/team/app@%s", s.Registry.Host, desc.Digest)
				if out := verify(t, s, ref, "all", s.VerifierConfig("verifier-awssigner", "strict", nil, nil)); !out.IsSuccess {
					t.Fatalf("by digest: %s", out.Stdout)
				}
			})
		})
	}
}
