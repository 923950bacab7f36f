// Command signer-emulator serves the AWS Signer emulator of package
// signeremu on a local port until it receives SIGINT or SIGTERM, so demo
// scripts and end-to-end tests in other processes can sign and verify
// against it and drive it through its /_emulator/ endpoints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/signeremu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "signer-emulator:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("signer-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	region := fs.String("region", "us-west-2", "region for requests whose SigV4 scope names none")
	account := fs.String("account", "111122223333", "account that owns profiles and jobs")
	rootPEM := fs.String("root-pem", "", "write the signing CA's root certificate (PEM) to this file")
	readyFile := fs.String("ready-file", "", "write the listening URL to this file once serving")
	verbose := fs.Bool("v", false, "log every API request to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := signeremu.Options{Addr: *addr, Region: *region, Account: *account}
	if *verbose {
		opts.Logf = log.New(stderr, "signer-emulator: ", log.LstdFlags).Printf
	}
	e, err := signeremu.Start(opts)
	if err != nil {
		return err
	}
	defer e.Close()
	if *rootPEM != "" {
		if err := writeAtomic(*rootPEM, e.CA().RootPEM()); err != nil {
			return fmt.Errorf("write root PEM: %w", err)
		}
	}
	fmt.Fprintf(stdout, "signer-emulator listening on %s\n", e.URL())
	if *readyFile != "" {
		if err := writeAtomic(*readyFile, []byte(e.URL())); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	<-ctx.Done()
	return e.Close()
}

// writeAtomic writes data so a reader polling for path never sees it half
// written.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signer-emulator-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
