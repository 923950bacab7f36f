// Command kubectl is kubectl v0.36 (k8s.io/kubectl, pinned in this module's
// go.mod), for the end-to-end test, which runs the chart's hook Job
// commands with it: `make e2e` builds it into bin/kubectl. It is the main
// of k8s.io/kubernetes/cmd/kubectl, without that module's staging replaces.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
