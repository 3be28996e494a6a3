// Package cli is the command line of gokai binaries: `start` (a node with the program's services, every
// node setting a flag and a -config key), the client commands (get, put, delete, status, ring, members),
// the cluster commands (cluster join|leave|plan|commit|clear|status|keys, transfers), bench, certs and
// version. cmd/gokai is one line over it; a binary of other services is a few:
//
//	func main() {
//		cli.Main(cli.Program{
//			Name:     "gokai-counter",
//			Services: []cli.Service{cli.KV, cli.Fixed(counter.Service())},
//			Commands: []cli.Command{incr, value}, // client commands of its own
//		})
//	}
//
// A Program's Run is func(ctx, args, stdout, stderr) error, each command a function of the same shape;
// Main adds the process: signals, stdout, exit codes (0 ok, 1 not found, 2 usage, 3 server or connection
// error). The work is done by node (start), client (the client commands) and bench.
//
// It does not own the services (kv, and applications' own), the node (node), nor the client library
// (client). It imports kv for KV, the service gokai's own binary runs.
//
// Concurrency: a Program is a value holding no state; each Run parses its own flags.
package cli
