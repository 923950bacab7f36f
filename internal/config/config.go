// Package config is the verifier's configuration schema: the same document
// whether it arrives from Ratify (the Verifier's parameters), from a file
// given to the command line, or from the chart. It only decodes, applies
// defaults (defaults.go, all of them) and validates: decoding is strict
// (unknown keys and wrong types are errors naming their path), validation
// reports every error with its field path plus warnings, and the result is a
// resolved Config with no pointers and nothing left unset. Building a
// verifier from it is internal/compose's job.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awssigner"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
)

// MaxSize bounds a configuration document.
const MaxSize = 1 << 20

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Document is the configuration as written. Optional durations are
// pointers only here, to tell "unset" from "0s".
type Document struct {
	// Keys Ratify sets on every verifier; accepted, not interpreted.
	Name             string          `json:"name,omitempty"`
	Type             string          `json:"type,omitempty"`
	ArtifactTypes    json.RawMessage `json:"artifactTypes,omitempty"`
	Version          json.RawMessage `json:"version,omitempty"`
	NestedReferences json.RawMessage `json:"nestedReferences,omitempty"`
	Source           json.RawMessage `json:"source,omitempty"`

	// TrustPolicyDoc is a Notation trust policy document, version "1.0".
	TrustPolicyDoc *trustpolicy.Document `json:"trustPolicyDoc"`
	// TrustPolicyDocs are named trust policy documents that a Kyverno
	// request selects by name (awssigner serve); the plugin and the command
	// line use TrustPolicyDoc only.
	TrustPolicyDocs map[string]*trustpolicy.Document `json:"trustPolicyDocs,omitempty"`
	// TrustStores adds or replaces named stores:
	// {"<type>": {"<name>": ["<PEM text>" | "<absolute path>"]}}.
	TrustStores map[string]map[string][]string `json:"trustStores,omitempty"`
	Revocation  RevocationDocument             `json:"revocation"`
	AWS         AWSDocument                    `json:"aws"`
	// ClockSkew is how far in the future a signature's signing time may be.
	ClockSkew *Duration `json:"clockSkew,omitempty"`
	// Server configures awssigner serve (server.go).
	Server ServerDocument `json:"server"`
}

// RevocationDocument configures GetRevocationStatus calls.
type RevocationDocument struct {
	// Timeout bounds one whole check, retries included.
	Timeout *Duration `json:"timeout,omitempty"`
	// CacheTTL keeps "not revoked" answers; 0 disables the cache.
	CacheTTL *Duration `json:"cacheTTL,omitempty"`
	// CacheDir holds the on-disk cache shared between plugin processes.
	CacheDir string `json:"cacheDir,omitempty"`
}

// AWSDocument configures the Signer client.
type AWSDocument struct {
	// Region overrides the region of the signature's profile ARN.
	Region string `json:"region,omitempty"`
	// Endpoint overrides the SDK's endpoint resolution.
	Endpoint string `json:"endpoint,omitempty"`
	// UseFIPSEndpoint selects AWS Signer's FIPS endpoints.
	UseFIPSEndpoint bool `json:"useFIPSEndpoint,omitempty"`
}

// Config is a validated configuration with every default applied.
type Config struct {
	// Name and Type are what Ratify calls the verifier (may be empty).
	Name, Type string
	// TrustPolicy is the validated trust policy document.
	TrustPolicy *trustpolicy.Document
	// TrustPolicies are the validated named trust policy documents
	// (trustPolicyDocs), by name; empty when none are configured.
	TrustPolicies map[string]*trustpolicy.Document
	// TrustStore serves the embedded AWS roots and the configured stores,
	// parsed once.
	TrustStore *truststore.Store
	Revocation Revocation
	AWS        AWS
	// ClockSkew is how far in the future a signing time may be.
	ClockSkew time.Duration
	// Deadline is how long one Ratify plugin run may take.
	Deadline time.Duration
	// Server is the resolved server section (awssigner serve).
	Server Server
	// Warnings are settings that are valid but probably not meant.
	Warnings []string
}

// Revocation is the resolved revocation configuration.
type Revocation struct {
	Timeout  time.Duration
	CacheTTL time.Duration
	// CacheDir is "" when unset: the caller that keeps a disk cache
	// chooses with DefaultCacheDir.
	CacheDir    string
	MaxAttempts int
	MaxBackoff  time.Duration
}

// AWS is the resolved Signer client configuration.
type AWS struct {
	Region, Endpoint string
	UseFIPSEndpoint  bool
}

// Decode parses a JSON or YAML document strictly and resolves it. Every
// error is a *FieldError, or Errors of them, naming the paths.
func Decode(data []byte) (*Config, error) {
	doc, err := DecodeDocument(data)
	if err != nil {
		return nil, err
	}
	return doc.Resolve()
}

// DecodeJSON is Decode for a JSON document.
func DecodeJSON(data []byte) (*Config, error) {
	doc, err := DecodeDocumentJSON(data)
	if err != nil {
		return nil, err
	}
	return doc.Resolve()
}

// DecodeDocument parses a JSON or YAML document strictly, without
// resolving it.
func DecodeDocument(data []byte) (*Document, error) {
	if len(data) > MaxSize {
		return nil, fieldErr("", "configuration is %d bytes, over the %d-byte limit", len(data), MaxSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fieldErr("", "configuration is empty; trustPolicyDoc is required")
	}
	if trimmed[0] != '{' {
		j, err := yaml.YAMLToJSON(trimmed)
		if err != nil {
			return nil, fieldErr("", "not valid JSON or YAML: %v", err)
		}
		trimmed = j
	}
	return DecodeDocumentJSON(trimmed)
}

// DecodeDocumentJSON is DecodeDocument for a JSON document.
func DecodeDocumentJSON(data []byte) (*Document, error) {
	if len(data) > MaxSize {
		return nil, fieldErr("", "configuration is %d bytes, over the %d-byte limit", len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fieldErr("", "not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fieldErr("", "unexpected data after the configuration object")
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, fieldErr("", "want an object, got %s", describe(generic))
	}
	d := &Document{}
	if err := decodeValue("", generic, reflect.ValueOf(d).Elem()); err != nil {
		return nil, err
	}
	return d, nil
}

// Resolve validates the document, reporting every problem, and returns the
// resolved configuration. The document is not changed.
func (d *Document) Resolve() (*Config, error) {
	var errs Errors
	c := &Config{Name: d.Name, Type: d.Type, TrustPolicy: d.TrustPolicyDoc}
	r := Revocation{Timeout: DefaultRevocationTimeout, CacheTTL: DefaultCacheTTL, CacheDir: d.Revocation.CacheDir, MaxAttempts: DefaultMaxAttempts, MaxBackoff: DefaultMaxBackoff}
	if t := d.Revocation.Timeout; t != nil {
		r.Timeout = time.Duration(*t)
		if r.Timeout <= 0 || r.Timeout > MaxRevocationTimeout {
			errs.add("revocation.timeout", "must be more than 0s and at most %s, got %s", MaxRevocationTimeout, r.Timeout)
		}
	}
	if t := d.Revocation.CacheTTL; t != nil {
		r.CacheTTL = time.Duration(*t)
		switch {
		case r.CacheTTL < 0 || r.CacheTTL > MaxCacheTTL:
			errs.add("revocation.cacheTTL", "must be between 0s (no cache) and %s, got %s", MaxCacheTTL, r.CacheTTL)
		case r.CacheTTL == 0:
			c.Warnings = append(c.Warnings, "revocation.cacheTTL is 0s: no revocation answer is kept, so every verification calls AWS Signer")
		}
	}
	if r.CacheDir != "" && !filepath.IsAbs(r.CacheDir) {
		errs.add("revocation.cacheDir", "must be an absolute path, got %q", r.CacheDir)
	}
	c.Revocation = r
	c.Deadline = Deadline(r.Timeout)
	c.ClockSkew = DefaultClockSkew
	if d.ClockSkew != nil {
		c.ClockSkew = time.Duration(*d.ClockSkew)
		if c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew {
			errs.add("clockSkew", "must be between 0s and %s, got %s", MaxClockSkew, c.ClockSkew)
		}
	}
	c.AWS = AWS(d.AWS)
	if c.AWS.Region != "" {
		if err := awssigner.CheckRegion(c.AWS.Region); err != nil {
			errs.add("aws.region", "%v", err)
		}
	}
	if c.AWS.Endpoint != "" {
		if err := awssigner.CheckEndpoint(c.AWS.Endpoint); err != nil {
			errs.add("aws.endpoint", "%v", err)
		}
		if c.AWS.UseFIPSEndpoint {
			c.Warnings = append(c.Warnings, "aws.useFIPSEndpoint has no effect with aws.endpoint set: the given endpoint is called as it is")
		}
	}
	store, err := truststore.New(d.TrustStores)
	if err != nil {
		errs = append(errs, &FieldError{Msg: err.Error()})
	}
	c.TrustStore = store
	stores := d.storeNames()
	if d.TrustPolicyDoc == nil {
		errs.add("trustPolicyDoc", "required: a Notation trust policy document (version \"1.0\")")
	} else {
		c.Warnings = append(c.Warnings, validatePolicy("trustPolicyDoc", d.TrustPolicyDoc, stores, &errs)...)
	}
	for _, name := range slices.Sorted(maps.Keys(d.TrustPolicyDocs)) {
		path := "trustPolicyDocs." + name
		if err := CheckPolicyName(name); err != nil {
			errs.add(path, "%v", err)
			continue
		}
		doc := d.TrustPolicyDocs[name]
		if doc == nil {
			errs.add(path, "required: a Notation trust policy document (version \"1.0\")")
			continue
		}
		if c.TrustPolicies == nil {
			c.TrustPolicies = make(map[string]*trustpolicy.Document, len(d.TrustPolicyDocs))
		}
		c.TrustPolicies[name] = doc
		c.Warnings = append(c.Warnings, validatePolicy(path, doc, stores, &errs)...)
	}
	var serverWarnings []string
	c.Server, serverWarnings = d.Server.resolve(&errs)
	c.Warnings = append(c.Warnings, serverWarnings...)
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return c, nil
}

// storeNames are the trust stores a trust policy may name
// ("<type>:<name>"): the embedded ones and the configured ones.
func (d *Document) storeNames() map[string]bool {
	stores := map[string]bool{}
	for name := range truststore.Embedded() {
		stores["signingAuthority:"+name] = true
	}
	for typ, byName := range d.TrustStores {
		for name := range byName {
			stores[typ+":"+name] = true
		}
	}
	return stores
}

// validatePolicy checks one trust policy document at path (trustPolicyDoc
// or trustPolicyDocs.<name>) and returns warnings.
func validatePolicy(path string, doc *trustpolicy.Document, stores map[string]bool, errs *Errors) (warnings []string) {
	if doc.Version != "1.0" {
		errs.add(path+".version", "must be \"1.0\", got %q", doc.Version)
	}
	if len(doc.TrustPolicies) == 0 {
		errs.add(path+".trustPolicies", "at least one trust policy statement is required")
		return nil
	}
	before := len(*errs)
	for i, p := range doc.TrustPolicies {
		path := fmt.Sprintf("%s.trustPolicies[%d]", path, i)
		level := p.SignatureVerification.VerificationLevel
		switch level {
		case "strict", "permissive":
		case "audit":
			warnings = append(warnings, fmt.Sprintf("%s (%q) has level audit: failed checks are only logged, every signature is accepted", path, p.Name))
		case "skip":
			warnings = append(warnings, fmt.Sprintf("%s (%q) has level skip: nothing is verified", path, p.Name))
			continue
		default:
			errs.add(path+".signatureVerification.level", "%q is not a verification level (want strict, permissive, audit or skip)", level)
			continue
		}
		if p.SignatureVerification.Override["revocation"] == "skip" {
			warnings = append(warnings, fmt.Sprintf("%s (%q) skips the revocation check: a revoked signature is accepted", path, p.Name))
		}
		wildcard := false
		for j, id := range p.TrustedIdentities {
			if id == "*" {
				wildcard = true
				errs.add(fmt.Sprintf("%s.trustedIdentities[%d]", path, j), "wildcard identity is not supported for AWS Signer signatures; list signing-profile ARNs (arn:aws:signer:<region>:<account>:/signing-profiles/<name>)")
			}
		}
		if !wildcard && level != "audit" && len(p.TrustedIdentities) > 0 && len(awssigner.SignerIdentities(p.TrustedIdentities)) == 0 {
			errs.add(path+".trustedIdentities", "lists no signing-profile ARN, so no AWS Signer signature could match; add arn:aws:signer:<region>:<account>:/signing-profiles/<name>")
		}
		for j, s := range p.TrustStores {
			if !stores[s] {
				known := make([]string, 0, len(stores))
				for k := range stores {
					known = append(known, k)
				}
				errs.add(fmt.Sprintf("%s.trustStores[%d]", path, j), "trust store %q is not configured (configured: %s)", s, strings.Join(sortedStrings(known), ", "))
			}
		}
	}
	if len(*errs) == before {
		// notation's own rules (scopes, names, duplicates), once ours hold.
		if err := doc.Validate(); err != nil {
			errs.add(path, "%v", err)
		}
	}
	return warnings
}

// MaxPolicyName bounds a trust policy document's name (a DNS-1123
// subdomain, as Kubernetes object names).
const MaxPolicyName = 253

// CheckPolicyName tells whether name can name a trust policy document
// (trustPolicyDocs keys, a Kyverno request's trustPolicy): a DNS-1123
// subdomain, so it can be built from a namespace name or label.
func CheckPolicyName(name string) error {
	if name == "" || len(name) > MaxPolicyName {
		return fmt.Errorf("a trust policy name must be 1 to %d characters, got %d", MaxPolicyName, len(name))
	}
	for _, label := range strings.Split(name, ".") {
		ok := label != "" && alnum(label[0]) && alnum(label[len(label)-1])
		for i := 0; ok && i < len(label); i++ {
			ok = alnum(label[i]) || label[i] == '-'
		}
		if !ok {
			return fmt.Errorf("%q is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", name)
		}
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func sortedStrings(s []string) []string {
	m := make(map[string]any, len(s))
	for _, v := range s {
		m[v] = nil
	}
	return sortedKeys(m)
}
