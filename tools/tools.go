//go:build tools

// Package tools pins the Go programs the tests and the demo run (Ratify,
// OPA, Helm, and later Gatekeeper, kube-apiserver), so `go build` of a
// pinned version needs only the module proxy.
package tools

import (
	_ "github.com/open-policy-agent/opa"
	_ "github.com/ratify-project/ratify/cmd/ratify"
	_ "helm.sh/helm/v3/cmd/helm"
)
