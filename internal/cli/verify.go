package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/verification"
)

// Verdicts, for an image and for each signature.
const (
	verdictVerified      = verification.VerdictVerified
	verdictRefused       = verification.VerdictRefused
	verdictCouldNotCheck = verification.VerdictCouldNotCheck
)

type verifyFlags struct {
	registry   registryFlags
	configFile string
	policy     policySpec
	overrides  overrides
	timeout    time.Duration
}

// verifyReport is what verify found, as printed with --output json.
type verifyReport struct {
	Image     string `json:"image"`
	Reference string `json:"reference"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	Verdict   string `json:"verdict"`
	Verified  bool   `json:"verified"`
	Message   string `json:"message"`
	// Signatures holds one entry per Notation signature, in listing order.
	Signatures []verification.Report `json:"signatures"`
	// NotChecked counts signatures beyond the limit that were not read.
	NotChecked int `json:"notChecked,omitempty"`
}

func (a *app) verifyCommand() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify <image> (--trusted-profile ARN... | --config FILE)",
		Short: "Verify an image's AWS Signer signatures",
		Long: strings.TrimSpace(`
Verify the AWS Signer Notation signatures of an image: resolve a tag to its
digest, list the image's Notation signatures (OCI referrers API, with the
referrers tag schema as fallback), and verify each with the same core as the
Ratify plugin: signature integrity, chain to the AWS Signer root, trusted
signing profile, expiry, and revocation through AWS Signer
GetRevocationStatus.

The trust policy comes from --config FILE, which takes the plugin's
configuration (JSON or YAML, as "awssigner policy init" writes it), a Ratify
Verifier resource (its spec.parameters) or a Ratify config.json; or, without
--config, from --trusted-profile and --level (one statement for every
repository, the embedded AWS Signer roots). --trust-store-pem, --aws-* and
--revocation-timeout apply to either. Revocation answers are not kept
between runs.

The image is verified when at least one signature verifies (exit 0). Else it
is refused (exit 1) when every signature was refused or there is none, and
could not be checked (exit 2) when a signature could not be checked.`),
		Example: `  awssigner verify 111122223333.dkr.ecr.us-west-2.amazonaws.com/app:v1 \
      --trusted-profile arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod
  awssigner verify 111122223333.dkr.ecr.us-west-2.amazonaws.com/app@sha256:… --config verifier.yaml -o json`,
		Args: exactArgs(1, "one image reference"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runVerify(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "verifier configuration file: plugin configuration (JSON/YAML), Ratify Verifier resource or Ratify config.json")
	fl.StringArrayVar(&f.policy.profiles, "trusted-profile", nil, "signing-profile ARN (or profile-version ARN) to trust, without --config; repeatable")
	fl.StringVar(&f.policy.level, "level", "strict", "verification level without --config: strict, permissive or audit")
	fl.StringArrayVar(&f.overrides.trustStorePEM, "trust-store-pem", nil, "PEM file of root certificates replacing the embedded AWS Signer root (trust store signingAuthority:aws-signer-ts); repeatable")
	fl.StringVar(&f.overrides.awsEndpoint, "aws-endpoint", "", "AWS Signer endpoint URL (default: SDK resolution, AWS_ENDPOINT_URL_SIGNER)")
	fl.StringVar(&f.overrides.awsRegion, "aws-region", "", "AWS region for GetRevocationStatus (default: the region of the signature's profile)")
	fl.DurationVar(&f.overrides.revocationTimeout, "revocation-timeout", 0, "budget of one revocation check, retries included (default 2s, or the configuration's)")
	fl.BoolVar(&f.registry.plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to the registry (local registries)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "time limit for the whole command (0: none)")
	return cmd
}

// verifierConfig builds the configuration from --config or the quick flags.
func (f *verifyFlags) verifierConfig(cmd *cobra.Command) (*config.Config, error) {
	var cfg *config.Document
	if f.configFile != "" {
		for _, name := range []string{"trusted-profile", "level"} {
			if cmd.Flags().Changed(name) {
				return nil, usageErr(cmd, "--%s builds a trust policy only without --config; with --config, set it in the file's trustPolicyDoc", name)
			}
		}
		var err error
		if cfg, err = loadConfig(f.configFile); err != nil {
			return nil, failErr("%v", err)
		}
	} else {
		if len(f.policy.profiles) == 0 {
			return nil, usageErr(cmd, "no trust policy: give --trusted-profile arn:aws:signer:<region>:<account>:/signing-profiles/<name> or --config FILE")
		}
		doc, err := f.policy.document("--trusted-profile")
		if err != nil {
			return nil, usageErr(cmd, "%v", err)
		}
		cfg = &config.Document{TrustPolicyDoc: doc}
	}
	resolved, err := f.overrides.apply(cfg)
	if err != nil {
		return nil, usageErr(cmd, "%v", err)
	}
	for _, w := range resolved.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "Warning: %s\n", w)
	}
	return resolved, nil
}

func (a *app) runVerify(cmd *cobra.Command, reference string, f *verifyFlags) error {
	cfg, err := f.verifierConfig(cmd)
	if err != nil {
		return err
	}
	// In memory, for this run only: a revocation shows up at once.
	v, err := compose.Verifier(cfg, compose.Options{Cache: compose.MemoryCache, Version: a.version})
	if err != nil {
		return failErr("build the verifier: %v", err)
	}
	ctx := cmd.Context()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	s, err := a.readSubject(ctx, cmd, reference, f.registry)
	if err != nil {
		return err
	}
	rep := &verifyReport{Image: reference, Reference: s.Reference(), MediaType: s.Desc.MediaType, Size: s.Desc.Size, Signatures: []verification.Report{}, NotChecked: s.Skipped}
	subject := verification.Subject{Repository: s.Image.Repository(), Descriptor: s.Desc}
	for _, d := range s.Signatures {
		res, err := v.VerifyReferrer(ctx, s.Image.Repo, subject, d)
		rep.Signatures = append(rep.Signatures, verification.NewReport(d.Digest.String(), res, err))
	}
	rep.conclude()
	if a.json() {
		a.printJSON(rep)
	} else {
		rep.print(a.stdout)
	}
	switch rep.Verdict {
	case verdictVerified:
		return nil
	case verdictRefused:
		return &exitError{code: ExitRefused, err: errors.New(rep.Message), silent: true}
	}
	return &exitError{code: ExitFailed, err: errors.New(rep.Message), silent: true}
}

// conclude sets the image's verdict: verified when one signature verified;
// else could not check when one could not be checked; else refused.
func (r *verifyReport) conclude() {
	var verified, refused, unchecked int
	for _, s := range r.Signatures {
		switch s.Verdict {
		case verdictVerified:
			verified++
		case verdictRefused:
			refused++
		default:
			unchecked++
		}
	}
	n := len(r.Signatures)
	switch {
	case n == 0:
		r.Verdict = verdictRefused
		r.Message = fmt.Sprintf("no Notation signature found for %s: the image is not signed (or its signatures are in another repository); sign it with AWS Signer (awssigner sign %s --profile-arn ARN)", r.Reference, r.Image)
	case verified > 0:
		r.Verdict, r.Verified = verdictVerified, true
		r.Message = fmt.Sprintf("%s is verified: %d of %d signature(s) verified", r.Reference, verified, n)
	case unchecked > 0:
		r.Verdict = verdictCouldNotCheck
		r.Message = fmt.Sprintf("%s could not be verified: no signature verified, %d could not be checked and %d were refused; fix the cause above and try again", r.Reference, unchecked, refused)
	default:
		r.Verdict = verdictRefused
		r.Message = fmt.Sprintf("%s is refused: all %d signature(s) were refused", r.Reference, n)
	}
}

// print writes the report for people.
func (r *verifyReport) print(w io.Writer) {
	fmt.Fprintf(w, "Image %s\n", r.Image)
	fmt.Fprintf(w, "  resolved to %s (%s)\n", r.Reference, r.MediaType)
	switch n := len(r.Signatures); n {
	case 0:
		fmt.Fprintln(w, "  no Notation signature")
	default:
		fmt.Fprintf(w, "  %d Notation signature(s)\n", n)
	}
	if r.NotChecked > 0 {
		fmt.Fprintf(w, "  %d more signature(s) not checked (limit %d)\n", r.NotChecked, maxSignatures)
	}
	for _, s := range r.Signatures {
		fmt.Fprintln(w)
		printSignature(w, s)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s: %s\n", verdictWord(r.Verdict), r.Message)
}

func verdictWord(v string) string {
	switch v {
	case verdictVerified:
		return "VERIFIED"
	case verdictRefused:
		return "REFUSED"
	}
	return "COULD NOT CHECK"
}

func printSignature(w io.Writer, s verification.Report) {
	head := verdictWord(s.Verdict)
	if s.Reason != "" {
		head += " (" + string(s.Reason) + ")"
	}
	fmt.Fprintf(w, "Signature %s: %s\n", s.SignatureDigest, head)
	kv := newKV(w, "  ")
	if res := s.Result; res != nil {
		profile := res.SigningProfileVersionARN
		if profile != "" && res.MatchedIdentity != "" {
			profile += " (trusted as " + res.MatchedIdentity + ")"
		}
		kv.line("signing profile", profile)
		kv.line("signing job", res.SigningJobARN)
		kv.line("signed", formatTime(res.SigningTime))
		kv.line("expires", formatTime(res.Expiry))
		kv.line("revocation", revocationText(res))
		if res.Level != "" {
			kv.line("trust policy", fmt.Sprintf("%q, level %s", res.Policy, res.Level))
		}
		for _, warn := range res.Warnings {
			kv.line("warning", warn)
		}
	}
	if s.Verdict != verdictVerified {
		kv.line("reason", s.Message)
	}
}

func revocationText(r *verification.Result) string {
	var b strings.Builder
	switch r.RevocationStatus {
	case verification.RevocationNotRevoked:
		b.WriteString("not revoked")
	case verification.RevocationRevoked:
		b.WriteString("REVOKED")
		if len(r.RevokedEntities) > 0 {
			b.WriteString(": " + strings.Join(r.RevokedEntities, ", "))
		}
	case verification.RevocationSkipped:
		b.WriteString("not checked (skipped by the trust policy)")
	case verification.RevocationUnavailable:
		b.WriteString("unknown: AWS Signer gave no answer")
	default:
		b.WriteString("not checked (an earlier check failed)")
	}
	if r.RevocationRegion != "" {
		fmt.Fprintf(&b, " (AWS Signer in %s", r.RevocationRegion)
		if r.RevocationCached {
			b.WriteString(", cached")
		} else if r.RevocationDuration > 0 {
			fmt.Fprintf(&b, ", %s", r.RevocationDuration.Round(time.Millisecond))
		}
		b.WriteString(")")
	}
	return b.String()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// kv writes aligned "key  value" lines, skipping empty values.
type kv struct {
	w      io.Writer
	indent string
}

func newKV(w io.Writer, indent string) kv { return kv{w: w, indent: indent} }

func (k kv) line(key, value string) {
	if value == "" {
		return
	}
	fmt.Fprintf(k.w, "%s%-16s %s\n", k.indent, key, value)
}
