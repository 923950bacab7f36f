package registry

import (
	"context"
	"net/http"
	"testing"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/oci"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
)

// Both modes hold the signature; only the API mode answers the referrers
// endpoint, so clients of the other must use the referrers tag schema.
func TestReferrersModes(t *testing.T) {
	for _, api := range []bool{true, false} {
		r, err := Start(Options{Referrers: api})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		img, err := oci.Open(r.Host+"/team/app:v1", oci.Options{PlainHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		subject, err := PushImage(ctx, img.Repo, "v1", []byte("layer"))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := img.PushSignature(ctx, subject, []byte(`{"payload":""}`), signature.MediaTypeJWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + r.Host + "/v2/team/app/referrers/" + subject.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != api {
			t.Errorf("referrers API enabled=%v: endpoint answered %d", api, resp.StatusCode)
		}
		sigs, err := img.Signatures(ctx, subject)
		if err != nil || len(sigs) != 1 || sigs[0].Digest != sig.Digest || sigs[0].ArtifactType != signature.ArtifactType {
			t.Errorf("referrers API enabled=%v: signatures %v, %v", api, sigs, err)
		}
		got, err := signature.Read(ctx, img.Repo, sigs[0], subject.Digest)
		if err != nil || string(got.Envelope) != `{"payload":""}` || got.Subject.Digest != subject.Digest {
			t.Errorf("fetch: %v %v", got, err)
		}
		r.Close()
	}
}
