package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/truststore"
)

// maxFileSize bounds a file given on the command line (a configuration
// wrapped in a manifest, or a PEM bundle).
const maxFileSize = 2 * config.MaxSize

// readFile reads a file of at most maxFileSize bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is over %d bytes", path, maxFileSize)
	}
	return data, nil
}

// loadConfig reads the file --config names. It takes the verifier
// configuration itself (JSON or YAML, what the Ratify plugin receives), a
// Ratify Verifier resource (its spec.parameters), or a Ratify config.json
// (its verifier.plugins entry named or typed awssigner). Errors name the
// file and the field path within it.
func loadConfig(path string) (*config.Document, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := decodeConfigFile(data)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

// decodeConfigFile is loadConfig for the file's content.
func decodeConfigFile(data []byte) (*config.Document, error) {
	d, _, err := locateConfig(data)
	return d, err
}

// locateConfig decodes the configuration in data and says at which path it
// was found ("" when data is the configuration itself).
func locateConfig(data []byte) (*config.Document, string, error) {
	top, err := genericObject(data)
	if err != nil {
		// Not an object we can look into: let the configuration decoder
		// say what is wrong with it.
		d, err := config.DecodeDocument(data)
		return d, "", err
	}
	kind, _ := top["kind"].(string)
	apiVersion, _ := top["apiVersion"].(string)
	switch {
	case (kind == "Verifier" || kind == "NamespacedVerifier") && strings.HasPrefix(apiVersion, ratifyAPIGroup):
		spec, ok := top["spec"].(map[string]any)
		if !ok {
			return nil, "", &config.FieldError{Path: "spec", Msg: "required: a Ratify Verifier has a spec with parameters"}
		}
		d, err := decodeNested("spec.parameters", spec["parameters"])
		return d, "spec.parameters", err
	case kind != "" && apiVersion != "":
		return nil, "", &config.FieldError{Path: "kind", Msg: fmt.Sprintf("%s %s is not a verifier configuration; give the configuration itself, a Ratify Verifier (apiVersion %s, kind Verifier) or a Ratify config.json", apiVersion, kind, ratifyAPIVersion)}
	}
	if v, ok := top["verifier"].(map[string]any); ok {
		if plugins, ok := v["plugins"].([]any); ok {
			return decodeRatifyConfig(plugins)
		}
	}
	d, err := config.DecodeDocument(data)
	return d, "", err
}

// decodeRatifyConfig picks the awssigner entry of a Ratify config.json's
// verifier.plugins.
func decodeRatifyConfig(plugins []any) (*config.Document, string, error) {
	found := -1
	for i, p := range plugins {
		m, _ := p.(map[string]any)
		if m["name"] == verifierName || m["type"] == verifierName {
			if found >= 0 {
				return nil, "", &config.FieldError{Path: "verifier.plugins", Msg: fmt.Sprintf("entries %d and %d are both awssigner verifiers; give a file with one", found, i)}
			}
			found = i
		}
	}
	if found < 0 {
		return nil, "", &config.FieldError{Path: "verifier.plugins", Msg: "no entry with name or type awssigner"}
	}
	at := fmt.Sprintf("verifier.plugins[%d]", found)
	d, err := decodeNested(at, plugins[found])
	return d, at, err
}

// decodeNested decodes a configuration found at path in a larger document,
// with errors naming the full path.
func decodeNested(path string, v any) (*config.Document, error) {
	if v == nil {
		return nil, &config.FieldError{Path: path, Msg: "required: the awssigner verifier configuration (trustPolicyDoc, …)"}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, &config.FieldError{Path: path, Msg: err.Error()}
	}
	cfg, err := config.DecodeDocumentJSON(raw)
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			p := path
			if fe.Path != "" {
				p += "." + fe.Path
			}
			return nil, &config.FieldError{Path: p, Msg: fe.Msg}
		}
		return nil, err
	}
	return cfg, nil
}

// genericObject decodes a JSON or YAML object keeping numbers exact.
func genericObject(data []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || len(trimmed) > maxFileSize {
		return nil, errors.New("empty or too large")
	}
	if trimmed[0] != '{' {
		j, err := yaml.YAMLToJSON(trimmed)
		if err != nil {
			return nil, err
		}
		trimmed = j
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not an object")
	}
	return m, nil
}

// overrides are the verify flags that change any configuration.
type overrides struct {
	trustStorePEM     []string
	awsEndpoint       string
	awsRegion         string
	revocationTimeout time.Duration
}

// flagFor names the flag that sets a configuration path ("" for none).
func flagFor(path string) string {
	switch path {
	case "aws.endpoint":
		return "--aws-endpoint"
	case "aws.region":
		return "--aws-region"
	case "revocation.timeout":
		return "--revocation-timeout"
	}
	return ""
}

// apply changes the document and resolves it. The trust store PEM files
// replace signingAuthority:aws-signer-ts (the AWS Signer root). Every
// problem is reported, by flag where a flag set it.
func (o overrides) apply(cfg *config.Document) (*config.Config, error) {
	if len(o.trustStorePEM) > 0 {
		var certs []string
		for _, path := range o.trustStorePEM {
			data, err := readFile(path)
			if err != nil {
				return nil, fmt.Errorf("--trust-store-pem: %w", err)
			}
			if _, err := truststore.ParsePEM(data); err != nil {
				return nil, fmt.Errorf("--trust-store-pem %s: %v; give a PEM file of CERTIFICATE blocks", path, err)
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, fmt.Errorf("--trust-store-pem %s: %w", path, err)
			}
			certs = append(certs, abs)
		}
		if cfg.TrustStores == nil {
			cfg.TrustStores = map[string]map[string][]string{}
		}
		if cfg.TrustStores["signingAuthority"] == nil {
			cfg.TrustStores["signingAuthority"] = map[string][]string{}
		}
		cfg.TrustStores["signingAuthority"][truststore.AWSSignerStore] = certs
	}
	if o.awsEndpoint != "" {
		cfg.AWS.Endpoint = o.awsEndpoint
	}
	if o.awsRegion != "" {
		cfg.AWS.Region = o.awsRegion
	}
	if o.revocationTimeout != 0 {
		d := config.Duration(o.revocationTimeout)
		cfg.Revocation.Timeout = &d
	}
	resolved, err := cfg.Resolve()
	if err == nil {
		return resolved, nil
	}
	var fes []*config.FieldError
	var all config.Errors
	var one *config.FieldError
	switch {
	case errors.As(err, &all):
		fes = all
	case errors.As(err, &one):
		fes = []*config.FieldError{one}
	default:
		return nil, err
	}
	msgs := make([]string, len(fes))
	for i, fe := range fes {
		msgs[i] = fe.Error()
		if flag := flagFor(fe.Path); flag != "" {
			msgs[i] = flag + ": " + fe.Msg
		}
	}
	return nil, errors.New(strings.Join(msgs, "; "))
}
