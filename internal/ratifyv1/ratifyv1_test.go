package ratifyv1

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ratify-project/ratify/pkg/common"
	"github.com/ratify-project/ratify/pkg/common/oras/authprovider"
	storeconfig "github.com/ratify-project/ratify/pkg/referrerstore/config"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

func TestOpenRepositoryFollowsRatifysStoreConfiguration(t *testing.T) {
	subject := common.Reference{Path: "127.0.0.1:5000/team/app", Original: "127.0.0.1:5000/team/app:v1"}
	repo, cache, err := openRepository(&storeconfig.StoreConfig{Store: map[string]any{"name": "oras", "useHttp": true, "localCachePath": "/var/cache/slot-1"}}, subject, "test", nil)
	if err != nil || !repo.PlainHTTP || repo.Reference.Repository != "team/app" || cache != "/var/cache/slot-1/awssigner-content" {
		t.Fatalf("useHttp store: %+v, %q, %v", repo, cache, err)
	}
	for _, tc := range []struct {
		store map[string]any
		msg   string
	}{
		{map[string]any{"name": "memory"}, `referrer store is "memory"`},
		{map[string]any{"name": "oras", "authProvider": map[string]any{"name": "no-such-provider"}}, "authProvider cannot be created"},
		{map[string]any{"name": "oras", "useHttp": "yes"}, "store configuration cannot be read"},
	} {
		if _, _, err := openRepository(&storeconfig.StoreConfig{Store: tc.store}, subject, "test", nil); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want an error containing %q", tc.store, err, tc.msg)
		}
	}
}

func TestResolveErrorsAreCouldNotCheckWithTheirCause(t *testing.T) {
	subject := common.Reference{Original: "registry.example.com/team/app:v1"}
	denied := &errcode.ErrorResponse{Method: "HEAD", StatusCode: 401}
	for _, tc := range []struct {
		err    error
		reason verification.Reason
		msg    string
	}{
		{denied, verification.ReasonRegistryAuth, "refused the credentials"},
		{errors.New("connection refused"), verification.ReasonRegistry, "connection refused"},
	} {
		err := resolveError(context.Background(), subject, tc.err)
		var ve *verification.Error
		if !errors.As(err, &ve) || !errors.Is(err, verification.ErrUnavailable) || ve.Reason != tc.reason || !strings.Contains(ve.Msg, tc.msg) {
			t.Errorf("%v: got %+v", tc.err, ve)
		}
	}
}

func TestVerifierResultCarriesTheReport(t *testing.T) {
	err := &verification.Error{Kind: verification.KindUnavailable, Reason: verification.ReasonRegistry, Check: verification.CheckFetch, Msg: "registry down"}
	out := Outcome{Name: "verifier-awssigner", Report: verification.NewReport("sha256:0123456789abcdef0123", nil, err), Duration: 3 * time.Millisecond}.VerifierResult()
	if out.IsSuccess || out.Type != "verifier-awssigner" || !strings.Contains(out.Message, "could not be checked, so it is not trusted: registry down") {
		t.Fatalf("result %+v", out)
	}
	rep := out.Extensions.(verification.Report)
	if rep.Verdict != verification.VerdictCouldNotCheck || rep.Reason != verification.ReasonRegistry || rep.RevocationStatus != verification.RevocationNotChecked || rep.DurationMs != 3 || rep.Message != "" {
		t.Fatalf("extensions %+v", rep)
	}
}

// hangingProvider is an auth provider that answers only when its context
// ends (an AWS call that never returns).
type hangingProvider struct{}

func (hangingProvider) Enabled(context.Context) bool { return true }
func (hangingProvider) Provide(ctx context.Context, _ string) (authprovider.AuthConfig, error) {
	<-ctx.Done()
	return authprovider.AuthConfig{}, ctx.Err()
}

func TestCredentialsAreAskedUnderTheRunsDeadline(t *testing.T) {
	f := credentialFunc(hangingProvider{}, "registry.example.com/team/app:v1", NewLogger(io.Discard))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan auth.Credential, 1)
	go func() { c, _ := f(ctx, "registry.example.com"); done <- c }()
	select {
	case c := <-done:
		if c != auth.EmptyCredential {
			t.Fatalf("credential %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the auth provider was not held to the context")
	}
}
