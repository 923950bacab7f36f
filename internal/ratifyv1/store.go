package ratifyv1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/ratify-project/ratify/pkg/common"
	"github.com/ratify-project/ratify/pkg/common/oras/authprovider"
	storeconfig "github.com/ratify-project/ratify/pkg/referrerstore/config"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/redact"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/registryhttp"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/signature"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Ratify hands the plugin its ORAS referrer store, whose reads are
// unbounded (io.ReadAll of whatever the registry sends) and which returns
// manifests already parsed, so their digests cannot be checked. The plugin
// therefore reads through oras-go itself, configured exactly as Ratify's
// ORAS store is (the same store configuration: auth provider, useHttp, and
// Ratify's TLS leniency for loopback registries), so it reaches the same
// registries with the same credentials and runs the same pipeline as the
// command line.

// orasStoreConfig is the part of Ratify's ORAS store configuration that
// decides how a registry is reached.
type orasStoreConfig struct {
	Name         string                          `json:"name"`
	UseHTTP      bool                            `json:"useHttp,omitempty"`
	AuthProvider authprovider.AuthProviderConfig `json:"authProvider,omitempty"`
	// LocalCachePath is the run's private cache slot (storecache.go).
	LocalCachePath string `json:"localCachePath,omitempty"`
}

// openRepository returns the repository of subject, reached as Ratify's
// ORAS store would reach it, and the directory for the content cache ("" for
// none).
func openRepository(sc *storeconfig.StoreConfig, subject common.Reference, version string, log *Logger) (*remote.Repository, string, error) {
	var conf orasStoreConfig
	if sc != nil && sc.Store != nil {
		raw, err := json.Marshal(sc.Store)
		if err == nil {
			err = json.Unmarshal(raw, &conf)
		}
		if err != nil {
			return nil, "", fmt.Errorf("Ratify's store configuration cannot be read: %w", err)
		}
	}
	if conf.Name != "" && conf.Name != "oras" {
		return nil, "", fmt.Errorf("Ratify's referrer store is %q; the awssigner verifier reads signatures as Ratify's oras store does and needs it", conf.Name)
	}
	provider, err := authprovider.CreateAuthProviderFromConfig(conf.AuthProvider)
	if err != nil {
		return nil, "", fmt.Errorf("Ratify's store authProvider cannot be created: %w", err)
	}
	ref, err := registry.ParseReference(subject.Original)
	if err != nil {
		return nil, "", fmt.Errorf("%q is not an image reference: %w", subject.Original, err)
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, "", err
	}
	client := &auth.Client{
		Client:     httpClient(ref.Registry, conf.UseHTTP),
		Cache:      auth.NewCache(),
		Credential: credentialFunc(provider, subject.Original, log),
	}
	client.SetUserAgent("ratify-aws-signer/" + version)
	repo.Client = client
	repo.PlainHTTP = conf.UseHTTP
	cache := ""
	if filepath.IsAbs(conf.LocalCachePath) {
		cache = filepath.Join(conf.LocalCachePath, "awssigner-content")
	}
	return repo, cache, nil
}

// credentialFunc asks the auth provider once, on first need; a failure
// falls back to anonymous access, as Ratify's store does.
func credentialFunc(p authprovider.AuthProvider, artifact string, log *Logger) auth.CredentialFunc {
	var (
		mu   sync.Mutex
		done bool
		cred auth.Credential
	)
	// The provider is asked under the request's context, so a provider
	// that calls AWS (awsEcrBasic) is held to the run's deadline too.
	return func(ctx context.Context, _ string) (auth.Credential, error) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return cred, nil
		}
		done = true
		if p == nil || !p.Enabled(ctx) {
			log.Warn("Ratify's auth provider is not enabled; reading %s anonymously", artifact)
			return cred, nil
		}
		ac, err := p.Provide(ctx, artifact)
		if err != nil {
			log.Warn("Ratify's auth provider gave no credentials for %s (%s); reading anonymously", artifact, redact.Text(err.Error()))
			return cred, nil
		}
		cred = auth.Credential{Username: ac.Username, Password: ac.Password, RefreshToken: ac.IdentityToken}
		return cred, nil
	}
}

// httpClient is the product's registry client (registryhttp: retries,
// bounded redirects); like Ratify's store it does not verify TLS
// certificates of loopback registries (or of any registry with useHttp,
// where TLS is not expected).
func httpClient(host string, useHTTP bool) *http.Client {
	return registryhttp.New(registryhttp.Options{InsecureSkipVerify: useHTTP || isLoopback(host)})
}

func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// resolveError is a failure to resolve the subject: could not check.
func resolveError(ctx context.Context, subject common.Reference, err error) error {
	reason := verification.ReasonRegistry
	if signature.AuthFailed(err) {
		reason = verification.ReasonRegistryAuth
	}
	msg := fmt.Sprintf("could not resolve %s to a digest: %s; %s", subject.Original, signature.Describe(err), signature.Hint(err))
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		msg = fmt.Sprintf("could not resolve %s to a digest: the plugin's deadline passed; the registry is too slow or unreachable", subject.Original)
	}
	return &verification.Error{Kind: verification.KindUnavailable, Reason: reason, Check: verification.CheckFetch, Msg: msg, Err: err}
}
