// Command awssigner is a Ratify v1 external verifier for AWS Signer
// Notation signatures. Ratify runs it once per signature; see
// internal/ratifyv1 for the contract and internal/verification for what is
// checked.
package main

import (
	"time"

	// Ratify's skel rebuilds the ORAS referrer store inside the plugin;
	// the store registers itself only when this package is linked.
	_ "github.com/ratify-project/ratify/pkg/referrerstore/oras"

	"github.com/ratify-aws-signer/ratify-aws-signer/internal/ratifyv1"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "0.1.0"

func main() {
	started := time.Now()
	ratifyv1.Main(version, started)
}
