package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gokai-kv/gokai/internal/pki"
)

const certsUsage = `usage: gokai certs <command> [flags]

commands:
  create-ca               a new cluster CA (ca.crt, ca.key) and gossip key (gossip.key) in --certs-dir
  create-node NAME        NAME's node certificate (node.crt, node.key), signed by the CA; NAME is the
                          node's -name; --host adds addresses it is reached at
  create-client NAME      an operator's certificate (client.NAME.crt, client.NAME.key)
  gossip-key              print a new gossip key, for gokai cluster keys install

A node runs with -certs-dir holding ca.crt, gossip.key and its own node.crt/node.key; keep ca.key where
certificates are made, not on the nodes (--ca-key points to it).
`

func certsCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, certsUsage)
		return usageErr("certs: no command")
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("gokai certs "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("certs-dir", "certs", "the certificates directory")
	caKey := fs.String("ca-key", "", "the CA key (default: ca.key in --certs-dir)")
	var hosts multiFlag
	fs.Var(&hosts, "host", "a DNS name or IP the node is reached at (repeatable; the host of NAME, localhost and 127.0.0.1 are always added)")
	switch sub {
	case "create-ca", "create-node", "create-client", "gossip-key":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, certsUsage)
		return nil
	default:
		fmt.Fprint(stderr, certsUsage)
		return usageErr("certs: unknown command %q", sub)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	want := map[string]int{"create-ca": 0, "create-node": 1, "create-client": 1, "gossip-key": 0}[sub]
	if len(pos) != want {
		return usageErr("certs %s: want %d argument(s), got %d", sub, want, len(pos))
	}
	now := time.Now()
	switch sub {
	case "create-ca":
		err = pki.CreateCA(*dir, now)
		if err == nil {
			fmt.Fprintf(stdout, "created %s, %s and %s in %s\n", pki.CACert, pki.CAKey, pki.GossipKey, *dir)
		}
	case "create-node":
		err = pki.CreateNode(*dir, *caKey, pos[0], hosts, now)
		if err == nil {
			fmt.Fprintf(stdout, "created %s and %s for node %s in %s\n", pki.NodeCert, pki.NodeKey, pos[0], *dir)
		}
	case "create-client":
		err = pki.CreateClient(*dir, *caKey, pos[0], now)
		if err == nil {
			fmt.Fprintf(stdout, "created %s and %s in %s\n", pki.ClientCert(pos[0]), pki.ClientKey(pos[0]), *dir)
		}
	case "gossip-key":
		var k [32]byte
		if _, err = rand.Read(k[:]); err == nil {
			fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k[:]))
		}
	}
	if errors.Is(err, pki.ErrExists) {
		return &exitError{code: exitUsage, err: fmt.Errorf("certs %s: %w (nothing was overwritten)", sub, err)}
	}
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return &exitError{code: exitUsage, err: fmt.Errorf("certs %s: %w (in %s)", sub, err, filepath.Clean(*dir))}
	}
	return err
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
