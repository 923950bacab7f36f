// Package registryauth chooses the credential for each registry host, the
// same way for the command line and for awssigner serve: Amazon ECR hosts
// get an ecr:GetAuthorizationToken token (internal/ecrauth, the SDK's
// default credential chain: environment, IRSA, EKS Pod Identity, instance
// roles), falling back to what the Docker stores hold for the host; every
// other host gets the Docker stores' credential, anonymous when none has one.
package registryauth

import (
	"context"
	"fmt"
	"sync"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ecrauth"
)

// Options choose the Docker credential stores.
type Options struct {
	// DockerConfigFiles are Docker config.json files (for example a mounted
	// kubernetes.io/dockerconfigjson Secret), asked in order. When empty,
	// the user's Docker store is used (~/.docker/config.json or
	// $DOCKER_CONFIG, with its credential helpers).
	DockerConfigFiles []string
	// ECR supplies ECR tokens (a new ecrauth.Source when nil).
	ECR *ecrauth.Source
}

// Credential returns the credential function for oras-go's auth.Client.
// Stores are opened on first use, once.
func Credential(o Options) auth.CredentialFunc {
	ecr := o.ECR
	if ecr == nil {
		ecr = ecrauth.New(ecrauth.Options{})
	}
	return credentialFunc(ecr, dockerStores(o.DockerConfigFiles))
}

// dockerStores opens the Docker credential stores on first use.
func dockerStores(files []string) func() ([]credentials.Store, error) {
	return sync.OnceValues(func() ([]credentials.Store, error) {
		if len(files) == 0 {
			s, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
			if err != nil {
				return nil, fmt.Errorf("read the Docker credential store (~/.docker/config.json or $DOCKER_CONFIG): %w", err)
			}
			return []credentials.Store{s}, nil
		}
		stores := make([]credentials.Store, 0, len(files))
		for _, f := range files {
			s, err := credentials.NewStore(f, credentials.StoreOptions{})
			if err != nil {
				return nil, fmt.Errorf("read Docker config file %s: %w", f, err)
			}
			stores = append(stores, s)
		}
		return stores, nil
	})
}

func credentialFunc(ecr *ecrauth.Source, docker func() ([]credentials.Store, error)) auth.CredentialFunc {
	fromDocker := func(ctx context.Context, hostport string) (auth.Credential, error) {
		stores, err := docker()
		if err != nil {
			return auth.EmptyCredential, fmt.Errorf("credentials for %s: %w", hostport, err)
		}
		for _, store := range stores {
			cred, err := credentials.Credential(store)(ctx, hostport)
			if err != nil {
				return auth.EmptyCredential, fmt.Errorf("Docker credentials for %s: %w", hostport, err)
			}
			if cred != auth.EmptyCredential {
				return cred, nil
			}
		}
		return auth.EmptyCredential, nil
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
