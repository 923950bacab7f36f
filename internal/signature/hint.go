package signature

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/redact"
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

// Describe renders a registry error for a message. A registry's own error
// text is not repeated: a hostile registry can echo the credentials it was
// sent, so an error response becomes its method, URL (without query or
// user information), status and error codes; any other error is passed
// through redact.Text.
func Describe(err error) string {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		u := "(unknown URL)"
		if resp.URL != nil {
			c := *resp.URL
			c.User, c.RawQuery, c.Fragment = nil, "", ""
			u = c.String()
		}
		s := fmt.Sprintf("%s %s: %d %s", resp.Method, redact.Text(u), resp.StatusCode, http.StatusText(resp.StatusCode))
		var codes []string
		for _, e := range resp.Errors {
			if errorCode.MatchString(e.Code) {
				codes = append(codes, e.Code)
			}
		}
		if len(codes) > 0 {
			s += " (" + strings.Join(codes, ", ") + ")"
		}
		return s
	}
	return redact.Text(err.Error())
}

// errorCode is the shape of a distribution error code (MANIFEST_UNKNOWN).
var errorCode = regexp.MustCompile(`^[A-Z][A-Z_]{0,63}$`)
