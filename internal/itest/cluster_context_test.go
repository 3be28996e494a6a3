package itest

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// Writes without a causal context on a cluster of three processes: they supersede nothing (Riak's rule), so
// no acknowledged write is lost to a concurrent one its writer never saw. Blind writes happen only when asked.

// getsMany reads keys with one multi-gets and returns every sibling value of each key found.
func (m *mcConn) getsMany(keys []string) (map[string][]string, error) {
	return m.retrieve("gets", keys)
}

// add sends one add and reports whether it was STORED (false: NOT_STORED; anything else is an error).
func (m *mcConn) add(key, value string) (bool, error) {
	_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(m.c, "add %s 0 0 %d\r\n%s\r\n", key, len(value), value); err != nil {
		return false, err
	}
	line, err := m.r.ReadString('\n')
	switch {
	case err != nil:
		return false, err
	case line == "STORED\r\n":
		return true, nil
	case line == "NOT_STORED\r\n":
		return false, nil
	}
	return false, fmt.Errorf("add %s: %q", key, line)
}

// spanningKey finds a key (prefix-0, prefix-1, ...) whose preference list has a primary on each of the
// three nodes, and returns it with each node's partition for it.
func spanningKey(t *testing.T, c *client.Client, prefix string) (string, map[string]int) {
	t.Helper()
	for i := range 200 {
		key := fmt.Sprintf("%s-%d", prefix, i)
		ctx, cancel := shortCtx()
		pl, err := c.Preflist(ctx, []byte(key))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		part := map[string]int{}
		for _, e := range pl {
			if e.Primary {
				part[e.Node] = e.Partition
			}
		}
		if len(part) == 3 {
			return key, part
		}
	}
	t.Fatalf("no key %s-N has primaries on three nodes", prefix)
	return "", nil
}

// waitReplicaHolds polls node's replica of key (partition p) until it holds every value of want.
func waitReplicaHolds(t *testing.T, c *client.Client, node string, p int, key string, want ...string) {
	t.Helper()
	eventually.NoError(t, 20*time.Second, fmt.Sprintf("%s's replica of %s (partition %d) holds %q", node, key, p, want), func() error {
		ctx, cancel := shortCtx()
		defer cancel()
		o, err := readReplica(ctx, c, p, key)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !slices.ContainsFunc(o.Values, func(v []byte) bool { return string(v) == w }) {
				return fmt.Errorf("holds %+v", o)
			}
		}
		return nil
	})
}

// sortedValues returns the values of an object, sorted.
func sortedValues(o *client.Object) []string {
	var out []string
	for _, v := range o.Values {
		out = append(out, string(v.Data))
	}
	sort.Strings(out)
	return out
}

func TestClusterWritesWithoutContext(t *testing.T) {
	names := []string{"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"}
	cl := formFailureCluster(t, names...)
	byName := map[string]*cnode{}
	for _, n := range cl.nodes {
		byName[n.name] = n
	}

	// Two clients add each key at once through two different nodes (a different pair for each key). Every
	// value answered STORED must be there afterwards, read through any node: when both were STORED (a race:
	// both reads missed), as two siblings.
	t.Run("memcache add race", func(t *testing.T) {
		const maxKeys, wantRaces = 1000, 150
		bound := time.Now().Add(90 * time.Second)
		conns := map[string]*mcConn{}
		for _, name := range names {
			for _, side := range []string{"a", "b"} {
				c, err := dialMCConn(byName[name].mcAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns[name+"/"+side] = c
			}
		}
		stored := map[string][]string{} // key -> values answered STORED
		var keys []string
		races := 0
		for i := 0; i < maxKeys && time.Now().Before(bound) && (i < 300 || races < wantRaces); i++ {
			key := fmt.Sprintf("addrace-%05d", i)
			keys = append(keys, key)
			via := [2]string{names[i%3], names[(i+1)%3]}
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				ok    [2]bool
				errs  [2]error
			)
			for j, side := range []string{"a", "b"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					ok[j], errs[j] = conns[via[j]+"/"+side].add(key, fmt.Sprintf("%s-via-%s", key, via[j]))
				}()
			}
			close(start)
			wg.Wait()
			for j := range 2 {
				if errs[j] != nil {
					t.Fatalf("add %s via %s: %v", key, via[j], errs[j])
				}
				if ok[j] {
					stored[key] = append(stored[key], fmt.Sprintf("%s-via-%s", key, via[j]))
				}
			}
			switch len(stored[key]) {
			case 0:
				t.Fatalf("add %s: neither add was STORED", key)
			case 2:
				races++
			}
		}

		lost := map[string]bool{} // "key=value" of acknowledged values missing from a read through some node
		lostRaced := 0
		var examples, unexpected []string
		for _, name := range names {
			got := map[string][]string{}
			for i := 0; i < len(keys); i += 100 {
				part, err := conns[name+"/a"].getsMany(keys[i:min(i+100, len(keys))])
				if err != nil {
					t.Fatalf("gets through %s: %v", name, err)
				}
				for k, vs := range part {
					got[k] = vs
				}
			}
			for _, key := range keys {
				for _, v := range stored[key] {
					if !slices.Contains(got[key], v) {
						if !lost[key+"="+v] && len(stored[key]) == 2 {
							lostRaced++
						}
						lost[key+"="+v] = true
						if len(examples) < 5 {
							examples = append(examples, fmt.Sprintf("%s via %s: %q, stored %q", key, name, got[key], stored[key]))
						}
					}
				}
				for _, v := range got[key] {
					if !slices.Contains(stored[key], v) {
						unexpected = append(unexpected, fmt.Sprintf("%s via %s: %q, stored %q", key, name, got[key], stored[key]))
					}
				}
			}
		}
		t.Logf("%d keys, each added by two clients at once through two nodes: %d races (both STORED); "+
			"%d acknowledged values lost (%d of them in races), read back through each of the 3 nodes",
			len(keys), races, len(lost), lostRaced)
		if len(lost) > 0 {
			t.Fatalf("%d acknowledged values lost, e.g. %v", len(lost), examples)
		}
		if len(unexpected) > 0 {
			t.Fatalf("%d reads returned a value that was not STORED, e.g. %v", len(unexpected), unexpected[:min(5, len(unexpected))])
		}
		if races == 0 {
			t.Fatalf("no race in %d keys: the test exercised nothing", len(keys))
		}
	})

	// msgpack-RPC and the Go client: puts without a context through two nodes leave two siblings even when
	// the second node's replica had the first value before it coordinated the second; a blind put
	// supersedes what its coordinating replica holds.
	for _, api := range []string{"raw", "client"} {
		t.Run("put without context "+api, func(t *testing.T) {
			key, part := spanningKey(t, cl.cls[names[0]], "nocontext-"+api)
			put := func(via, value string, blind bool) {
				t.Helper()
				ctx, cancel := shortCtx()
				defer cancel()
				var err error
				if api == "raw" {
					opts := map[string]any{}
					if blind {
						opts["blind"] = true
					}
					err = cl.cls[via].Call(ctx, "put", []any{[]byte(key), []byte(value), nil, opts}, nil, false)
				} else {
					_, err = cl.cls[via].Put(ctx, []byte(key), []byte(value), nil, &client.WriteOptions{Blind: blind})
				}
				if err != nil {
					t.Fatalf("put %s via %s: %v", value, via, err)
				}
			}
			read := func(via string) []string {
				t.Helper()
				ctx, cancel := shortCtx()
				defer cancel()
				o, err := cl.cls[via].Get(ctx, []byte(key), nil)
				if err != nil {
					t.Fatalf("get via %s: %v", via, err)
				}
				return sortedValues(o)
			}
			put(names[0], "x", false)
			waitReplicaHolds(t, cl.cls[names[1]], names[1], part[names[1]], key, "x")
			put(names[1], "y", false)
			for _, name := range names {
				if got := read(name); !slices.Equal(got, []string{"x", "y"}) {
					t.Fatalf("get via %s after two puts without a context: %q, want x and y", name, got)
				}
			}
			waitReplicaHolds(t, cl.cls[names[2]], names[2], part[names[2]], key, "x", "y")
			put(names[2], "z", true)
			for _, name := range names {
				if got := read(name); !slices.Equal(got, []string{"z"}) {
					t.Fatalf("get via %s after a blind put: %q, want z alone", name, got)
				}
			}
		})
	}
}
