// Package chart tests the Helm chart charts/ratify-aws-signer offline, with
// the Helm SDK of the pinned Helm version:
//
//   - every documented example values file (and the defaults) is rendered as
//     `helm install` would render it, and every rendered object is checked
//     against the schema the API server would use: Ratify's CRDs and
//     Gatekeeper's CRDs from their pinned modules, and for Constraints the
//     CRD Gatekeeper generates from the ConstraintTemplate (match schema and
//     the template's parameters schema), fields the API server would prune
//     included;
//   - the Verifier's parameters are decoded by the plugin's own strict
//     decoder, so the chart never renders a configuration the plugin refuses;
//   - values.schema.json refuses unknown keys and bad values with a clear
//     message, `helm lint --strict` passes, and the chart's
//     ConstraintTemplate is the policy in policies/ byte for byte;
//   - mode provider (awssigner serve as Gatekeeper's provider): every object
//     checked the same way (cert-manager's and the Prometheus Operator's
//     CRDs too), Providers and Assigns through Gatekeeper's own admission
//     code, the pod against the restricted Pod Security Standard, the
//     configuration through serve's decoder, the TLS modes and what Helm's
//     lookup keeps across upgrades, and serve itself run with the rendered
//     configuration and files, called by Gatekeeper's mutation system
//     through the rendered Providers and Assigns;
//   - the Ratify base the release tool pins is the image Ratify's chart runs;
//   - Ratify's own chart, rendered with the values docs/ratify-values/
//     gives, runs what this project relies on, and the documentation
//     (values reference, examples, IAM documents) matches the chart.
//
// The module is separate from the root module so that Helm and Gatekeeper
// stay out of the plugin's dependency graph.
package chart
