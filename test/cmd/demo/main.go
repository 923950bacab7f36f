// Command demo runs the AWS Signer procedure end to end on one machine with
// no AWS account: it starts a registry and the AWS Signer emulator on
// loopback, creates a signing profile, pushes and signs an image, verifies
// it with the real Ratify and the awssigner plugin, revokes the signing job
// and verifies again. It stops everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"
	"github.com/aws/aws-sdk-go-v2/service/signer/types"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding ratify and awssigner")
	flag.Parse()
	if err := run(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

func step(n int, format string, a ...any) {
	fmt.Printf("\n[%d] %s\n", n, fmt.Sprintf(format, a...))
}

func run(bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	ratify := filepath.Join(bin, "ratify")
	for _, p := range []string{ratify, filepath.Join(bin, "awssigner")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: run `make demo`, which builds it", p)
		}
	}
	dir, err := os.MkdirTemp("", "awssigner-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step(1, "Starting an OCI registry (referrers API) and the AWS Signer emulator on loopback")
	s, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("    registry  %s\n    signer    %s (real aws-sdk-go-v2 client, endpoint overridden)\n", s.Registry.Host, s.Emulator.URL())

	client, err := s.Clients.Client(ctx, "us-west-2")
	if err != nil {
		return err
	}
	step(2, "aws signer put-signing-profile --profile-name DemoProfile --platform-id Notation-OCI-SHA384-ECDSA")
	prof, err := client.PutSigningProfile(ctx, &signer.PutSigningProfileInput{
		ProfileName:             aws.String("DemoProfile"),
		PlatformId:              aws.String("Notation-OCI-SHA384-ECDSA"),
		SignatureValidityPeriod: &types.SignatureValidityPeriod{Type: types.ValidityTypeMonths, Value: 135},
	})
	if err != nil {
		return err
	}
	profileARN := aws.ToString(prof.Arn)
	fmt.Printf("    profile   %s\n    version   %s\n", profileARN, aws.ToString(prof.ProfileVersionArn))

	step(3, "Pushing an image")
	ref, desc, err := s.PushImage(ctx, "demo/app", "v1")
	if err != nil {
		return err
	}
	fmt.Printf("    %s\n    digest    %s\n", ref, desc.Digest)

	awssigner := filepath.Join(bin, "awssigner")
	rootPEM := filepath.Join(dir, "signer-root.pem")
	if err := os.WriteFile(rootPEM, s.Emulator.CA().RootPEM(), 0o600); err != nil {
		return err
	}
	step(4, "awssigner sign %s --profile-arn %s   (AWS Signer SignPayload, then push the Notation signature)", ref, profileARN)
	if _, err := cli(ctx, dir, awssigner, "sign", ref, "--profile-arn", profileARN, "--aws-endpoint", s.Emulator.URL(), "--plain-http"); err != nil {
		return err
	}
	jobs := s.Emulator.Jobs()
	if len(jobs) == 0 {
		return fmt.Errorf("the emulator ran no signing job")
	}
	jobID := jobs[len(jobs)-1].ID

	step(5, "awssigner verify %s --trusted-profile %s   (local check, same core as the plugin)", ref, profileARN)
	localVerify := []string{"verify", ref, "--trusted-profile", profileARN, "--trust-store-pem", rootPEM, "--aws-endpoint", s.Emulator.URL(), "--plain-http"}
	if code, err := cli(ctx, dir, awssigner, localVerify...); err != nil || code != 0 {
		return fmt.Errorf("local verification: exit %d: %v", code, err)
	}

	cacheDir := filepath.Join(dir, "revocation-cache")
	cfg, err := s.RatifyConfig(bin, "all", s.VerifierConfig("verifier-awssigner", "strict", []string{profileARN}, map[string]any{
		"revocation": map[string]any{"timeout": "2s", "cacheTTL": "2s", "cacheDir": cacheDir},
	}))
	if err != nil {
		return err
	}
	step(6, "ratify verify -s %s   (Ratify v1.4.6 + awssigner plugin; strict, trusted identity %s)", ref, profileARN)
	if err := verify(ctx, ratify, dir, cfg, ref); err != nil {
		return err
	}
	step(7, "Verifying again: the revocation answer comes from the plugin's on-disk cache")
	if err := verify(ctx, ratify, dir, cfg, ref); err != nil {
		return err
	}
	fmt.Printf("    GetRevocationStatus calls so far: %d\n", s.Emulator.Count("GetRevocationStatus"))

	step(8, "aws signer revoke-signature --job-id %s --reason demo", jobID)
	if _, err := client.RevokeSignature(ctx, &signer.RevokeSignatureInput{JobId: aws.String(jobID), Reason: aws.String("demo")}); err != nil {
		return err
	}
	fmt.Println("    revoked; waiting 2s for the cached \"not revoked\" answer to expire (revocation.cacheTTL)")
	time.Sleep(2100 * time.Millisecond)

	step(9, "ratify verify -s %s", ref)
	if err := verify(ctx, ratify, dir, cfg, ref); err != nil {
		return err
	}
	step(10, "awssigner verify %s   (the laptop/CI check agrees)", ref)
	if code, err := cli(ctx, dir, awssigner, localVerify...); err != nil || code != 1 {
		return fmt.Errorf("local verification after revocation: exit %d (want 1, refused): %v", code, err)
	}
	fmt.Printf("\nDone. Every process and file the demo started or wrote is gone (%s removed).\n", dir)
	return nil
}

// cli runs the awssigner command line (no RATIFY_VERIFIER_COMMAND, so not
// the plugin) with the demo's fake AWS credentials, indenting its output.
func cli(ctx context.Context, dir, awssigner string, args ...string) (int, error) {
	cmd := exec.CommandContext(ctx, awssigner, args...)
	cmd.Env = harness.Env(dir)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("    " + line)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func verify(ctx context.Context, ratify, dir, cfg, ref string) error {
	out, err := harness.RatifyVerify(ctx, ratify, dir, cfg, ref)
	if err != nil {
		return err
	}
	verdict := "DENIED"
	if out.IsSuccess {
		verdict = "ADMITTED"
	}
	fmt.Printf("    Ratify verdict: %s (%s)\n", verdict, out.Duration.Round(time.Millisecond))
	for _, r := range out.VerifierReports {
		fmt.Printf("    report %s (%s) isSuccess=%t\n", r.Name, r.Type, r.IsSuccess)
		fmt.Printf("      message: %s\n", wrap(r.Message, 100, "               "))
		for _, k := range []string{"signingProfileArn", "signingJobArn", "signingTime", "expiry", "verificationLevel", "revocationStatus", "revocationCached", "revokedEntities", "reason"} {
			if v, ok := r.Extensions[k]; ok {
				fmt.Printf("      %-18s %v\n", k+":", v)
			}
		}
		if r.Type == "" && r.ErrorReason != "" {
			fmt.Printf("      error: %s\n", r.ErrorReason)
		}
	}
	return nil
}

func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(s) {
		if line > 0 && line+len(w)+1 > width {
			b.WriteString("\n" + indent)
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}
