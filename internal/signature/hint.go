package signature

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// AuthFailed reports whether err is the registry refusing the credentials
// (HTTP 401 or 403).
func AuthFailed(err error) bool {
	var resp *errcode.ErrorResponse
	return errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden)
}

// Hint says what to do about a registry error.
func Hint(err error) string {
	var resp *errcode.ErrorResponse
	switch {
	case AuthFailed(err):
		return "the registry refused the credentials: check the registry credentials (docker login, Ratify's authProvider, or AWS credentials with ecr:GetAuthorizationToken for Amazon ECR)"
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound, errors.Is(err, errdef.ErrNotFound):
		return "check the repository name, tag or digest"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the registry speaks plain HTTP: use --plain-http (command line) or useHttp (Ratify's store)"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return "check that the registry is reachable"
	}
	return "check the reference and that the registry is reachable"
}
