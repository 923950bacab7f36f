package cli

import (
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/oci"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryauth"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryhttp"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	plainHTTP bool
}

// ociOptions returns the registry access for one run: an oras-go auth
// client whose credentials come from ECR for ECR hosts and from the Docker
// credential store for every other host (internal/registryauth).
func (a *app) ociOptions(f registryFlags) oci.Options {
	client := &auth.Client{
		Client:     registryhttp.New(registryhttp.Options{}),
		Cache:      auth.NewCache(),
		Credential: registryauth.Credential(registryauth.Options{}),
	}
	client.SetUserAgent("ratify-aws-signer/" + a.version)
	return oci.Options{PlainHTTP: f.plainHTTP, Client: client}
}
