package cli

import (
	"context"
	"fmt"
	"sync"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
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
