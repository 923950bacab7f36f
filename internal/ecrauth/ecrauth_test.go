package ecrauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"oras.land/oras-go/v2/registry/remote/auth"
)

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
		want Registry
	}{
		{"111122223333.dkr.ecr.us-west-2.amazonaws.com", true, Registry{Host: "111122223333.dkr.ecr.us-west-2.amazonaws.com", Account: "111122223333", Region: "us-west-2"}},
		{"111122223333.dkr.ecr.us-west-2.amazonaws.com:443", true, Registry{Host: "111122223333.dkr.ecr.us-west-2.amazonaws.com", Account: "111122223333", Region: "us-west-2"}},
		{"111122223333.DKR.ECR.US-WEST-2.AMAZONAWS.COM", true, Registry{Host: "111122223333.dkr.ecr.us-west-2.amazonaws.com", Account: "111122223333", Region: "us-west-2"}},
		{"111122223333.dkr.ecr-fips.us-gov-west-1.amazonaws.com", true, Registry{Host: "111122223333.dkr.ecr-fips.us-gov-west-1.amazonaws.com", Account: "111122223333", Region: "us-gov-west-1", FIPS: true}},
		{"111122223333.dkr.ecr-fips.us-east-1.amazonaws.com", true, Registry{Host: "111122223333.dkr.ecr-fips.us-east-1.amazonaws.com", Account: "111122223333", Region: "us-east-1", FIPS: true}},
		{"111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn", true, Registry{Host: "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn", Account: "111122223333", Region: "cn-north-1"}},
		{"111122223333.dkr.ecr.ap-southeast-4.amazonaws.com", true, Registry{Host: "111122223333.dkr.ecr.ap-southeast-4.amazonaws.com", Account: "111122223333", Region: "ap-southeast-4"}},
		// Not ECR private registries.
		{"111122223333.dkr.ecr.cn-north-1.amazonaws.com", false, Registry{}},
		{"111122223333.dkr.ecr.us-west-2.amazonaws.com.cn", false, Registry{}},
		{"11112222333.dkr.ecr.us-west-2.amazonaws.com", false, Registry{}},
		{"1111222233334.dkr.ecr.us-west-2.amazonaws.com", false, Registry{}},
		{"abcdefghijkl.dkr.ecr.us-west-2.amazonaws.com", false, Registry{}},
		{"111122223333.dkr.ecr.us-west-2.amazonaws.com.evil.example", false, Registry{}},
		{"evil.example/111122223333.dkr.ecr.us-west-2.amazonaws.com", false, Registry{}},
		{"x.111122223333.dkr.ecr.us-west-2.amazonaws.com", false, Registry{}},
		{"111122223333.dkr.ecr.uswest2.amazonaws.com", false, Registry{}},
		{"111122223333.dkr.ecr.us-west-2.amazonaws.org", false, Registry{}},
		{"public.ecr.aws", false, Registry{}},
		{"docker.io", false, Registry{}},
		{"127.0.0.1:5000", false, Registry{}},
		{"", false, Registry{}},
	} {
		got, ok := ParseHost(tc.host)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseHost(%q) = %+v, %t; want %+v, %t", tc.host, got, ok, tc.want, tc.ok)
		}
		if IsECRHost(tc.host) != tc.ok {
			t.Errorf("IsECRHost(%q) = %t", tc.host, !tc.ok)
		}
	}
}

// fakeECR counts calls and answers with numbered tokens.
type fakeECR struct {
	mu       sync.Mutex
	calls    int
	now      func() time.Time
	lifetime time.Duration
	err      error
	token    func(n int) *string
}

func (f *fakeECR) GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	tok := aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:password-" + string(rune('0'+f.calls)))))
	if f.token != nil {
		tok = f.token(f.calls)
	}
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []types.AuthorizationData{{
		AuthorizationToken: tok,
		ExpiresAt:          aws.Time(f.now().Add(f.lifetime)),
	}}}, nil
}

func (f *fakeECR) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSource(t *testing.T, lifetime time.Duration) (*Source, *fakeECR, *clock, *[]Registry) {
	t.Helper()
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	fake := &fakeECR{now: clk.now, lifetime: lifetime}
	var asked []Registry
	var mu sync.Mutex
	src := New(Options{
		Now: clk.now,
		NewClient: func(_ context.Context, r Registry) (API, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, r)
			return fake, nil
		},
	})
	return src, fake, clk, &asked
}

const host = "111122223333.dkr.ecr.us-west-2.amazonaws.com"

func TestTokenCachedForItsLifetime(t *testing.T) {
	ctx := context.Background()
	src, fake, clk, asked := newSource(t, 12*time.Hour)

	first, err := src.Credential(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if first.Username != "AWS" || first.Password != "password-1" {
		t.Fatalf("credential %+v", first)
	}
	if (*asked)[0].Region != "us-west-2" {
		t.Fatalf("client for %+v", (*asked)[0])
	}
	// Same registry, with or without port, within the lifetime: no call.
	for _, h := range []string{host, host + ":443", strings.ToUpper(host)} {
		c, err := src.Credential(ctx, h)
		if err != nil || c != first {
			t.Fatalf("%s: %+v %v", h, c, err)
		}
	}
	clk.advance(12*time.Hour - DefaultRefreshMargin - time.Second)
	if c, _ := src.Credential(ctx, host); c != first || fake.count() != 1 {
		t.Fatalf("refetched before the refresh margin: %d calls", fake.count())
	}
	// Within the refresh margin of expiry: a new token.
	clk.advance(2 * time.Second)
	second, err := src.Credential(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if fake.count() != 2 || second.Password != "password-2" {
		t.Fatalf("after expiry: %d calls, %+v", fake.count(), second)
	}
	// Another registry has its own token.
	other := "444455556666.dkr.ecr-fips.us-east-1.amazonaws.com"
	if _, err := src.Credential(ctx, other); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 3 {
		t.Fatalf("other registry: %d calls", fake.count())
	}
	last := (*asked)[len(*asked)-1]
	if last.Region != "us-east-1" || !last.FIPS || last.Account != "444455556666" {
		t.Fatalf("client for %+v", last)
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	src, fake, _, _ := newSource(t, time.Hour)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := src.Credential(context.Background(), host); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if fake.count() != 1 {
		t.Fatalf("%d GetAuthorizationToken calls, want 1", fake.count())
	}
}

func TestNonECRHostIsAnonymous(t *testing.T) {
	src, fake, _, _ := newSource(t, time.Hour)
	c, err := src.Credential(context.Background(), "registry.example:5000")
	if err != nil || c != auth.EmptyCredential || fake.count() != 0 {
		t.Fatalf("%+v %v calls=%d", c, err, fake.count())
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	src, fake, _, _ := newSource(t, time.Hour)
	fake.err = errors.New("AccessDeniedException: not authorized")
	_, err := src.Credential(ctx, host)
	if err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "ecr:GetAuthorizationToken") || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("error %v", err)
	}
	fake.err = nil
	if _, err := src.Credential(ctx, host); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 2 {
		t.Fatalf("%d calls, want 2 (the failure is not kept)", fake.count())
	}
}

func TestBadTokens(t *testing.T) {
	for name, tok := range map[string]*string{
		"missing":     nil,
		"not base64":  aws.String("%%%"),
		"no password": aws.String(base64.StdEncoding.EncodeToString([]byte("AWS"))),
	} {
		t.Run(name, func(t *testing.T) {
			src, fake, _, _ := newSource(t, time.Hour)
			fake.token = func(int) *string { return tok }
			if _, err := src.Credential(context.Background(), host); err == nil || !strings.Contains(err.Error(), host) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

func TestDecodeToken(t *testing.T) {
	u, p, err := DecodeToken(base64.StdEncoding.EncodeToString([]byte("AWS:a:b")))
	if err != nil || u != "AWS" || p != "a:b" {
		t.Fatalf("%q %q %v", u, p, err)
	}
}

// TestSDKClient runs the default client (the real SDK) against a local
// server speaking ECR's JSON protocol.
func TestSDKClient(t *testing.T) {
	var mu sync.Mutex
	var targets, scopes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targets = append(targets, r.Header.Get("X-Amz-Target"))
		scopes = append(scopes, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"https://%s"}]}`,
			base64.StdEncoding.EncodeToString([]byte("AWS:sdk-token")), time.Now().Add(12*time.Hour).Unix(), host)
	}))
	defer srv.Close()
	src := New(Options{AWS: &aws.Config{
		Region:       "eu-central-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
	}})
	for range 3 {
		c, err := src.Credential(context.Background(), host)
		if err != nil {
			t.Fatal(err)
		}
		if c.Username != "AWS" || c.Password != "sdk-token" {
			t.Fatalf("credential %+v", c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(targets) != 1 || targets[0] != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		t.Fatalf("requests %v", targets)
	}
	if !strings.Contains(scopes[0], "/us-west-2/ecr/") {
		t.Fatalf("request not signed for the registry's region: %s", scopes[0])
	}
}
