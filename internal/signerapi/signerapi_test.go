package signerapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/signer"
)

// capture records where requests go and answers with a given body; no
// request leaves the process.
type capture struct {
	hosts []string
	body  func() io.ReadCloser
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	c.hosts = append(c.hosts, r.URL.Host)
	if c.body == nil {
		return nil, errors.New("captured")
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: c.body(), Request: r}, nil
}

func client(t *testing.T, o Options, c *capture) *signer.Client {
	t.Helper()
	o.Base = &aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret-access-key-of-40-characters", ""), HTTPClient: c}
	o.MaxAttempts, o.MaxBackoff = 1, time.Millisecond
	f, err := NewFactory(o)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := f.Client(context.Background(), "us-gov-west-1")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func revocationStatus(c *signer.Client) error {
	_, err := c.GetRevocationStatus(context.Background(), &signer.GetRevocationStatusInput{
		CertificateHashes: []string{"aa"}, JobArn: aws.String("arn:aws-us-gov:signer:us-gov-west-1:1:/signing-jobs/j"),
		PlatformId: aws.String("Notation-OCI-SHA384-ECDSA"), ProfileVersionArn: aws.String("arn:aws-us-gov:signer:us-gov-west-1:1:/signing-profiles/P/v"),
		SignatureTimestamp: aws.Time(time.Now()),
	})
	return err
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		host string
	}{
		{"regional", Options{}, "data-signer.us-gov-west-1.amazonaws.com"},
		{"FIPS", Options{UseFIPSEndpoint: true}, "data-signer-fips.us-gov-west-1.amazonaws.com"},
		{"override without host prefix", Options{Endpoint: "http://127.0.0.1:9"}, "127.0.0.1:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &capture{}
			revocationStatus(client(t, tc.o, c))
			if len(c.hosts) != 1 || c.hosts[0] != tc.host {
				t.Fatalf("requests went to %v, want %s", c.hosts, tc.host)
			}
		})
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
func (endless) Close() error { return nil }

func TestResponsesAreBounded(t *testing.T) {
	c := &capture{body: func() io.ReadCloser { return endless{} }}
	err := revocationStatus(client(t, Options{Endpoint: "http://127.0.0.1:9"}, c))
	if err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("endless response: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		http.Redirect(w, r, "/again", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	f, err := NewFactory(Options{Endpoint: srv.URL, MaxAttempts: 3, MaxBackoff: time.Millisecond,
		Base: &aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret-access-key-of-40-characters", "")}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Client(context.Background(), "us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := revocationStatus(c); err == nil {
		t.Fatal("a redirect was answered as success")
	}
	if n > 3 {
		t.Fatalf("%d requests for a redirect loop, want at most the 3 attempts", n)
	}
}
