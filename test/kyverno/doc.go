// Package kyverno evaluates this repository's Kyverno ClusterPolicy
// (policies/kyverno) with Kyverno's own admission code: its engine, built
// as the admission controller builds it (cmd/kyverno's internal.NewEngine:
// the default context loader with the API-call configuration), its
// mutating and validating webhook handlers, and its policy validation.
// The policy's apiCall is a real HTTPS request to the real `awssigner
// serve` (test/serve), which verifies against the test registry and the
// AWS Signer emulator. It is a separate module so Kyverno's dependency
// tree stays out of the product's.
package kyverno
