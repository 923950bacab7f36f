package cli

import (
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/server"
)

// serveCommand runs awssigner serve: Gatekeeper's external-data provider
// and Kyverno's endpoint (internal/server).
func (a *app) serveCommand() *cobra.Command {
	var configFile, logLevel string
	cmd := &cobra.Command{
		Use:   "serve --config <file>",
		Short: "Serve AWS Signer verification to Gatekeeper (external-data provider, Ratify v2 endpoints) and Kyverno (apiCall)",
		Long: strings.TrimSpace(`
serve answers admission controllers with one verification pipeline, its
caches and its concurrency bound:

Gatekeeper (server.address, on unless server.gatekeeper.enabled is false): an
external-data provider built on Ratify v2's library (ratify-go): POST
/ratify/gatekeeper/v2/verify answers each image with Ratify v2's result shape,
/ratify/gatekeeper/v2/mutate with the verified image's digest. HTTPS with TLS
1.3; only client certificates issued by server.tls.clientCAFile (Gatekeeper's
CA) are served.

Kyverno (server.kyverno.address, when server.kyverno.enabled): POST
/checkimages takes an apiCall with kyverno-notation-aws's data (images,
imageReferences, trustPolicy, a trustPolicyDocs name; skipImageReferences
exempts images) and answers
{"verified", "message", "results"}, the results JSON patches pinning each
verified image to its digest; a refusal is HTTP 406 with one line per image.
HTTPS with TLS 1.2 or later and the same certificate; callers are Kyverno's
service accounts (server.kyverno.allowedCallers), their bearer tokens checked
with a TokenReview.

/healthz, /readyz and /metrics on server.healthAddress (plain HTTP).

The configuration is the plugin's document (trustPolicyDoc, trustStores,
revocation, aws) plus trustPolicyDocs and a server section; it and the TLS
files are reloaded when they change, and a bad configuration is refused with
the last good one kept. SIGTERM drains in-flight requests. Logs are JSON lines
on stderr.`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return usageErr(cmd, "--config is required")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr(cmd, "--log-level %q is not a level (debug, info, warn, error)", logLevel)
			}
			log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			if err := server.Run(cmd.Context(), server.Options{ConfigFile: configFile, Version: a.version, Logger: log}); err != nil {
				return failErr("serve: %v", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "configuration file (JSON or YAML): the verifier's document plus a server section")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
