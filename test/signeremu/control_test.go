package signeremu

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
)

// control sends one /_emulator/ request and returns the status and body.
func control(t *testing.T, e *Emulator, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func mustControl(t *testing.T, e *Emulator, method, path, body string, want int) []byte {
	t.Helper()
	code, b := control(t, e, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	return b
}

func TestControlEndpoints(t *testing.T) {
	e := startEmu(t, Options{})
	c := sdkClient(t, e, "us-west-2", 1)
	ctx := context.Background()

	t.Run("root.pem", func(t *testing.T) {
		b := mustControl(t, e, http.MethodGet, "/_emulator/root.pem", "", http.StatusOK)
		if !bytes.Equal(b, e.CA().RootPEM()) {
			t.Errorf("root.pem differs from the CA root")
		}
	})

	var prof struct{ ARN, ProfileVersionARN string }
	t.Run("profiles", func(t *testing.T) {
		b := mustControl(t, e, http.MethodPost, "/_emulator/profiles", `{"name":"ctl_profile","months":12}`, http.StatusOK)
		var out map[string]string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		prof.ARN, prof.ProfileVersionARN = out["arn"], out["profileVersionArn"]
		get, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("ctl_profile")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(get.ProfileVersionArn) != prof.ProfileVersionARN || aws.ToString(get.Arn) != prof.ARN || get.SignatureValidityPeriod.Value != 12 {
			t.Errorf("control-made profile seen as %q %q %d; control said %q %q", aws.ToString(get.Arn), aws.ToString(get.ProfileVersionArn), get.SignatureValidityPeriod.Value, prof.ARN, prof.ProfileVersionARN)
		}
		mustControl(t, e, http.MethodPost, "/_emulator/profiles", `{"name":"x"}`, http.StatusBadRequest)
	})

	s := signVia(t, c, "ctl_profile", "ctl")
	t.Run("jobs", func(t *testing.T) {
		var out struct{ Jobs []Job }
		if err := json.Unmarshal(mustControl(t, e, http.MethodGet, "/_emulator/jobs", "", http.StatusOK), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Jobs) != 1 || out.Jobs[0].ID != s.jobID || out.Jobs[0].ARN != s.jobARN || !out.Jobs[0].SigningTime.Equal(s.signingTime) {
			t.Errorf("jobs = %+v, want the one signature %s", out.Jobs, s.jobARN)
		}
	})

	t.Run("faults", func(t *testing.T) {
		mustControl(t, e, http.MethodPost, "/_emulator/faults", `{"op":"GetSigningProfile","status":429,"code":"TooManyRequestsException","message":"slow down","times":1}`, http.StatusNoContent)
		mustControl(t, e, http.MethodPost, "/_emulator/faults", `{"op":"SignPayload","latency":"20ms"}`, http.StatusNoContent)
		var listed struct{ Faults map[string]FaultJSON }
		if err := json.Unmarshal(mustControl(t, e, http.MethodGet, "/_emulator/faults", "", http.StatusOK), &listed); err != nil {
			t.Fatal(err)
		}
		if f := listed.Faults[OpGetSigningProfile]; f.Status != 429 || f.Times != 1 || f.Message != "slow down" || listed.Faults[OpSignPayload].Latency != "20ms" {
			t.Errorf("listed faults = %+v", listed.Faults)
		}
		_, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("ctl_profile")})
		if got := errorCode(t, err); got != CodeTooManyRequests {
			t.Errorf("code %q, want %s", got, CodeTooManyRequests)
		}
		if _, err := c.GetSigningProfile(ctx, &signer.GetSigningProfileInput{ProfileName: aws.String("ctl_profile")}); err != nil {
			t.Errorf("the one-time fault applied twice: %v", err)
		}
		mustControl(t, e, http.MethodPost, "/_emulator/faults", `{"op":"*","hang":true}`, http.StatusNoContent)
		mustControl(t, e, http.MethodDelete, "/_emulator/faults?op=*", "", http.StatusNoContent)
		if f := e.Faults(); len(f) != 1 {
			t.Errorf("after clearing *: %+v", f)
		}
		mustControl(t, e, http.MethodDelete, "/_emulator/faults", "", http.StatusNoContent)
		if f := e.Faults(); len(f) != 0 {
			t.Errorf("after clearing all: %+v", f)
		}
		for _, bad := range []string{`{}`, `{"op":"x","latency":"soon"}`, `{"op":"x","times":-1}`, `{"op":"x","bogus":1}`, `not json`} {
			if code, b := control(t, e, http.MethodPost, "/_emulator/faults", bad); code != http.StatusBadRequest || !strings.Contains(string(b), `"error"`) {
				t.Errorf("fault %s: %d %s, want 400 with an error", bad, code, b)
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		var st struct{ Counts map[string]int }
		if err := json.Unmarshal(mustControl(t, e, http.MethodGet, "/_emulator/stats", "", http.StatusOK), &st); err != nil {
			t.Fatal(err)
		}
		if st.Counts[OpGetSigningProfile] != e.Count(OpGetSigningProfile) || st.Counts[OpGetSigningProfile] < 3 || st.Counts[OpSignPayload] != 1 {
			t.Errorf("stats = %v, Counts() = %v", st.Counts, e.Counts())
		}
		mustControl(t, e, http.MethodPost, "/_emulator/stats/reset", "", http.StatusNoContent)
		if n := len(e.Counts()); n != 0 {
			t.Errorf("%d counters left after reset", n)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		check := func(want ...string) {
			t.Helper()
			slices.Sort(want)
			if got := revoked(t, c, revocationInput(s)); !slices.Equal(got, want) {
				t.Errorf("revoked = %q, want %q", got, want)
			}
		}
		check()
		mustControl(t, e, http.MethodPost, "/_emulator/revoke/job", `{"jobId":"`+s.jobID+`"}`, http.StatusNoContent)
		check(s.jobARN)

		before := s.signingTime.Add(-time.Minute).Format(time.RFC3339)
		mustControl(t, e, http.MethodPost, "/_emulator/revoke/profile-version", `{"profileVersionArn":"`+s.versionARN+`","effectiveTime":"`+before+`"}`, http.StatusNoContent)
		check(s.jobARN, s.versionARN)

		leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.content.SignerInfo.CertificateChain[0].Raw})
		mustControl(t, e, http.MethodPost, "/_emulator/revoke/certificate", string(leafPEM), http.StatusNoContent)
		check(s.jobARN, s.versionARN, entryFor(t, s, 0))

		inter := CertificateHash(s.content.SignerInfo.CertificateChain[2])
		mustControl(t, e, http.MethodPost, "/_emulator/revoke/certificate", `{"hash":"`+inter+`"}`, http.StatusNoContent)
		check(s.jobARN, s.versionARN, entryFor(t, s, 0), entryFor(t, s, 2))

		for _, bad := range []struct{ path, body string }{
			{"/_emulator/revoke/job", `{"jobArn":"nope"}`},
			{"/_emulator/revoke/profile-version", `{"profileVersionArn":"` + prof.ARN + `"}`},
			{"/_emulator/revoke/certificate", `{"hash":"abc"}`},
			{"/_emulator/revoke/certificate", `{}`},
		} {
			if code, b := control(t, e, http.MethodPost, bad.path, bad.body); code != http.StatusBadRequest {
				t.Errorf("%s %s: %d %s, want 400", bad.path, bad.body, code, b)
			}
		}
		if code, _ := control(t, e, http.MethodPost, "/_emulator/revoke/job", `{"jobId":"unknown"}`); code != http.StatusNotFound {
			t.Errorf("revoking an unknown job id: %d, want 404", code)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		if code, b := control(t, e, http.MethodGet, "/_emulator/nothing", ""); code != http.StatusNotFound || !strings.Contains(string(b), "/_emulator/nothing") {
			t.Errorf("unknown control: %d %s", code, b)
		}
	})
}
