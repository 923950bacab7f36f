// Command release builds and publishes the release artifacts (see
// docs/release.md):
//
//	release image [-repo .] [-commit HEAD] [-version v] [-dist dist]
//	release push  -registry <host>[/<path>] [-tag t] [-profile-arn ARN] [-awssigner path] [-plain-http] [-ratify-base ref@digest]
//	release refs  [-registry r] [-tag t]
//	release publish-plugin -file bin/awssigner -ref <registry>/<repository>:<tag> [-plain-http] [-version v]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ratify-aws-signer/ratify-aws-signer/tools/release/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "release: failed")
	}
	os.Exit(code)
}
