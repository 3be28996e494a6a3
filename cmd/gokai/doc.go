// Command gokai is gokai's one binary: it runs a node and talks to one.
//
//	gokai start [flags]          run a node (embedded defaults: ./gokai-data, memcache on 127.0.0.1:11211,
//	                             msgpack-RPC on 127.0.0.1:11011, N=3 R=2 W=2 Q=64)
//	gokai get|put|delete KEY     the Dynamo API over msgpack-RPC (contexts, siblings, quorums)
//	gokai status|ring|members    admin views, as tables or --json
//	gokai cluster join|leave|plan|commit|clear|status   staged membership changes, riak style
//	gokai transfers [--watch]    partition transfers (ownership and hinted) across the cluster
//	gokai bench [flags]          load generator (memcache text, binary or meta; msgpack-RPC)
//	gokai bench table FILE...    one table of bench JSON reports, with ratios against a baseline
//	gokai version
//
// It is package cli's gokai program: a node running KV (cli.KV), with every command cli has. The command
// line itself is package cli, so a binary of other services (examples/counter/cmd/gokai-counter) takes the
// same flags and commands.
//
// `gokai start -h` lists every setting; each can also be given in a config file (`-config FILE`, lines of
// `name = value` with the flag names).
package main
