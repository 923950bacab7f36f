// Command demo-cluster shows both admission paths as a cluster user sees
// them, on one machine with no Docker and no AWS account: the control
// plane of `make e2e` (etcd, kube-apiserver, Gatekeeper), the Ratify path
// (ratify serve with the awssigner plugin, the chart installed with helm)
// and the provider path (awssigner serve, no Ratify) side by side, then
// `kubectl run` of a signed image, an unsigned one, one signed by another
// profile and one whose signature is revoked through the AWS Signer
// emulator, on each path. It stops everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/signer"

	"github.com/ratify-aws-signer/ratify-aws-signer/test/e2e"
	"github.com/ratify-aws-signer/ratify-aws-signer/test/harness"
)

const (
	nsRatify   = "demo-ratify"
	nsProvider = "demo-provider"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding kube-apiserver, gatekeeper, ratify, kubectl and awssigner")
	keep := flag.Bool("keep", false, "keep the run's directory (logs, kubeconfig)")
	flag.Parse()
	var procs e2e.Procs
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\ninterrupted: stopping every process started")
		procs.StopAll()
		os.Exit(1)
	}()
	err := run(&procs, *bin, *keep)
	procs.StopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo-cluster failed:", err)
		os.Exit(1)
	}
	fmt.Println("\nDone. Every process the demo started is stopped.")
}

var n int

func step(format string, a ...any) {
	n++
	fmt.Printf("\n[%d] %s\n", n, fmt.Sprintf(format, a...))
}

func run(procs *e2e.Procs, bin string, keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	bins, err := e2e.FindBins(bin)
	if err != nil {
		return err
	}
	awssigner := filepath.Join(bin, "awssigner")
	if _, err := os.Stat(awssigner); err != nil {
		return fmt.Errorf("%s missing: run `make demo-cluster`, which builds it", awssigner)
	}
	if err := e2e.MetricsPortFree(); err != nil {
		return err
	}
	root, err := harness.Root()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "awssigner-demo-cluster-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("\nKept %s (logs in logs/, kubeconfig).\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	step("An OCI registry and the AWS Signer emulator on loopback; signing profiles Team (trusted) and Other")
	stack, err := harness.NewStack(harness.StackOptions{Referrers: true, Dir: dir})
	if err != nil {
		return err
	}
	defer stack.Close()
	otherARN, _, err := stack.Emulator.CreateProfile("Other", 12)
	if err != nil {
		return err
	}
	fmt.Printf("    registry  %s\n    signer    %s\n    Team      %s\n    Other     %s\n", stack.Registry.Host, stack.Emulator.URL(), stack.ProfileARN, otherARN)
	refs, jobs := map[string]string{}, map[string]string{}
	for _, img := range []struct{ tag, profile string }{
		{"signed", stack.ProfileARN}, {"unsigned", ""}, {"other", otherARN}, {"revoked-on-provider", stack.ProfileARN}, {"revoked-on-ratify", stack.ProfileARN},
	} {
		ref, desc, err := stack.PushImage(ctx, "demo/app", img.tag)
		if err != nil {
			return err
		}
		refs[img.tag] = ref
		signedBy := "not signed"
		if img.profile != "" {
			if _, jobs[img.tag], err = stack.Sign(ctx, "demo/app", desc, img.profile); err != nil {
				return err
			}
			signedBy = "signed by " + img.profile[strings.LastIndex(img.profile, "/")+1:] + " (AWS Signer SignPayload)"
		}
		fmt.Printf("    pushed %-48s %s, %s\n", ref, desc.Digest.String()[:19]+"…", signedBy)
	}

	step("The control plane of `make e2e`: etcd, kube-apiserver, Gatekeeper (validating webhook failurePolicy Fail, mutating webhook), as processes")
	c, err := e2e.StartCluster(ctx, procs, e2e.ClusterOptions{Root: root, Dir: dir, Bins: bins, Namespaces: []string{nsRatify, nsProvider},
		Step: func(s string) { fmt.Printf("    %s\n", s) }})
	if err != nil {
		return err
	}
	defer c.Close()

	step("Ratify path in namespace %s: ratify serve v1.4.6 with the awssigner plugin, then `helm install` of the chart (Ratify mode, trusting Team)", nsRatify)
	if _, err := c.StartRatify(ctx, stack); err != nil {
		return err
	}
	vals := e2e.Merge(e2e.RatifyChartValues(stack, dir, bin, stack.ProfileARN), map[string]any{
		"policies": map[string]any{"constraints": map[string]any{"excludedNamespaces": []any{"kube-system", e2e.GatekeeperNamespace, nsProvider}}},
	})
	if _, err := c.InstallRatifyChart(ctx, "ratify-aws-signer", vals, "aws-signer-verified-images"); err != nil {
		return err
	}

	step("Provider path in namespace %s: awssigner serve (no Ratify), the chart's provider-mode Providers, Assigns and Constraint (trusting Team)", nsProvider)
	p, err := c.StartProviderPath(ctx, e2e.ProviderPathOptions{Binary: awssigner, Namespaces: []string{nsProvider},
		Values: e2e.ProviderValues(stack, e2e.TrustPolicyDoc([]string{stack.ProfileARN}))})
	if err != nil {
		return err
	}
	fmt.Printf("    awssigner serve at %s (config %s, reloaded every 2 s)\n    kubeconfig %s\n", p.Serve.URL, p.Serve.ConfigFile, c.CP.Kubeconfig)

	kc := kubectl{bin: bins.Kubectl, kubeconfig: c.CP.Kubeconfig, ctx: ctx}
	client, err := stack.Clients.Client(ctx, stack.Emulator.Region())
	if err != nil {
		return err
	}
	for _, path := range []struct{ name, ns, revoked, stored string }{
		{"Provider path (Gatekeeper → awssigner serve)", nsProvider, "revoked-on-provider", "stored with the digest awssigner serve verified: Gatekeeper's Assign asked its mutate endpoint"},
		{"Ratify path (Gatekeeper → Ratify → awssigner plugin)", nsRatify, "revoked-on-ratify", "stored as written: the chart's Ratify mode installs no mutation; Ratify's own mutation provider would pin it"},
	} {
		step("%s, namespace %s", path.name, path.ns)
		kc.run(path.ns, "signed", refs["signed"])
		kc.image(path.ns, "signed")
		fmt.Printf("      (%s)\n", path.stored)
		kc.run(path.ns, "unsigned", refs["unsigned"])
		kc.run(path.ns, "other", refs["other"])
		kc.run(path.ns, "before-revocation", refs[path.revoked])
		id := jobs[path.revoked][strings.LastIndex(jobs[path.revoked], "/")+1:]
		fmt.Printf("\n    aws signer revoke-signature --job-id %s --reason demo   (through the emulator)\n", id)
		if _, err := client.RevokeSignature(ctx, &signer.RevokeSignatureInput{JobId: aws.String(id), Reason: aws.String("demo")}); err != nil {
			return err
		}
		fmt.Println("    waiting 2.1 s for the cached \"not revoked\" answers to expire (revocation.cacheTTL 1s; Ratify's cache 1s)")
		time.Sleep(2100 * time.Millisecond)
		kc.run(path.ns, "after-revocation", refs[path.revoked])
	}
	step("Stopping every process started (by PID, in reverse order)")
	fmt.Println("    ratify, awssigner serve, Gatekeeper, kube-apiserver, etcd; then the registry and the emulator")
	return nil
}

// kubectl runs bin/kubectl against the control plane, printing the command
// and its output as a user would see them.
type kubectl struct {
	bin, kubeconfig string
	ctx             context.Context
}

func (k kubectl) do(args ...string) {
	fmt.Printf("\n    $ kubectl %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(k.ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	out, _ := cmd.CombinedOutput()
	// A denial is one long line: the webhook, the Constraint and image,
	// then causes joined by "; ", each on a line of its own here.
	r := strings.NewReplacer("denied the request: ", "denied the request:\n        ", "is not allowed: ", "is not allowed:\n        ", "; ", ";\n        ")
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("      " + r.Replace(line))
	}
}

func (k kubectl) run(ns, name, image string) {
	k.do("run", name, "-n", ns, "--image="+image, "--restart=Never")
}

func (k kubectl) image(ns, name string) {
	k.do("get", "pod", name, "-n", ns, "-o", "jsonpath={.spec.containers[0].image}{\"\\n\"}")
}
