package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ecrauth"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/oci"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	plainHTTP bool
}

// ociOptions returns the registry access for one run: an oras-go auth
// client whose credentials come from ECR for ECR hosts and from the Docker
// credential store for every other host.
func (a *app) ociOptions(f registryFlags) oci.Options {
	client := &auth.Client{
		Client:     retry.DefaultClient,
		Cache:      auth.NewCache(),
		Credential: credentialFunc(ecrauth.New(ecrauth.Options{}), dockerStore()),
	}
	client.SetUserAgent("ratify-aws-signer/" + a.version)
	return oci.Options{PlainHTTP: f.plainHTTP, Client: client}
}

// dockerStore opens the Docker credential store (~/.docker/config.json or
// $DOCKER_CONFIG, with its credential helpers) on first use.
func dockerStore() func() (credentials.Store, error) {
	return sync.OnceValues(func() (credentials.Store, error) {
		s, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// credentialFunc chooses the credential source per registry host: ECR
// hosts get an ecr:GetAuthorizationToken token (or, when that fails, what
// the Docker store holds for the host, e.g. after `docker login`); every
// other host gets the Docker store's credential, anonymous when it has none.
func credentialFunc(ecr *ecrauth.Source, docker func() (credentials.Store, error)) auth.CredentialFunc {
	fromDocker := func(ctx context.Context, hostport string) (auth.Credential, error) {
		store, err := docker()
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("read the Docker credential store for %s (~/.docker/config.json or $DOCKER_CONFIG): %w", hostport, err)
		}
		cred, err := credentials.Credential(store)(ctx, hostport)
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("Docker credentials for %s: %w", hostport, err)
		}
		return cred, nil
	}
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		if !ecrauth.IsECRHost(hostport) {
			return fromDocker(ctx, hostport)
		}
		cred, err := ecr.Credential(ctx, hostport)
		if err == nil {
			return cred, nil
		}
		if alt, derr := fromDocker(ctx, hostport); derr == nil && alt != auth.EmptyCredential {
			return alt, nil
		}
		return auth.EmptyCredential, err
	}
}

// registryUnavailable reports whether err is a failure to reach or read the
// registry (as opposed to content that is wrong).
func registryUnavailable(err error) bool {
	var resp *errcode.ErrorResponse
	var netErr net.Error
	var urlErr *url.Error
	return errors.As(err, &resp) || errors.As(err, &netErr) || errors.As(err, &urlErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, errdef.ErrNotFound)
}

// registryHint says what to do about a registry failure.
func registryHint(err error) string {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.StatusCode {
		case 401, 403:
			return "check your registry credentials (docker login, or AWS credentials with ecr:GetAuthorizationToken for Amazon ECR)"
		case 404:
			return "check the repository name, tag or digest"
		}
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return "the registry speaks plain HTTP: add --plain-http"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return "check that the registry is reachable (and give --plain-http for a registry without TLS)"
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return "check the repository name, tag or digest"
	}
	return "check the reference and that the registry is reachable"
}
