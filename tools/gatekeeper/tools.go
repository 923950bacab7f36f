//go:build tools

// Package gatekeeper pins the Gatekeeper manager (the module root of
// github.com/open-policy-agent/gatekeeper/v3) for the end-to-end test
// (test/e2e). It is its own module: in tools/ it would upgrade
// frameworks/constraint, cert-controller and cel-go under Ratify.
package gatekeeper

import (
	_ "github.com/open-policy-agent/gatekeeper/v3"
)
