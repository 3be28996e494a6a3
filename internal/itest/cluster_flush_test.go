package itest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestClusterFlushAll: on a cluster of gokai processes (run again with certificates by the secure test:
// mutual TLS transport, signed states), flush_all through a node that is not the claimant hides every key
// on every node by the time it answers OK, and a set after it is seen everywhere.
func TestClusterFlushAll(t *testing.T) {
	cl := newCluster(t)
	cl.form([]string{"f1@127.0.0.1", "f2@127.0.0.1", "f3@127.0.0.1"}, "-memcache-flush-all")
	acks := newAcked()
	preload(t, cl.nodes[0].mcAddr, "fl-", 300, 2, acks)
	keys := make([]string, 0, 300)
	for k := range acks.snapshot() {
		keys = append(keys, k)
	}
	if len(keys) != 300 {
		t.Fatalf("acknowledged %d of 300 writes", len(keys))
	}
	// Every node sees every key first (a write that landed on fallbacks reaches the primaries by handoff).
	eventually.NoError(t, 60*time.Second, "every node reads every key", func() error {
		for _, n := range cl.nodes {
			got, err := getVia(n.mcAddr, keys)
			if err == nil && len(got) != len(keys) {
				err = fmt.Errorf("%s reads %d of %d keys", n.name, len(got), len(keys))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})

	m, err := dialMCConn(cl.nodes[2].mcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := m.c.Write([]byte("flush_all\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := m.r.ReadString('\n'); err != nil || line != "OK\r\n" {
		t.Fatalf("flush_all: %q %v", line, err)
	}
	for _, n := range cl.nodes {
		got, err := getVia(n.mcAddr, keys)
		if err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		if len(got) != 0 {
			t.Fatalf("%s still reads %d keys right after flush_all answered OK", n.name, len(got))
		}
	}
	if ok, err := m.setMany([][2]string{{"fl-000001", "after"}}); err != nil || !ok[0] {
		t.Fatalf("set after the flush: %v %v", ok, err)
	}
	eventually.NoError(t, 30*time.Second, "every node reads the set made after the flush", func() error {
		for _, n := range cl.nodes {
			got, err := getVia(n.mcAddr, []string{"fl-000001"})
			if err == nil && got["fl-000001"] != "after" {
				err = fmt.Errorf("%s reads %v", n.name, got)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// getVia reads keys through addr in multi-gets of 100.
func getVia(addr string, keys []string) (map[string]string, error) {
	m, err := dialMCConn(addr)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	out := map[string]string{}
	for i := 0; i < len(keys); i += 100 {
		got, err := m.getMany(keys[i:min(i+100, len(keys))])
		if err != nil {
			return nil, fmt.Errorf("get %s...: %w", strings.Join(keys[i:min(i+3, len(keys))], " "), err)
		}
		for k, v := range got {
			out[k] = v
		}
	}
	return out, nil
}
