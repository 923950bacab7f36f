// Package awssigner holds what AWS defines about AWS Signer Notation
// signatures, in one place: the plugin name and signed attribute names, the
// signing platform, signing-profile ARNs (parsing, the unversioned form and
// the AWS plugin's trusted-identity match rule), the partitions and region
// names Signer uses, endpoint URLs, and the AWS facts read out of a
// signature's signer information. It imports neither the AWS SDK's clients
// nor its configuration loader.
package awssigner

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/notaryproject/notation-core-go/signature"
)

// PluginName is the verification plugin AWS Signer signatures name in
// io.cncf.notary.verificationPlugin.
const PluginName = "com.amazonaws.signer.notation.plugin"

// Signed attribute names.
const (
	// AttrVerificationPlugin is notation's attribute naming the plugin that
	// must verify the signature.
	AttrVerificationPlugin = "io.cncf.notary.verificationPlugin"
	// AttrProfileVersion is the signing-profile-version ARN.
	AttrProfileVersion = "com.amazonaws.signer.signingProfileVersion"
	// AttrSigningJob is the signing-job ARN.
	AttrSigningJob = "com.amazonaws.signer.signingJob"
)

// PlatformID is the AWS Signer platform of Notation signatures; AWS's
// plugin sends it as a constant in GetRevocationStatus.
const PlatformID = "Notation-OCI-SHA384-ECDSA"

// SigningScheme is the only Notation signing scheme AWS Signer uses.
const SigningScheme = "notary.x509.signingAuthority"

// partitions are where AWS Signer issues Notation signatures.
var partitions = map[string]bool{"aws": true, "aws-us-gov": true, "aws-cn": true}

// RegionPattern is the shape of an AWS region name (us-west-2,
// us-gov-west-1, cn-north-1), for use inside larger patterns.
const RegionPattern = `[a-z]{2}(?:-[a-z]+)+-[0-9]+`

var regionRE = regexp.MustCompile(`^` + RegionPattern + `$`)

// ValidRegion reports whether s has the shape of an AWS region name.
func ValidRegion(s string) bool { return regionRE.MatchString(s) }

// CheckRegion returns an error naming s when it is not a region name.
func CheckRegion(s string) error {
	if !ValidRegion(s) {
		return fmt.Errorf("%q is not an AWS region name (e.g. us-west-2)", s)
	}
	return nil
}

// CheckEndpoint accepts an absolute http(s) URL with a host.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// ProfileARN is a parsed signing-profile ARN, with or without version:
// arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>[/<version>].
type ProfileARN struct {
	Partition, Region, Account, Name, Version string
}

// ParseProfileARN parses a signing-profile ARN or profile-version ARN.
func ParseProfileARN(s string) (ProfileARN, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return ProfileARN{}, fmt.Errorf("%q is not an ARN: %w", s, err)
	}
	if a.Service != "signer" {
		return ProfileARN{}, fmt.Errorf("%q is not an AWS Signer ARN (service %q)", s, a.Service)
	}
	parts := strings.Split(a.Resource, "/")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "" || parts[1] != "signing-profiles" || parts[2] == "" || (len(parts) == 4 && parts[3] == "") {
		return ProfileARN{}, fmt.Errorf("%q is not a signing-profile ARN (want arn:<partition>:signer:<region>:<account>:/signing-profiles/<name>[/<version>])", s)
	}
	p := ProfileARN{Partition: a.Partition, Region: a.Region, Account: a.AccountID, Name: parts[2]}
	if len(parts) == 4 {
		p.Version = parts[3]
	}
	return p, nil
}

// Unversioned returns the profile ARN without its version.
func (p ProfileARN) Unversioned() string {
	return fmt.Sprintf("arn:%s:signer:%s:%s:/signing-profiles/%s", p.Partition, p.Region, p.Account, p.Name)
}

// String returns the ARN, with its version when it has one.
func (p ProfileARN) String() string {
	if p.Version == "" {
		return p.Unversioned()
	}
	return p.Unversioned() + "/" + p.Version
}

// RegionFor returns the region calls about resourceARN go to: override
// when set, else the ARN's own region. The ARN's partition must be one
// where AWS Signer issues Notation signatures.
func RegionFor(resourceARN, override string) (string, error) {
	a, err := arn.Parse(resourceARN)
	if err != nil {
		return "", fmt.Errorf("%q is not an ARN: %w", resourceARN, err)
	}
	if !partitions[a.Partition] {
		return "", fmt.Errorf("ARN %q is in partition %q; AWS Signer signatures come from aws, aws-us-gov or aws-cn", resourceARN, a.Partition)
	}
	if override != "" {
		return override, nil
	}
	if a.Region == "" {
		return "", fmt.Errorf("ARN %q names no region; set aws.region", resourceARN)
	}
	return a.Region, nil
}

// MatchIdentity applies AWS Signer's trusted-identity rule to the signed
// profile-version ARN sig. Only signing-profile ARNs count (anything else in
// the list is ignored); a profile ARN matches every version of that profile,
// a profile-version ARN exactly one; both compare case-insensitively. The
// first match wins.
func MatchIdentity(sig string, identities []string) (string, bool) {
	cut := strings.LastIndex(sig, "/")
	for _, id := range identities {
		p, err := ParseProfileARN(id)
		if err != nil {
			continue
		}
		if p.Version == "" {
			if cut >= 0 && strings.EqualFold(sig[:cut], id) {
				return id, true
			}
		} else if strings.EqualFold(sig, id) {
			return id, true
		}
	}
	return "", false
}

// SignerIdentities returns the entries of identities that MatchIdentity
// considers (signing-profile and profile-version ARNs).
func SignerIdentities(identities []string) []string {
	var out []string
	for _, id := range identities {
		if _, err := ParseProfileARN(id); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// Facts are the AWS Signer facts a signature states about itself (not
// verified by reading them).
type Facts struct {
	SigningProfileARN        string
	SigningProfileVersionARN string
	SigningJobARN            string
	VerificationPlugin       string
	SigningScheme            string
	SigningTime              time.Time
	Expiry                   time.Time
}

// FactsOf reads the AWS facts out of a signature's signer information.
func FactsOf(si *signature.SignerInfo) Facts {
	if si == nil {
		return Facts{}
	}
	f := Facts{
		SigningScheme: string(si.SignedAttributes.SigningScheme),
		SigningTime:   si.SignedAttributes.SigningTime.UTC(),
		Expiry:        si.SignedAttributes.Expiry.UTC(),
	}
	for _, a := range si.SignedAttributes.ExtendedAttributes {
		val, _ := a.Value.(string)
		switch a.Key {
		case AttrProfileVersion:
			f.SigningProfileVersionARN = val
		case AttrSigningJob:
			f.SigningJobARN = val
		case AttrVerificationPlugin:
			f.VerificationPlugin = val
		}
	}
	if p, err := ParseProfileARN(f.SigningProfileVersionARN); err == nil {
		f.SigningProfileARN = p.Unversioned()
	}
	return f
}
