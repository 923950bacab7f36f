package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ecrauth"
)

type fakeECR struct {
	calls int
	err   error
}

func (f *fakeECR) GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []ecrtypes.AuthorizationData{{
		AuthorizationToken: aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:ecr-token"))),
		ExpiresAt:          aws.Time(time.Now().Add(12 * time.Hour)),
	}}}, nil
}

func TestCredentialFunc(t *testing.T) {
	ctx := context.Background()
	const ecrHost = "111122223333.dkr.ecr.us-west-2.amazonaws.com"
	fake := &fakeECR{}
	src := ecrauth.New(ecrauth.Options{NewClient: func(context.Context, ecrauth.Registry) (ecrauth.API, error) { return fake, nil }})
	mem := credentials.NewMemoryStore()
	if err := mem.Put(ctx, "registry.example:5000", auth.Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	dockerCalls := 0
	cf := credentialFunc(src, func() ([]credentials.Store, error) { dockerCalls++; return []credentials.Store{mem}, nil })

	c, err := cf(ctx, ecrHost)
	if err != nil || c.Username != "AWS" || c.Password != "ecr-token" || dockerCalls != 0 {
		t.Fatalf("ECR: %+v %v docker=%d", c, err, dockerCalls)
	}
	if c, err := cf(ctx, "registry.example:5000"); err != nil || c.Username != "u" {
		t.Fatalf("docker store: %+v %v", c, err)
	}
	if c, err := cf(ctx, "other.example"); err != nil || c != auth.EmptyCredential {
		t.Fatalf("unknown host: %+v %v", c, err)
	}

	// ECR failing: the Docker store's credential for the host, else the
	// ECR error.
	fake.err = errors.New("no credentials")
	const ecrHost2 = "444455556666.dkr.ecr.eu-west-1.amazonaws.com"
	if _, err := cf(ctx, ecrHost2); err == nil || !strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
		t.Fatalf("ECR error %v", err)
	}
	if err := mem.Put(ctx, ecrHost2, auth.Credential{Username: "AWS", Password: "from-docker"}); err != nil {
		t.Fatal(err)
	}
	if c, err := cf(ctx, ecrHost2); err != nil || c.Password != "from-docker" {
		t.Fatalf("fallback: %+v %v", c, err)
	}

	broken := credentialFunc(src, func() ([]credentials.Store, error) { return nil, errors.New("bad config.json") })
	if _, err := broken(ctx, "registry.example"); err == nil || !strings.Contains(err.Error(), "bad config.json") {
		t.Fatalf("broken store: %v", err)
	}
}

// A kubernetes.io/dockerconfigjson Secret's file, then a second file: the
// first store holding a credential for the host wins.
func TestDockerConfigFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, host, user string) string {
		p := filepath.Join(dir, name)
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":pw"))
		if err := os.WriteFile(p, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.json", "registry.a:5000", "alice")
	b := write("b.json", "registry.b", "bob")
	cf := Credential(Options{DockerConfigFiles: []string{a, b}})
	ctx := context.Background()
	if c, err := cf(ctx, "registry.b"); err != nil || c.Username != "bob" {
		t.Fatalf("second file: %+v %v", c, err)
	}
	if c, err := cf(ctx, "registry.a:5000"); err != nil || c.Username != "alice" {
		t.Fatalf("first file: %+v %v", c, err)
	}
	if c, err := cf(ctx, "registry.c"); err != nil || c != auth.EmptyCredential {
		t.Fatalf("anonymous: %+v %v", c, err)
	}
}
