// Package registryhttp is the HTTP client every registry request of the
// product goes through (the Ratify plugin, the command line and awssigner
// serve): oras-go's retry policy and at most MaxRedirects redirects.
// oras-go's auth.Client replaces net/http's default redirect policy, so
// without one of ours a registry redirecting in a loop is followed until
// the caller's deadline (the hostile suite counted 65,000 requests and
// 200 MiB resident in 10 s).
package registryhttp

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"oras.land/oras-go/v2/registry/remote/retry"
)

// MaxRedirects bounds the redirects of one registry request (a registry
// sends a blob read to its storage once).
const MaxRedirects = 5

// Options tune the client.
type Options struct {
	// InsecureSkipVerify does not verify the registry's TLS certificate
	// (Ratify's behaviour for loopback registries and useHttp stores).
	InsecureSkipVerify bool
	// MaxIdleConnsPerHost keeps connections for many requests to one
	// registry (http.DefaultTransport's when 0).
	MaxIdleConnsPerHost int
}

// New returns a client with oras-go's retry policy and bounded redirects.
func New(o Options) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if o.InsecureSkipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the caller's explicit choice
	}
	if o.MaxIdleConnsPerHost > 0 {
		t.MaxIdleConnsPerHost = o.MaxIdleConnsPerHost
	}
	return &http.Client{Transport: retry.NewTransport(t), CheckRedirect: checkRedirect}
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("stopped after %d redirects (the next to %s); a registry redirects a request once", MaxRedirects, req.URL.Redacted())
	}
	return nil
}
