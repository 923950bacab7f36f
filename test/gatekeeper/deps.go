// Package gatekeeper evaluates this repository's ConstraintTemplates with
// Gatekeeper's own engine (the frameworks constraint client and Gatekeeper's
// Kubernetes validation target) against a real `ratify serve` running the
// awssigner plugin (Ratify v1's answers) and against the real `awssigner
// serve` (Ratify v2's answer shape, Provider awssigner-serve). It is a
// separate module so Gatekeeper's dependency tree stays out of the
// product's.
package gatekeeper

import (
	_ "github.com/open-policy-agent/frameworks/constraint/pkg/client"
	_ "github.com/open-policy-agent/gatekeeper/v3/pkg/target"
)
