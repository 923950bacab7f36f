// Command awssigner verifies AWS Signer Notation signatures.
//
// Run by Ratify (RATIFY_VERIFIER_COMMAND set) it is a Ratify v1 external
// verifier, run once per signature; see internal/ratifyv1 for the contract
// and internal/verification for what is checked. Run by a person it is the
// awssigner command line (verify, inspect, sign, policy init); see
// internal/cli.
package main

import (
	"os"
	"time"

	// Ratify's skel rebuilds the ORAS referrer store inside the plugin;
	// the store registers itself only when this package is linked.
	_ "github.com/ratify-project/ratify/pkg/referrerstore/oras"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/cli"
	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifyv1"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "0.1.0"

func main() {
	started := time.Now()
	if _, ok := os.LookupEnv(ratifyv1.EnvCommand); ok {
		ratifyv1.Main(version, started)
		return
	}
	os.Exit(cli.Main(os.Args[1:], version))
}
