package itest

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// Active anti-entropy across processes: 3 nodes, N=3, short exchange periods by flag. Nothing reads the
// keys through a coordinator (vnode_get reads one replica below it, with no repair), so only the exchanges
// can put lost replicas back.

// aaeFlags run exchanges every 2s, fast enough for a test and far faster than a production default, and a
// verifying rebuild of every vnode's trees every 4s (each must find the trees in step with storage).
var aaeFlags = append(append([]string{}, failureFlags...), "-aae-exchange-period", "2s", "-aae-concurrency", "4",
	"-aae-repair-rate", "20000", "-aae-rebuild-period", "4s")

// aaeStats is the part of `stats` these tests read.
type aaeStats struct {
	Exchanges    int64 `msgpack:"gokai_aae_exchanges"`
	Errors       int64 `msgpack:"gokai_aae_exchange_errors"`
	KeysRepaired int64 `msgpack:"gokai_aae_keys_repaired"`
	ReadRepairs  int64 `msgpack:"gokai_read_repairs"`
	RepairErrors int64 `msgpack:"gokai_aae_repair_errors"`
	Mismatches   int64 `msgpack:"gokai_aae_tree_rebuild_mismatches"`
	Rebuilds     int64 `msgpack:"gokai_aae_tree_rebuilds"`
}

func (cl *cluster) aaeStats(t *testing.T, name string) aaeStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s aaeStats
	if err := cl.cls[name].Call(ctx, "stats", nil, &s, true); err != nil {
		t.Fatalf("%s: stats: %v", name, err)
	}
	return s
}

// deleteMany deletes keys over memcache. It returns the deletes the cluster acknowledged, and those it did
// not answer with DELETED after retries (indeterminate: a failed delete may still have been applied).
func deleteMany(t *testing.T, addr string, keys []string) (deleted, unsure []string) {
	t.Helper()
	m := dialMC(t, addr)
	for _, k := range keys {
		var got string
		// NB: right after a cluster formed a request can fail (a replica still moving); a retry is a
		// delete again, harmless.
		eventually.WithinEvery(5*time.Second, 100*time.Millisecond, func() bool {
			got = m.do("delete " + k + "\r\n")
			return got == "DELETED\r\n"
		})
		if got == "DELETED\r\n" {
			deleted = append(deleted, k)
		} else {
			unsure = append(unsure, k)
		}
	}
	return deleted, unsure
}

// TestAAERestoresAWipedNodeWithoutReads: a node whose key store was deleted (its data-dir/leveldb: the
// disk with the data replaced; its cluster membership stays) gets every key back on each of its primary
// vnodes from the exchanges alone; keys deleted before stay deleted there; then the repairs stop.
func TestAAERestoresAWipedNodeWithoutReads(t *testing.T) {
	cl := newCluster(t)
	for _, name := range []string{fn1, fn2, fn3} {
		cl.add(name, aaeFlags...)
	}
	for _, n := range cl.nodes[1:] {
		cl.join(n, cl.nodes[0])
	}
	cl.waitStaged(cl.nodes[0], 2)
	cl.cli(cl.nodes[0], "cluster", "commit")
	cl.settled(60*time.Second, cl.names(), nil)

	acked := newAcked()
	preload(t, cl.nodes[0].mcAddr, "aae", 3000, 4, acked)
	want := acked.snapshot()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	deleted, unsure := deleteMany(t, cl.nodes[1].mcAddr, keys[:300])
	if len(deleted) < 250 {
		t.Fatalf("only %d of 300 deletes acknowledged", len(deleted))
	}
	for _, k := range append(deleted, unsure...) {
		delete(want, k) // NB: an unsure delete's key is checked neither as live nor as deleted
	}
	waitCoordinatorsIdle(t, cl, cl.names(), 30*time.Second)

	victim := cl.nodes[2]
	if err := victim.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", victim.name, err)
	}
	if err := os.RemoveAll(filepath.Join(victim.dataDir, "leveldb")); err != nil {
		t.Fatal(err)
	}
	back := victim.restart(t)
	restarted := time.Now()
	cl.replace(back)

	var other = cl.cls[fn1]
	var live []string
	for k := range want {
		live = append(live, k)
	}
	parts := ownedPartitions(t, other, live, back.name)
	rs := keyReplicasOf(parts)
	if len(rs) < len(live) {
		t.Fatalf("%d replicas of %d keys on %s: N=3 on 3 nodes puts one on each", len(rs), len(live), back.name)
	}
	// Right after the restart the node holds nothing: the test would pass vacuously otherwise.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	o, err := readReplica(ctx, cl.cls[back.name], rs[0].partition, rs[0].key)
	cancel()
	if err != nil || o.Found {
		t.Logf("first replica read right after the restart: found=%v err=%v (exchanges may already have run)", o.Found, err)
	}
	wantVals := map[string][]string{}
	for k, v := range want {
		wantVals[k] = []string{v}
	}
	took := waitHolds(t, cl.cls[back.name], back.name+"'s primary vnodes", rs, wantVals, 60*time.Second)
	t.Logf("%d keys (%d replicas) back on %s's primary vnodes %v after its restart (%v of polling); exchange period 2s",
		len(live), len(rs), back.name, time.Since(restarted).Round(time.Millisecond), took.Round(time.Millisecond))

	// Deleted keys stay deleted on the wiped node's vnodes.
	delParts := ownedPartitions(t, other, deleted, back.name)
	for _, r := range keyReplicasOf(delParts) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		o, err := readReplica(ctx, cl.cls[back.name], r.partition, r.key)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if o.Found {
			t.Fatalf("deleted key %s is live again in %s/%d: %q", r.key, back.name, r.partition, o.Values)
		}
	}

	// Quiet: once converged, two more full periods of exchanges on every node repair nothing. (Each node
	// plans 64 sources x 2 peers = 128 exchanges a period.)
	before := map[string]aaeStats{}
	for _, name := range cl.names() {
		before[name] = cl.aaeStats(t, name)
	}
	eventually.True(t, 60*time.Second, "two more exchange periods on every node", func() bool {
		for _, name := range cl.names() {
			if cl.aaeStats(t, name).Exchanges < before[name].Exchanges+256 {
				return false
			}
		}
		return true
	})
	var repaired int64
	for _, name := range cl.names() {
		s := cl.aaeStats(t, name)
		if s.KeysRepaired != before[name].KeysRepaired {
			t.Errorf("%s repaired %d keys after convergence", name, s.KeysRepaired-before[name].KeysRepaired)
		}
		if s.Mismatches != 0 || s.Rebuilds == 0 {
			t.Errorf("%s: %d verifying rebuilds, %d found the trees out of step with storage", name, s.Rebuilds, s.Mismatches)
		}
		if s.ReadRepairs != before[name].ReadRepairs {
			t.Errorf("%s: %d read repairs after convergence", name, s.ReadRepairs-before[name].ReadRepairs)
		}
		repaired += s.KeysRepaired
	}
	if repaired < int64(len(live)) {
		t.Fatalf("the nodes repaired %d keys in all, fewer than the %d the wiped node lost", repaired, len(live))
	}
	t.Logf("keys repaired by the exchanges: %d", repaired)
}
