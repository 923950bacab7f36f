package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/registry"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
)

// Names the generated documents use.
const (
	policyName           = "aws-signer"
	verifierName         = "awssigner"
	verifierManifestName = "verifier-awssigner"
	ratifyAPIVersion     = "config.ratify.deislabs.io/v1beta1"
	ratifyAPIGroup       = "config.ratify.deislabs.io/"
	signatureArtifact    = "application/vnd.cncf.notary.signature"
)

// Output formats of policy init.
const (
	formatTrustPolicy = "trustpolicy"
	formatConfig      = "config"
	formatVerifier    = "verifier"
	formatValues      = "values"
)

// policySpec is what the quick flags say about the trust policy.
type policySpec struct {
	profiles       []string
	level          string
	scopes         []string
	skipRevocation bool
}

// levels the command line builds policies for (skip verifies nothing).
var cliLevels = []string{"strict", "permissive", "audit"}

// document validates the spec and builds the Notation trust policy document:
// one statement trusting the profiles, with the embedded AWS Signer root
// (and the GovCloud root when a profile is in aws-us-gov). Errors name the
// flag.
func (p policySpec) document(profileFlag string) (*trustpolicy.Document, error) {
	if len(p.profiles) == 0 {
		return nil, fmt.Errorf("no trusted signing profile: give %s arn:aws:signer:<region>:<account>:/signing-profiles/<name> (repeatable)", profileFlag)
	}
	levelOK := false
	for _, l := range cliLevels {
		levelOK = levelOK || p.level == l
	}
	if !levelOK {
		return nil, fmt.Errorf("--level %q is not a verification level (want %s)", p.level, strings.Join(cliLevels, ", "))
	}
	stores := []string{"signingAuthority:" + truststore.AWSSignerStore}
	gov := false
	seen := map[string]bool{}
	var ids []string
	for _, s := range p.profiles {
		arn, err := awssigner.ParseProfileARN(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", profileFlag, err)
		}
		if arn.Partition == "aws-us-gov" {
			gov = true
		}
		id := arn.String()
		if !seen[strings.ToLower(id)] {
			seen[strings.ToLower(id)] = true
			ids = append(ids, id)
		}
	}
	if gov {
		stores = append(stores, "signingAuthority:"+truststore.AWSUSGovSignerStore)
	}
	scopes := p.scopes
	if len(scopes) == 0 {
		scopes = []string{"*"}
	}
	for _, s := range scopes {
		if s == "*" {
			if len(scopes) > 1 {
				return nil, fmt.Errorf("--registry-scope \"*\" covers every repository and cannot be combined with other scopes")
			}
			continue
		}
		ref, err := registry.ParseReference(s)
		if err != nil || ref.Reference != "" || strings.Contains(s, "@") {
			return nil, fmt.Errorf("--registry-scope %q is not a repository (want <registry>/<repository>, such as 111122223333.dkr.ecr.us-west-2.amazonaws.com/app, without tag or digest, or \"*\")", s)
		}
	}
	sv := trustpolicy.SignatureVerification{VerificationLevel: p.level}
	if p.skipRevocation {
		sv.Override = map[trustpolicy.ValidationType]trustpolicy.ValidationAction{trustpolicy.TypeRevocation: trustpolicy.ActionSkip}
	}
	return &trustpolicy.Document{
		Version: "1.0",
		TrustPolicies: []trustpolicy.TrustPolicy{{
			Name:                  policyName,
			RegistryScopes:        scopes,
			SignatureVerification: sv,
			TrustStores:           stores,
			TrustedIdentities:     ids,
		}},
	}, nil
}

// pluginConfig is the verifier configuration as policy init prints it (only
// the keys it sets; config.Config would print empty sections).
type pluginConfig struct {
	TrustPolicyDoc *trustpolicy.Document `json:"trustPolicyDoc"`
}

// verifierManifest is a Ratify v1 Verifier resource.
type verifierManifest struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       verifierSpec   `json:"spec"`
}

type verifierSpec struct {
	Name          string       `json:"name"`
	ArtifactTypes string       `json:"artifactTypes"`
	Parameters    pluginConfig `json:"parameters"`
}

// chartValues are values of the ratify-aws-signer Helm chart.
type chartValues struct {
	TrustedSigningProfiles []string         `json:"trustedSigningProfiles"`
	VerificationLevel      string           `json:"verificationLevel"`
	RegistryScopes         []string         `json:"registryScopes,omitempty"`
	Revocation             *chartRevocation `json:"revocation,omitempty"`
}

// chartRevocation is the chart's revocation switch.
type chartRevocation struct {
	Enabled bool `json:"enabled"`
}

// render builds the document of the given format; the returned bytes end in
// a newline.
func renderPolicy(p policySpec, format string) ([]byte, error) {
	doc, err := p.document("--profile-arn")
	if err != nil {
		return nil, err
	}
	cfg := pluginConfig{TrustPolicyDoc: doc}
	// The document must be one the verifier takes: decode it as the plugin
	// and the verify command would.
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := config.DecodeJSON(raw); err != nil {
		return nil, fmt.Errorf("the generated configuration is not valid: %w", err)
	}
	var out []byte
	switch format {
	case formatTrustPolicy:
		out, err = json.MarshalIndent(doc, "", "  ")
	case formatConfig:
		out, err = json.MarshalIndent(cfg, "", "  ")
	case formatVerifier:
		out, err = yaml.Marshal(verifierManifest{
			APIVersion: ratifyAPIVersion,
			Kind:       "Verifier",
			Metadata:   map[string]any{"name": verifierManifestName},
			Spec:       verifierSpec{Name: verifierName, ArtifactTypes: signatureArtifact, Parameters: cfg},
		})
	case formatValues:
		v := chartValues{TrustedSigningProfiles: doc.TrustPolicies[0].TrustedIdentities, VerificationLevel: p.level}
		if p.skipRevocation {
			v.Revocation = &chartRevocation{Enabled: false}
		}
		if s := doc.TrustPolicies[0].RegistryScopes; len(s) != 1 || s[0] != "*" {
			v.RegistryScopes = s
		}
		out, err = yaml.Marshal(v)
	default:
		return nil, fmt.Errorf("--format %q is not a format (want %s, %s, %s or %s)", format, formatTrustPolicy, formatConfig, formatVerifier, formatValues)
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out, nil
}

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Write trust policies and verifier configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usageErr(cmd, "no command given")
		},
	}
	cmd.AddCommand(a.policyInitCommand(), a.policyCheckCommand())
	return cmd
}

func (a *app) policyInitCommand() *cobra.Command {
	var p policySpec
	var format string
	cmd := &cobra.Command{
		Use:   "init --profile-arn ARN... [--format trustpolicy|config|verifier|values]",
		Short: "Print a trust policy, verifier configuration, Ratify Verifier or Helm values trusting signing profiles",
		Long: strings.TrimSpace(`
Print a ready document trusting the given AWS Signer signing profiles:

  config       the verifier configuration (JSON) that "awssigner verify --config"
               and the Ratify plugin take (default)
  trustpolicy  the Notation trust policy document (JSON), the value of the
               configuration's trustPolicyDoc
  verifier     a Ratify Verifier resource (YAML) whose spec.parameters is the
               configuration
  values       Helm values for the awssigner chart (YAML)

The policy has one statement: the given registry scopes ("*" by default),
the embedded AWS Signer root (signingAuthority:aws-signer-ts, plus
aws-us-gov-signer-ts for GovCloud profiles) and the profiles as trusted
identities. A profile ARN trusts every version of the profile; a
profile-version ARN exactly that version.`),
		Example: `  awssigner policy init --profile-arn arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod
  awssigner policy init --profile-arn arn:aws:signer:us-west-2:111122223333:/signing-profiles/Prod --format verifier | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := renderPolicy(p, format)
			if err != nil {
				return usageErr(cmd, "%v", err)
			}
			// The document is the output, whatever --output says: it is
			// already JSON or YAML.
			_, err = a.stdout.Write(out)
			a.jsonPrinted = true
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&p.profiles, "profile-arn", nil, "signing-profile ARN (or profile-version ARN) to trust; repeatable")
	f.StringVar(&format, "format", formatConfig, "document to print: trustpolicy, config, verifier or values")
	f.StringVar(&p.level, "level", "strict", "verification level: strict, permissive or audit")
	f.StringArrayVar(&p.scopes, "registry-scope", nil, `repository the policy applies to, <registry>/<repository>; repeatable (default "*", every repository)`)
	f.BoolVar(&p.skipRevocation, "skip-revocation", false, "do not ask AWS Signer for revocation (override revocation: skip)")
	return cmd
}
