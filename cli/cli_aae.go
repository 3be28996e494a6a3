package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
)

// aaeStatusReply is the node's aae_status answer.
type aaeStatusReply struct {
	Mode         string         `msgpack:"mode" json:"mode"`
	Period       string         `msgpack:"period" json:"period"`
	Exchanges    int64          `msgpack:"exchanges" json:"exchanges"`
	KeysRepaired int64          `msgpack:"keys_repaired" json:"keys_repaired"`
	Running      int64          `msgpack:"running" json:"running"`
	Partitions   []aaeStatusRow `msgpack:"partitions" json:"partitions"`
}

type aaeStatusRow struct {
	Service      string `msgpack:"service" json:"service"`
	Partition    int    `msgpack:"partition" json:"partition"`
	Tree         string `msgpack:"tree" json:"tree"`
	Items        int64  `msgpack:"items" json:"items"`
	BuiltAt      string `msgpack:"built_at" json:"built_at"`
	Rebuilds     int64  `msgpack:"rebuilds" json:"rebuilds"`
	Exchanges    int64  `msgpack:"exchanges" json:"exchanges"`
	LastExchange string `msgpack:"last_exchange" json:"last_exchange"`
	LastResult   string `msgpack:"last_result" json:"last_result"`
	KeysRepaired int64  `msgpack:"keys_repaired" json:"keys_repaired"`
	NextExchange string `msgpack:"next_exchange" json:"next_exchange"`
}

const aaeUsage = `usage: gokai aae status [flags]

Shows the active anti-entropy of the node at --addr: per service and partition, the hash trees' state
(built, rebuilding: the old trees answer meanwhile, building: no trees yet) and item count, the exchanges
run, the last one's time and result, the keys repaired and when the next exchange is due.`

func cliAAE(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(stderr, aaeUsage)
		if len(args) == 0 {
			return usageErr("aae: want a subcommand (status)")
		}
		return usageErr("aae: unknown subcommand %q", args[0])
	}
	ctx, c, cf, done, err := adminCmd(ctx, "aae status", aaeUsage, args[1:], stderr)
	if err != nil {
		return err
	}
	defer done()
	var st aaeStatusReply
	if err := c.Call(ctx, "aae_status", nil, &st, true); err != nil {
		return fmt.Errorf("aae status: %w", err)
	}
	if cf.json {
		return writeJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "anti-entropy %s, exchange period %s: %d exchanges, %d keys repaired, %d running\n",
		st.Mode, st.Period, st.Exchanges, st.KeysRepaired, st.Running)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPARTITION\tTREE\tITEMS\tEXCHANGES\tLAST EXCHANGE\tREPAIRED\tNEXT EXCHANGE\tLAST RESULT")
	for _, r := range st.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", r.Service, r.Partition, r.Tree, r.Items, r.Exchanges,
			dash(r.LastExchange), r.KeysRepaired, dash(r.NextExchange), dash(r.LastResult))
	}
	return tw.Flush()
}
