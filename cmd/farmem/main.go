// Command farmem is the one binary of the farmem far-memory system: it runs a
// memory node, the pager daemon, the benchmarks and the persistent-memory tools.
//
// Each subcommand lives in its own file and registers itself from an init
// function with register, so that subcommands can be added without editing a
// shared list.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/uffd"
)

var subcommands []func() *cobra.Command

// register adds a subcommand constructor; it is called from init functions.
func register(newCmd func() *cobra.Command) { subcommands = append(subcommands, newCmd) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "farmem",
		Short:         "farmem: far memory over TCP and crash-consistent persistent memory",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmds := make([]*cobra.Command, 0, len(subcommands))
	for _, f := range subcommands {
		cmds = append(cmds, f())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	root.AddCommand(cmds...)
	return root
}

func main() {
	// A memnode child of the bench (or of a test) runs here and never returns.
	nodeproc.MaybeRun()
	// So does the minimal userfaultfd handler that measures the bare fault.
	uffd.MaybeRunHelper()
	if err := newRootCmd().Execute(); err != nil {
		// One line that names the problem, and a non-zero exit.
		fmt.Fprintf(os.Stderr, "farmem: %v\n", err)
		os.Exit(1)
	}
}
