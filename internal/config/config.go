// Package config is the verifier's public configuration: the same document
// whether it arrives from Ratify (the Verifier's parameters), from a file
// given to the command line, or from the chart. Decoding is strict (unknown
// keys and wrong types are errors naming their path), defaults live in
// Defaults, and New builds a ready verifier from a decoded Config.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/awsplugin"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
)

// MaxSize bounds a configuration document.
const MaxSize = 1 << 20

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the verifier configuration.
type Config struct {
	// Keys Ratify sets on every verifier; accepted, not interpreted.
	Name             string          `json:"name,omitempty"`
	Type             string          `json:"type,omitempty"`
	ArtifactTypes    json.RawMessage `json:"artifactTypes,omitempty"`
	Version          json.RawMessage `json:"version,omitempty"`
	NestedReferences json.RawMessage `json:"nestedReferences,omitempty"`
	Source           json.RawMessage `json:"source,omitempty"`

	// TrustPolicyDoc is a Notation trust policy document, version "1.0".
	TrustPolicyDoc *trustpolicy.Document `json:"trustPolicyDoc"`
	// TrustStores adds or replaces named stores:
	// {"<type>": {"<name>": ["<PEM text>" | "<absolute path>"]}}.
	TrustStores map[string]map[string][]string `json:"trustStores,omitempty"`
	Revocation  Revocation                     `json:"revocation"`
	AWS         AWS                            `json:"aws"`

	// store is the trust store Validate built from TrustStores, reused by
	// New so a plugin run parses its certificates once.
	store *truststore.Store
}

// Revocation configures GetRevocationStatus calls.
type Revocation struct {
	// Timeout bounds one whole check, retries included.
	Timeout *Duration `json:"timeout,omitempty"`
	// CacheTTL keeps "not revoked" answers; 0 disables the cache.
	CacheTTL *Duration `json:"cacheTTL,omitempty"`
	// CacheDir holds the on-disk cache shared between plugin processes.
	CacheDir string `json:"cacheDir,omitempty"`
}

// AWS configures the Signer client.
type AWS struct {
	// Region overrides the region of the signature's profile ARN.
	Region string `json:"region,omitempty"`
	// Endpoint overrides the SDK's endpoint resolution.
	Endpoint string `json:"endpoint,omitempty"`
}

// The defaults, in one place.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultCacheTTL = 5 * time.Minute
	MaxTimeout      = 30 * time.Second
	MaxCacheTTL     = 7 * 24 * time.Hour
)

// Defaults fills every unset optional field.
func (c *Config) Defaults() {
	if c.Revocation.Timeout == nil {
		d := Duration(DefaultTimeout)
		c.Revocation.Timeout = &d
	}
	if c.Revocation.CacheTTL == nil {
		d := Duration(DefaultCacheTTL)
		c.Revocation.CacheTTL = &d
	}
}

// Decode parses a JSON or YAML document strictly, applies Defaults and
// validates. Every error is a *FieldError naming the path.
func Decode(data []byte) (*Config, error) {
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
	return DecodeJSON(trimmed)
}

// DecodeJSON is Decode for a JSON document.
func DecodeJSON(data []byte) (*Config, error) {
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
	c := &Config{}
	if err := decodeValue("", generic, reflect.ValueOf(c).Elem()); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// Validate checks a decoded Config (with defaults applied).
func (c *Config) Validate() error {
	if err := c.validatePolicy(); err != nil {
		return err
	}
	store, err := truststore.New(c.TrustStores)
	if err != nil {
		return &FieldError{Msg: err.Error()}
	}
	c.store = store
	r := c.Revocation
	if r.Timeout != nil && (time.Duration(*r.Timeout) <= 0 || time.Duration(*r.Timeout) > MaxTimeout) {
		return fieldErr("revocation.timeout", "must be more than 0s and at most %s, got %s", MaxTimeout, time.Duration(*r.Timeout))
	}
	if r.CacheTTL != nil && (time.Duration(*r.CacheTTL) < 0 || time.Duration(*r.CacheTTL) > MaxCacheTTL) {
		return fieldErr("revocation.cacheTTL", "must be between 0s (no cache) and %s, got %s", MaxCacheTTL, time.Duration(*r.CacheTTL))
	}
	if r.CacheDir != "" && !filepath.IsAbs(r.CacheDir) {
		return fieldErr("revocation.cacheDir", "must be an absolute path, got %q", r.CacheDir)
	}
	if c.AWS.Region != "" && !regionPattern.MatchString(c.AWS.Region) {
		return fieldErr("aws.region", "%q is not an AWS region name (e.g. us-west-2)", c.AWS.Region)
	}
	if c.AWS.Endpoint != "" {
		u, err := url.Parse(c.AWS.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fieldErr("aws.endpoint", "%q is not an http(s) URL", c.AWS.Endpoint)
		}
	}
	return nil
}

func (c *Config) validatePolicy() error {
	doc := c.TrustPolicyDoc
	if doc == nil {
		return fieldErr("trustPolicyDoc", "required: a Notation trust policy document (version \"1.0\")")
	}
	if doc.Version != "1.0" {
		return fieldErr("trustPolicyDoc.version", "must be \"1.0\", got %q", doc.Version)
	}
	if len(doc.TrustPolicies) == 0 {
		return fieldErr("trustPolicyDoc.trustPolicies", "at least one trust policy statement is required")
	}
	stores := map[string]bool{}
	for name := range truststore.Embedded() {
		stores["signingAuthority:"+name] = true
	}
	for typ, byName := range c.TrustStores {
		for name := range byName {
			stores[typ+":"+name] = true
		}
	}
	for i, p := range doc.TrustPolicies {
		path := fmt.Sprintf("trustPolicyDoc.trustPolicies[%d]", i)
		level := p.SignatureVerification.VerificationLevel
		switch level {
		case "strict", "permissive", "audit", "skip":
		default:
			return fieldErr(path+".signatureVerification.level", "%q is not a verification level (want strict, permissive, audit or skip)", level)
		}
		if level == "skip" {
			continue
		}
		for j, id := range p.TrustedIdentities {
			if id == "*" {
				return fieldErr(fmt.Sprintf("%s.trustedIdentities[%d]", path, j), "wildcard identity is not supported for AWS Signer signatures; list signing-profile ARNs (arn:aws:signer:<region>:<account>:/signing-profiles/<name>)")
			}
		}
		if level != "audit" && len(p.TrustedIdentities) > 0 && len(awsplugin.SignerIdentities(p.TrustedIdentities)) == 0 {
			return fieldErr(path+".trustedIdentities", "lists no signing-profile ARN, so no AWS Signer signature could match; add arn:aws:signer:<region>:<account>:/signing-profiles/<name>")
		}
		for j, s := range p.TrustStores {
			if !stores[s] {
				known := make([]string, 0, len(stores))
				for k := range stores {
					known = append(known, k)
				}
				return fieldErr(fmt.Sprintf("%s.trustStores[%d]", path, j), "trust store %q is not configured (configured: %s)", s, strings.Join(sortedStrings(known), ", "))
			}
		}
	}
	if err := doc.Validate(); err != nil {
		return &FieldError{Path: "trustPolicyDoc", Msg: err.Error()}
	}
	return nil
}

func sortedStrings(s []string) []string {
	m := make(map[string]any, len(s))
	for _, v := range s {
		m[v] = nil
	}
	return sortedKeys(m)
}

// ErrNoConfig is returned by New for a nil Config.
var ErrNoConfig = errors.New("no configuration")
