//go:build tools

// Package kube pins kube-apiserver for the end-to-end test (test/e2e).
// It is its own module because k8s.io/kubernetes needs a replace for
// every staging module, which must not leak into the other tools.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
