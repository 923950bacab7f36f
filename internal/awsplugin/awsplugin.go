// Package awsplugin is an in-process Notation verification plugin with the
// semantics of AWS Signer's (com.amazonaws.signer.notation.plugin): the
// trusted-identity check on the signed signing-profile-version attribute and
// the revocation check through GetRevocationStatus. notation-go calls it
// through Manager instead of executing a plugin binary.
package awsplugin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/notaryproject/notation-plugin-framework-go/plugin"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/revocation"
)

// DefaultVersion is the version reported to notation (strict SemVer).
const DefaultVersion = "1.0.0"

// ConfigSkipRevocationOnUntrusted is a plugin-config key: when "true", an
// identity mismatch that the caller enforces makes the revocation call
// pointless, so it is not made. The outcome is the same; AWS is spared.
const ConfigSkipRevocationOnUntrusted = "skipRevocationOnUntrustedIdentity"

// Plugin implements notation's plugin interface in-process.
type Plugin struct {
	// Version reported by GetMetadata; DefaultVersion when empty.
	Version string
	// Revocation answers REVOCATION_CHECK.
	Revocation revocation.Checker
}

// Manager hands notation-go the in-process plugin under its AWS name.
type Manager struct {
	Plugin *Plugin
}

// Get implements notation-go's plugin.Manager.
func (m Manager) Get(_ context.Context, name string) (plugin.Plugin, error) {
	if name != awssigner.PluginName {
		return nil, plugin.NewGenericErrorf("verification plugin %q is not available: this verifier only has %q (the signature is not an AWS Signer signature)", name, awssigner.PluginName)
	}
	return m.Plugin, nil
}

// List implements notation-go's plugin.Manager.
func (m Manager) List(context.Context) ([]string, error) { return []string{awssigner.PluginName}, nil }

// GetMetadata implements plugin.GenericPlugin.
func (p *Plugin) GetMetadata(context.Context, *plugin.GetMetadataRequest) (*plugin.GetMetadataResponse, error) {
	v := p.Version
	if v == "" {
		v = DefaultVersion
	}
	return &plugin.GetMetadataResponse{
		Name:                      awssigner.PluginName,
		Description:               "AWS Signer verification, in-process (ratify-aws-signer)",
		Version:                   v,
		URL:                       "https://docs.aws.amazon.com/signer",
		SupportedContractVersions: []string{plugin.ContractVersion},
		Capabilities:              []plugin.Capability{plugin.CapabilityTrustedIdentityVerifier, plugin.CapabilityRevocationCheckVerifier},
	}, nil
}

// DescribeKey is not supported: this plugin only verifies.
func (p *Plugin) DescribeKey(context.Context, *plugin.DescribeKeyRequest) (*plugin.DescribeKeyResponse, error) {
	return nil, plugin.NewUnsupportedError("DescribeKey")
}

// GenerateSignature is not supported: this plugin only verifies.
func (p *Plugin) GenerateSignature(context.Context, *plugin.GenerateSignatureRequest) (*plugin.GenerateSignatureResponse, error) {
	return nil, plugin.NewUnsupportedError("GenerateSignature")
}

// GenerateEnvelope is not supported: this plugin only verifies.
func (p *Plugin) GenerateEnvelope(context.Context, *plugin.GenerateEnvelopeRequest) (*plugin.GenerateEnvelopeResponse, error) {
	return nil, plugin.NewUnsupportedError("GenerateEnvelope")
}

// VerifySignature implements plugin.VerifyPlugin with AWS Signer's rules.
// Request problems are *plugin.Error (a hard failure at every level); check
// outcomes, AWS errors included, are results for the level to weigh.
func (p *Plugin) VerifySignature(ctx context.Context, req *plugin.VerifySignatureRequest) (*plugin.VerifySignatureResponse, error) {
	rec := recordFrom(ctx)
	rec.Invoked = true
	if err := validate(req); err != nil {
		rec.PluginError = err
		return nil, err
	}
	attrs := req.Signature.CriticalAttributes.ExtendedAttributes
	rec.ProfileVersionARN, _ = attrs[awssigner.AttrProfileVersion].(string)
	rec.JobARN, _ = attrs[awssigner.AttrSigningJob].(string)

	results := map[plugin.Capability]*plugin.VerificationResult{}
	identityFailed := false
	for _, c := range req.TrustPolicy.SignatureVerification {
		if c != plugin.CapabilityTrustedIdentityVerifier {
			continue
		}
		sig, ok := attrs[awssigner.AttrProfileVersion].(string)
		if !ok {
			err := plugin.NewValidationErrorf("unable to parse attribute %q.", awssigner.AttrProfileVersion)
			rec.PluginError = err
			return nil, err
		}
		rec.Identity.Checked = true
		if matched, ok := awssigner.MatchIdentity(sig, req.TrustPolicy.TrustedIdentities); ok {
			rec.Identity.Matched = matched
			results[c] = &plugin.VerificationResult{Success: true, Reason: "Signature publisher matched \"" + matched + "\" trusted identity."}
		} else {
			identityFailed = true
			results[c] = &plugin.VerificationResult{Success: false, Reason: "Signature publisher doesn't match any trusted identities."}
		}
	}
	for _, c := range req.TrustPolicy.SignatureVerification {
		if c != plugin.CapabilityRevocationCheckVerifier {
			continue
		}
		if identityFailed && req.PluginConfig[ConfigSkipRevocationOnUntrusted] == "true" {
			results[c] = &plugin.VerificationResult{Success: false, Reason: "not checked: the signature publisher is not trusted"}
			continue
		}
		r, err := p.checkRevocation(ctx, req, rec)
		if err != nil {
			rec.PluginError = err
			return nil, err
		}
		results[c] = r
	}
	return &plugin.VerifySignatureResponse{
		VerificationResults: results,
		ProcessedAttributes: []interface{}{awssigner.AttrProfileVersion, awssigner.AttrSigningJob},
	}, nil
}

func (p *Plugin) checkRevocation(ctx context.Context, req *plugin.VerifySignatureRequest, rec *Record) (*plugin.VerificationResult, error) {
	attrs := req.Signature.CriticalAttributes.ExtendedAttributes
	profileVersion, ok := attrs[awssigner.AttrProfileVersion].(string)
	if !ok {
		return nil, plugin.NewValidationErrorf("unable to parse attribute %q.", awssigner.AttrProfileVersion)
	}
	job, ok := attrs[awssigner.AttrSigningJob].(string)
	if !ok {
		return nil, plugin.NewValidationErrorf("unable to parse attribute %q.", awssigner.AttrSigningJob)
	}
	hashes, err := revocation.CertificateHashes(req.Signature.CertificateChain)
	if err != nil {
		return nil, plugin.NewValidationError("unable to parse certificates in certificate chain.")
	}
	rec.Revocation.Checked = true
	start := time.Now()
	var answer revocation.Answer
	if p.Revocation == nil {
		err = &revocation.UnavailableError{Err: errNoChecker}
	} else {
		answer, err = p.Revocation.Check(ctx, revocation.Request{
			ProfileVersionARN: profileVersion,
			JobARN:            job,
			SigningTime:       *req.Signature.CriticalAttributes.AuthenticSigningTime,
			CertificateHashes: hashes,
		})
	}
	rec.Revocation.Duration = time.Since(start)
	var unavailable *revocation.UnavailableError
	if errors.As(err, &unavailable) {
		answer.Region = unavailable.Region
	}
	rec.Revocation.Answer, rec.Revocation.Err = answer, err
	switch {
	case err != nil:
		return &plugin.VerificationResult{Success: false, Reason: "GetRevocationStatus call failed with error: " + err.Error()}, nil
	case answer.IsRevoked():
		return &plugin.VerificationResult{Success: false, Reason: answer.Reason()}, nil
	default:
		return &plugin.VerificationResult{Success: true, Reason: answer.Reason()}, nil
	}
}

type constError string

func (e constError) Error() string { return string(e) }

const errNoChecker = constError("no revocation checker is configured")

func validate(req *plugin.VerifySignatureRequest) error {
	if req == nil {
		return plugin.NewValidationError("verifySignature req is nil")
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if req.ContractVersion != plugin.ContractVersion {
		return plugin.NewUnsupportedContractVersionError(req.ContractVersion)
	}
	for _, id := range req.TrustPolicy.TrustedIdentities {
		if id == "*" {
			return plugin.NewValidationError("The AWSSigner plugin does not support wildcard identity in the trust policy.")
		}
	}
	for _, c := range req.TrustPolicy.SignatureVerification {
		if c != plugin.CapabilityTrustedIdentityVerifier && c != plugin.CapabilityRevocationCheckVerifier {
			return plugin.NewValidationErrorf("'%s' is not a supported capability", c)
		}
	}
	ca := req.Signature.CriticalAttributes
	if ca.AuthenticSigningTime == nil || ca.AuthenticSigningTime.IsZero() {
		return plugin.NewValidationError("missing authenticSigningTime")
	}
	if !strings.EqualFold(ca.SigningScheme, awssigner.SigningScheme) {
		return plugin.NewValidationErrorf("'%s' signing scheme is not supported", ca.SigningScheme)
	}
	return nil
}
