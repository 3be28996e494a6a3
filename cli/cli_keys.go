package cli

// gokai keys: list (or count) a node's live keys over msgpack-RPC list_keys and count, page by page, with
// a progress line on stderr.

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/gokai-kv/gokai/client"
)

// keysPage is how many keys the CLI asks for per page.
const keysPage = 1000

func cliKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newCLIFlagSet("keys", "keys [flags]\n\nLists the cluster's live keys, each once (deleted and expired keys are left out), in no\n"+
		"particular order, one per line: as text when printable UTF-8, else as 0x-prefixed hex. A progress line\n"+
		"(keys so far, hash partitions done of the ring's) goes to stderr. --timeout applies to each page.", stderr, &cf)
	prefix := fs.String("prefix", "", "only keys that start with this prefix")
	count := fs.Bool("count", false, "print how many keys there are instead of listing them")
	maxKeys := fs.Int("max", 0, "stop after this many keys (0 = all)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return usageErr("keys: unexpected arguments")
	}
	if *maxKeys < 0 {
		return usageErr("keys: --max %d: want 0 or more", *maxKeys)
	}
	var pfx []byte
	if *prefix != "" {
		pfx = []byte(*prefix)
	}
	dctx, cancel := context.WithTimeout(ctx, cf.timeout)
	c, err := cf.dial(dctx)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	if *count {
		cctx, cancel := context.WithTimeout(ctx, cf.timeout)
		defer cancel()
		n, err := c.CountKeys(cctx, pfx)
		if err != nil {
			return fmt.Errorf("keys --count: %w", err)
		}
		if cf.json {
			return writeJSON(stdout, map[string]any{"count": n})
		}
		_, err = fmt.Fprintln(stdout, n)
		return err
	}
	listed := 0
	var cont []byte
	for {
		want := keysPage
		if *maxKeys > 0 {
			want = min(want, *maxKeys-listed)
		}
		pctx, cancel := context.WithTimeout(ctx, cf.timeout)
		// NB: a vnode silent for half the page's deadline is given up on, and its ranges asked of another
		// replica, in time for the page to answer.
		p, err := c.ListKeys(pctx, client.ListOptions{Prefix: pfx, MaxKeys: want, Continuation: cont, Timeout: cf.timeout / 2})
		cancel()
		if err != nil {
			fmt.Fprintln(stderr)
			return fmt.Errorf("keys: after %d keys: %w", listed, err)
		}
		for _, k := range p.Keys {
			if err := printKey(stdout, cf.json, k); err != nil {
				return err
			}
		}
		listed += len(p.Keys)
		fmt.Fprintf(stderr, "\rkeys: %d, partitions: %d/%d", listed, p.PartitionsDone, p.Partitions)
		cont = p.Continuation
		if cont == nil || (*maxKeys > 0 && listed >= *maxKeys) {
			fmt.Fprintln(stderr)
			return nil
		}
	}
}

// printKey writes one key: text when printable, else 0x-hex; with --json a JSON line {"key", "key_hex"}.
func printKey(w io.Writer, asJSON bool, k []byte) error {
	if asJSON {
		line := map[string]any{"key_hex": hex.EncodeToString(k)}
		if printable(k) {
			line["key"] = string(k)
		}
		return writeJSON(w, line)
	}
	s := string(k)
	if !printable(k) {
		s = "0x" + hex.EncodeToString(k)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}
