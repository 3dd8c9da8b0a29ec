package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/defenderharvester/defenderharvester/internal/source"
)

func init() {
	register(command{name: "sources", summary: "list the data sets this version can harvest", run: runSources})
}

func runSources(_ context.Context, env *Env, args []string) int {
	fs := newFlagSet(env, "sources", "sources")
	if code, ok := parseFlags(fs, env, args); !ok {
		return code
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tTABLE\tKIND\tAPI\tIN all\tSCHEDULE\tDESCRIPTION")
	for _, f := range source.All() {
		inAll := "yes"
		if !f.DefaultEnabled {
			inAll = "when configured"
		}
		table := f.Table
		if len(f.Tables) > 0 {
			// A source writing several tables (docs/sources.md names them).
			table += fmt.Sprintf(" +%d more", len(f.Tables))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, table, f.Kind, f.API, inAll, f.ScheduleOrDefault(), f.Description)
	}
	tw.Flush()
	return exitOK
}
