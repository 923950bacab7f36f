// Package cli is the release command's command line: flags, defaults and
// output; the work is in package release.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/release"
)

// DefaultSource is the org.opencontainers.image.source label.
const DefaultSource = "https://github.com/ratify-aws-signer/ratify-aws-signer"

// DefaultLicenses is the org.opencontainers.image.licenses label. The
// repository has no LICENSE file yet, so no license is asserted.
const DefaultLicenses = "NOASSERTION"

const usage = `usage:
  release image [-repo .] [-commit HEAD] [-version v] [-dist dist]
  release push -registry <host>[/<path>] [-tag t] [-profile-arn ARN] [-awssigner path] [-plain-http] [-ratify-base ref@digest] [-dist dist]
  release refs [-registry r] [-tag t]
  release publish-plugin -file bin/awssigner -ref <registry>/<repository>:<tag> [-plain-http] [-version v]`

// Run runs one subcommand and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "image":
		err = imageCmd(ctx, args[1:], stdout, stderr)
	case "push":
		err = pushCmd(ctx, args[1:], stdout, stderr)
	case "refs":
		err = refsCmd(args[1:], stdout, stderr)
	case "publish-plugin":
		err = publishCmd(ctx, args[1:], stdout, stderr)
	default:
		err = fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return 1
	}
	return 0
}

func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

func imageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("image", stderr)
	var o release.Options
	fs.StringVar(&o.Repo, "repo", ".", "the repository (root module) to build")
	fs.StringVar(&o.Commit, "commit", "HEAD", "commit to build (its files, not the working tree)")
	fs.StringVar(&o.Version, "version", "0.1.0-dev", "version stamped into the binary and labels")
	fs.StringVar(&o.Dist, "dist", "dist", "output directory (replaced)")
	fs.StringVar(&o.Source, "source", DefaultSource, "org.opencontainers.image.source")
	fs.StringVar(&o.Licenses, "licenses", DefaultLicenses, "org.opencontainers.image.licenses (SPDX expression)")
	if err := parse(fs, args); err != nil {
		return err
	}
	o.Log = stderr
	start := time.Now()
	m, err := release.Build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "built %s (commit %s) into %s/%s in %s:\n", m.Version, m.Commit, o.Dist, release.LayoutDir, time.Since(start).Round(100*time.Millisecond))
	for _, l := range m.Summary() {
		fmt.Fprintln(stdout, "  "+l)
	}
	return nil
}

func pushCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("push", stderr)
	var o release.PushOptions
	fs.StringVar(&o.Dist, "dist", "dist", "what `release image` wrote")
	fs.StringVar(&o.Registry, "registry", "", "registry and path prefix to push to (required)")
	fs.StringVar(&o.Tag, "tag", "", "release tag (default: the built version)")
	fs.BoolVar(&o.PlainHTTP, "plain-http", false, "talk HTTP to the registry (local registries)")
	fs.StringVar(&o.RatifyBase, "ratify-base", "", "upstream Ratify image pinned by digest (default: tools/release/ratify/base.ref)")
	fs.StringVar(&o.Awssigner, "awssigner", "", "awssigner binary that signs (default: dist/bin/std/<this machine>/awssigner)")
	fs.StringVar(&o.ProfileARN, "profile-arn", "", "AWS Signer signing-profile ARN (required unless -no-sign)")
	fs.BoolVar(&o.NoSign, "no-sign", false, "push without signing")
	fs.StringVar(&o.AWSEndpoint, "aws-endpoint", "", "AWS Signer endpoint URL (default: SDK resolution)")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.Registry == "" {
		return errors.New("push: -registry is required (REGISTRY=… with make push)")
	}
	if o.Awssigner == "" {
		o.Awssigner = filepath.Join(o.Dist, "bin", release.VariantStd, runtime.GOOS+"-"+runtime.GOARCH, "awssigner")
		if _, err := os.Stat(o.Awssigner); err != nil {
			o.Awssigner = ""
		}
	}
	o.Log = stderr
	pushed, err := release.Push(ctx, o)
	if err != nil {
		return err
	}
	for _, p := range pushed {
		fmt.Fprintf(stdout, "%-30s %s\n", p.Name, p.Pinned)
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(pushed, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

func refsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flags("refs", stderr)
	registry := fs.String("registry", release.DefaultRegistry, "registry and path prefix")
	tag := fs.String("tag", "0.1.0-dev", "release tag")
	if err := parse(fs, args); err != nil {
		return err
	}
	var platforms []string
	for _, p := range release.Platforms {
		platforms = append(platforms, p.String())
	}
	r := release.RefsFor(*registry, *tag, platforms)
	fmt.Fprintln(stdout, r.Image)
	fmt.Fprintln(stdout, r.FIPS)
	fmt.Fprintln(stdout, r.Ratify)
	var ps []string
	for _, v := range r.Plugin {
		ps = append(ps, v)
	}
	sort.Strings(ps)
	fmt.Fprintln(stdout, strings.Join(ps, "\n"))
	return nil
}

// publishCmd pushes one plugin binary as a dynamic-plugin artifact (what
// test/cmd/publish-plugin did): for a binary built outside `make image`.
func publishCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("publish-plugin", stderr)
	file := fs.String("file", "bin/awssigner", "plugin binary to publish (make build)")
	ref := fs.String("ref", "", "where to push: <registry>/<repository>:<tag>")
	plainHTTP := fs.Bool("plain-http", false, "talk HTTP to the registry (local registries)")
	version := fs.String("version", "", "org.opencontainers.image.version")
	if err := parse(fs, args); err != nil {
		return err
	}
	pinned, platform, err := release.PublishPlugin(ctx, *file, *ref, *version, *plainHTTP, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s (%s) as %s\nchart value (pinned by digest):\n  --set plugin.source.artifact=%s\n", *file, platform, *ref, pinned)
	return nil
}
