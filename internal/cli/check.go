package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/config"
)

// checkedConfig is one configuration policy check found and its verdict.
type checkedConfig struct {
	// Source says where in the input it was: "document 2, NamespacedVerifier verifier-awssigner".
	Source   string   `json:"source"`
	Valid    bool     `json:"valid"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func (a *app) policyCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE|-",
		Short: "Check verifier configurations exactly as the Ratify plugin will",
		Long: strings.TrimSpace(`
Check every awssigner verifier configuration in a file exactly as the
Ratify plugin checks it at admission: strict decoding, every default and
bound, Notation's trust policy rules, the trust stores, and building the
verifier. Ratify itself reports an invalid Verifier as successfully
created and only fails at the first admission; run this before applying.

The file may hold the configuration itself (JSON or YAML), a Ratify
Verifier or NamespacedVerifier, a Ratify config.json, or many YAML
documents, such as "helm template" output: every Verifier or
NamespacedVerifier named or typed awssigner is checked, other objects are
skipped. Every problem is reported with its field path.

Exit codes: 0 every configuration found is valid, 1 one is invalid, 2 none
was found or the file cannot be read.`),
		Example: `  helm template ratify-aws-signer charts/ratify-aws-signer -f values.yaml | awssigner policy check -
  awssigner policy check verifier.yaml -o json`,
		Args: exactArgs(1, "one file, or - for standard input"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(args[0], cmd.InOrStdin())
			if err != nil {
				return failErr("%v", err)
			}
			found := checkConfigs(data)
			if len(found) == 0 {
				return failErr("%s holds no awssigner verifier configuration (no Verifier or NamespacedVerifier named or typed awssigner, and no configuration with trustPolicyDoc)", args[0])
			}
			invalid := 0
			for _, c := range found {
				if !c.Valid {
					invalid++
				}
			}
			if a.json() {
				a.printJSON(found)
			} else {
				for _, c := range found {
					verdict := "valid"
					if !c.Valid {
						verdict = "INVALID"
					}
					fmt.Fprintf(a.stdout, "%s: %s\n", c.Source, verdict)
					for _, e := range c.Errors {
						fmt.Fprintf(a.stdout, "  error: %s\n", e)
					}
					for _, w := range c.Warnings {
						fmt.Fprintf(a.stdout, "  warning: %s\n", w)
					}
				}
			}
			if invalid > 0 {
				return &exitError{code: ExitRefused, err: fmt.Errorf("%d of %d configuration(s) invalid", invalid, len(found)), silent: a.json()}
			}
			return nil
		},
	}
}

// readInput reads a bounded file, or standard input for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path != "-" {
		return readFile(path)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("standard input is over %d bytes", maxFileSize)
	}
	return data, nil
}

var yamlSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// checkConfigs finds and checks every configuration in data.
func checkConfigs(data []byte) []checkedConfig {
	var out []checkedConfig
	docs := yamlSeparator.Split(string(data), -1)
	for i, doc := range docs {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		where := fmt.Sprintf("document %d", i+1)
		if len(docs) == 1 {
			where = "the file"
		}
		top, err := genericObject([]byte(doc))
		if err == nil {
			kind, _ := top["kind"].(string)
			apiVersion, _ := top["apiVersion"].(string)
			if kind != "" && apiVersion != "" {
				if !isOurVerifier(kind, apiVersion, top) {
					continue // another object of the manifest
				}
				meta, _ := top["metadata"].(map[string]any)
				name, _ := meta["name"].(string)
				where = fmt.Sprintf("%s, %s %s", where, kind, name)
			} else if _, ok := top["trustPolicyDoc"]; !ok {
				if _, ok := top["verifier"]; !ok {
					continue // neither a configuration nor a Ratify config.json
				}
			}
		}
		out = append(out, checkOne(where, []byte(doc)))
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// isOurVerifier tells a Ratify Verifier or NamespacedVerifier that runs the
// awssigner plugin.
func isOurVerifier(kind, apiVersion string, top map[string]any) bool {
	if (kind != "Verifier" && kind != "NamespacedVerifier") || !strings.HasPrefix(apiVersion, ratifyAPIGroup) {
		return false
	}
	spec, _ := top["spec"].(map[string]any)
	return spec["name"] == verifierName || spec["type"] == verifierName
}

// checkOne decodes, resolves and builds one configuration.
func checkOne(where string, doc []byte) checkedConfig {
	c := checkedConfig{Source: where}
	d, at, err := locateConfig(bytes.TrimSpace(doc))
	if err != nil {
		c.Errors = []string{err.Error()} // decoding stops at the first error, path included
		return c
	}
	cfg, err := d.Resolve()
	if err == nil {
		c.Warnings = cfg.Warnings
		if _, err = compose.Verifier(cfg, compose.Options{Cache: compose.NoCache}); err == nil {
			c.Valid = true
			return c
		}
	}
	var all config.Errors
	var one *config.FieldError
	switch {
	case errors.As(err, &all):
	case errors.As(err, &one):
		all = config.Errors{one}
	default:
		c.Errors = []string{err.Error()}
		return c
	}
	for _, fe := range all {
		p := fe.Path
		if at != "" {
			p = strings.TrimSuffix(at+"."+p, ".")
		}
		c.Errors = append(c.Errors, (&config.FieldError{Path: p, Msg: fe.Msg}).Error())
	}
	return c
}
