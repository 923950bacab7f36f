//go:build tools

// Package tools pins the Go programs the tests and the demo run (Ratify,
// and later OPA, Helm, Gatekeeper, kube-apiserver), so `go build` of a
// pinned version needs only the module proxy.
package tools

import (
	_ "github.com/open-policy-agent/opa"
	_ "github.com/ratify-project/ratify/cmd/ratify"
)
