// Package cli is the awssigner command line for people and pipelines: verify,
// inspect and sign container images with AWS Signer Notation signatures, and
// write the trust policy and verifier configuration. It shares the
// verification core and configuration format with the Ratify plugin.
//
// Exit codes: 0 verified or done, 1 refused, 2 could not check or bad usage.
//
// The commands are built when Main runs, never at package initialisation,
// so linking this package costs the Ratify plugin path nothing at start-up.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/compose"
)

// Exit codes.
const (
	ExitOK      = 0 // verified, or the command did what was asked
	ExitRefused = 1 // the image or signature was refused
	ExitFailed  = 2 // could not check, or bad usage
)

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
)

// Main runs the command line with args (without the program name) and
// returns the exit code. Interrupts cancel the work in progress.
func Main(args []string, version string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr, version)
}

// Run is Main with explicit streams (tests).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, version string) int {
	a := &app{stdout: stdout, stderr: stderr, version: version, output: outputText}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return a.finish(root.ExecuteContext(ctx))
}

// app is one run of the command line.
type app struct {
	stdout, stderr io.Writer
	version        string
	output         string
	// jsonPrinted is set once a command has written its JSON document, so
	// a failure after it does not print a second one.
	jsonPrinted bool
}

func (a *app) json() bool { return a.output == outputJSON }

// exitError carries an exit code; silent when the command already reported
// the outcome on stdout.
type exitError struct {
	code   int
	err    error
	silent bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr is a bad-usage error (exit 2) that points to --help.
func usageErr(cmd *cobra.Command, format string, args ...any) error {
	return &exitError{code: ExitFailed, err: fmt.Errorf("%s (see %s --help)", fmt.Sprintf(format, args...), cmd.CommandPath())}
}

// failErr is a could-not-do-it error (exit 2).
func failErr(format string, args ...any) error {
	return &exitError{code: ExitFailed, err: fmt.Errorf(format, args...)}
}

// finish reports err and returns the exit code.
func (a *app) finish(err error) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.silent {
			return code
		}
	}
	msg := err.Error()
	fmt.Fprintf(a.stderr, "Error: %s\n", msg)
	if a.json() && !a.jsonPrinted {
		a.printJSON(map[string]any{"error": msg, "exitCode": code})
	}
	return code
}

// printJSON writes v as one indented JSON document on stdout.
func (a *app) printJSON(v any) {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "Error: write JSON: %v\n", err)
	}
	a.jsonPrinted = true
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "awssigner",
		Short: "Verify, inspect and sign container images with AWS Signer Notation signatures",
		Long: strings.TrimSpace(`
awssigner verifies container images signed with AWS Signer (Notation JWS
signatures stored as OCI referrers), with the same verification core and the
same configuration file as the Ratify verifier plugin.

Run by Ratify (RATIFY_VERIFIER_COMMAND set in the environment) this binary is
the Ratify v1 verifier plugin; run by a person it is this command line.

Registry credentials: Amazon ECR registries
(<account>.dkr.ecr.<region>.amazonaws.com) through ecr:GetAuthorizationToken
with the AWS SDK's default credentials; every other registry through the
Docker credential store (~/.docker/config.json, credential helpers).

Exit codes: 0 verified or done, 1 refused, 2 could not check or bad usage.`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usageErr(cmd, "no command given")
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case outputText, outputJSON:
				return nil
			}
			bad := a.output
			a.output = outputText
			return usageErr(cmd, "--output %q is not a format (want text or json)", bad)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErr(cmd, "%v", err)
	})
	root.PersistentFlags().StringVarP(&a.output, "output", "o", outputText, "output format: text (for people) or json (for machines)")
	root.AddCommand(a.verifyCommand(), a.inspectCommand(), a.signCommand(), a.policyCommand(), a.versionCommand(), a.serveCommand())
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.json() {
				a.printJSON(map[string]string{"version": a.version, "fips": compose.FIPS()})
				return nil
			}
			fmt.Fprintf(a.stdout, "awssigner %s\n", a.version)
			if f := compose.FIPS(); !strings.HasPrefix(f, "not a FIPS build") {
				fmt.Fprintln(a.stdout, f)
			}
			return nil
		},
	}
}

// exactArgs is cobra.ExactArgs with a message that says what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr(cmd, "want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}
