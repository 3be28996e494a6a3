// Command gokai-counter is a gokai node that runs the counter service beside KV, with gokai's whole command
// line (package cli): `gokai-counter start` takes every `gokai start` flag, and the client and cluster
// commands are gokai's. It adds three client commands for the counter's msgpack-RPC methods:
//
//	gokai-counter incr NAME [BY]     counter.incr(NAME, BY): BY defaults to 1
//	gokai-counter decr NAME [BY]     counter.incr(NAME, -BY)
//	gokai-counter value NAME         counter.value(NAME)
//
// Why KV as well: a node of this binary is a gokai node with counters added, as a riak node runs riak_kv
// beside its applications: the memcache face, `get`/`put`, `gokai bench` and every tool that speaks to gokai
// keep working against it, and the counter runs in a key space of its own, so neither sees the other's
// data. A cluster must run the same services on every node: build every node from this binary.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/gokai-kv/gokai/cli"
	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/examples/counter"
)

func main() {
	cli.Main(cli.Program{
		Name:     "gokai-counter",
		Services: []cli.Service{cli.KV, cli.Fixed(counter.Service())},
		Commands: []cli.Command{incrCmd("incr", 1), incrCmd("decr", -1), valueCmd},
	})
}

// incrCmd is incr (sign 1) or decr (sign -1).
func incrCmd(name string, sign int64) cli.Command {
	return cli.Command{
		Name:    name,
		Summary: fmt.Sprintf("%s NAME [BY]: counter.incr(NAME, %sBY); BY defaults to 1", name, map[int64]string{1: "", -1: "-"}[sign]),
		Usage: fmt.Sprintf("%s [flags] NAME [BY]\n\n", name) +
			"Adds BY (default 1; incr takes a negative BY after --) to the counter NAME. An error other than a bad\n" +
			"request leaves it indeterminate: the increment may have been applied.",
		MinArgs: 1, MaxArgs: 2,
		Run: func(ctx context.Context, c *client.Client, args []string, asJSON bool, stdout io.Writer) error {
			by := int64(1)
			if len(args) == 2 {
				v, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || v > counter.MaxBy || v < -counter.MaxBy {
					return cli.Usage("%s: BY %q: want an integer with |BY| < 2^53", name, args[1])
				}
				by = v
			}
			var ok bool
			if err := c.Call(ctx, "counter.incr", []any{args[0], sign * by}, &ok, false); err != nil {
				return fmt.Errorf("%s %q: %w", name, args[0], err)
			}
			if asJSON {
				return json.NewEncoder(stdout).Encode(map[string]any{"ok": ok})
			}
			_, err := fmt.Fprintln(stdout, "ok")
			return err
		},
	}
}

var valueCmd = cli.Command{
	Name:    "value",
	Summary: "value NAME: counter.value(NAME), read at R and merged",
	Usage:   "value [flags] NAME\n\nPrints the counter NAME's value (0 for a counter no one incremented).",
	MinArgs: 1, MaxArgs: 1,
	Run: func(ctx context.Context, c *client.Client, args []string, asJSON bool, stdout io.Writer) error {
		var v int64
		if err := c.Call(ctx, "counter.value", []any{args[0]}, &v, true); err != nil {
			return fmt.Errorf("value %q: %w", args[0], err)
		}
		if asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"name": args[0], "value": v})
		}
		_, err := fmt.Fprintln(stdout, v)
		return err
	},
}
