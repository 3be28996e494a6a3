package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// memcacheChild starts a node process that serves memcache with flush_all allowed (data in dir, or a fresh
// temp dir when dir is ""), and returns it with its memcache address.
func memcacheChild(t testing.TB, name, dir string) (*child, string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ch := startChild(t, name, "-data-dir", dir, "-memcache-listen", "127.0.0.1:0", "-memcache-flush-all", "-n", "2")
	ch.dir = dir
	var st struct {
		Node    string `msgpack:"node"`
		Members []struct {
			Name     string `msgpack:"name"`
			Memcache string `msgpack:"memcache_addr"`
		} `msgpack:"members"`
	}
	if err := ch.call("cluster_status", nil, &st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Name == st.Node && m.Memcache != "" {
			return ch, m.Memcache
		}
	}
	t.Fatalf("%s tells no memcache address: %+v", name, st)
	return nil, ""
}

// hits reports the keys of keys that addr finds (one get per key: each is routed on its own). A reply
// other than a value or a miss fails the test.
func hits(t testing.TB, addr string, keys []string) []string {
	t.Helper()
	found, err := hitsErr(t, addr, keys)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// hitsErr is hits, but a reply other than a value or a miss is an error (a node still catching up).
func hitsErr(t testing.TB, addr string, keys []string) ([]string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // NB: beyond a node's request timeout
	r := bufio.NewReader(c)
	var found []string
	for _, k := range keys {
		if _, err := io.WriteString(c, "get "+k+"\r\n"); err != nil {
			return nil, err
		}
		line, err := r.ReadString('\n')
		switch {
		case err != nil:
			return nil, err
		case line == "END\r\n":
		case strings.HasPrefix(line, "VALUE "):
			for line != "END\r\n" {
				if line, err = r.ReadString('\n'); err != nil {
					return nil, err
				}
			}
			found = append(found, k)
		default:
			return nil, fmt.Errorf("%s: get %s: %q", addr, k, line)
		}
	}
	return found, nil
}

// set stores key=val through addr. A SERVER_ERROR (a replica not reachable yet right after the cluster
// formed or a node returned: a timeout) is retried: the write was not acknowledged.
func set(t testing.TB, addr, key, val string) {
	t.Helper()
	eventually.NoError(t, 60*time.Second, "set "+key, func() error {
		got, err := firstLine(addr, fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val))
		switch {
		case err != nil:
			return err
		case strings.HasPrefix(got, "SERVER_ERROR"):
			return errors.New(got)
		case got != "STORED":
			t.Fatalf("set %s: %q", key, got)
		}
		return nil
	})
}

// firstLine sends req on a new connection to addr and returns the first line of the reply (without CRLF).
// It waits longer than a node's request timeout, so a request that times out in the node is answered.
func firstLine(addr, req string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// noHits checks that no node finds any of keys: a read that fails (a timeout under load) is retried, a
// hit fails the test at once.
func noHits(t testing.TB, addrs []string, keys []string, when string) {
	t.Helper()
	eventually.NoError(t, 60*time.Second, "every node answers for every key", func() error {
		for _, addr := range addrs {
			h, err := hitsErr(t, addr, keys)
			if err != nil {
				return err
			}
			if len(h) != 0 {
				t.Fatalf("%s finds %v %s", addr, h, when)
			}
		}
		return nil
	})
}

// reply sends a retrieval request to addr and returns its reply up to END (or an error line).
func reply(addr, req string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "END\r\n" || strings.HasSuffix(line, "ERROR\r\n") || strings.HasPrefix(line, "SERVER_ERROR") {
			return b.String(), err
		}
	}
}

// allVisible waits until every node finds every key. NB: under load a write can land on fallbacks (sloppy
// quorum) and be missed by a read of the primaries until hinted handoff brings it back: the flush tests
// start from keys every node sees.
func allVisible(t testing.TB, addrs []string, keys []string) {
	t.Helper()
	eventually.NoError(t, 60*time.Second, "every node finds every key", func() error {
		for _, addr := range addrs {
			h, err := hitsErr(t, addr, keys)
			if err == nil && len(h) != len(keys) {
				err = fmt.Errorf("%s finds %d of %d keys", addr, len(h), len(keys))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// statOf reads one stat of `stats` on addr.
func statOf(t *testing.T, addr, name string) string {
	t.Helper()
	out := dial(t, addr).do("stats\r\n", "END")
	for _, l := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(l, "STAT "+name+" "); ok {
			return v
		}
	}
	t.Fatalf("no stat %s in %q", name, out)
	return ""
}

// TestFlushAllAcrossTheCluster: flush_all on one node of three hides every key on every node at once
// (keys that node holds and keys it does not), a set right after it is seen, a delayed flush hides the
// values stored before its time only from that time on, a node that was down during a flush hides the
// flushed keys when it returns, and a node that cannot reach the claimant answers an error and flushes
// nothing.
func TestFlushAllAcrossTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	a, aMC := memcacheChild(t, "a", "")
	b, bMC := memcacheChild(t, "b", "")
	c, cMC := memcacheChild(t, "c", "")
	for _, ch := range []*child{b, c} {
		if err := ch.call("cluster_join", []any{a.transport}, nil); err != nil {
			t.Fatalf("%s joins: %v", ch.name, err)
		}
	}
	commit(t, a, 2)
	settled(t, []*child{a, b, c}, "a", "b", "c")
	addrs := []string{aMC, bMC, cMC}

	// Keys set through every node. N=2: each node holds only some of them.
	var keys []string
	for i := range 90 {
		k := fmt.Sprintf("k%d", i)
		set(t, addrs[i%3], k, "v"+strconv.Itoa(i%10))
		keys = append(keys, k)
	}
	allVisible(t, addrs, keys)

	// flush_all through b, which is not the claimant: every node misses every key at once.
	start := time.Now()
	if got := dial(t, bMC).do("flush_all\r\n", ""); got != "OK\r\n" {
		t.Fatalf("flush_all: %q", got)
	}
	t.Logf("flush_all on a 3-node cluster through a non-claimant: %v", time.Since(start))
	noHits(t, addrs, keys, "right after the flush")
	if got := statOf(t, bMC, "cmd_flush"); got != "1" {
		t.Errorf("b's cmd_flush = %s, want 1", got)
	}
	for _, addr := range addrs {
		if ep, _ := strconv.ParseInt(statOf(t, addr, "gokai_flush_epoch_kv"), 10, 64); ep < start.UnixNano() {
			t.Errorf("%s's gokai_flush_epoch_kv = %d, want at least %d", addr, ep, start.UnixNano())
		}
	}
	// A set and an add right after the flush are seen everywhere.
	cc := dial(t, cMC)
	if got := cc.do("set k1 0 0 3\r\nnew\r\n", ""); got != "STORED\r\n" {
		t.Fatalf("set after the flush: %q", got)
	}
	if got := cc.do("add k2 0 0 3\r\nadd\r\n", ""); got != "STORED\r\n" {
		t.Fatalf("add after the flush: %q", got)
	}
	eventually.NoError(t, 30*time.Second, "every node finds the set and the add made after the flush", func() error {
		for _, addr := range addrs {
			if got, err := reply(addr, "get k1 k2\r\n"); err != nil || got != "VALUE k1 0 3\r\nnew\r\nVALUE k2 0 3\r\nadd\r\nEND\r\n" {
				return fmt.Errorf("%s after set and add: %q %v", addr, got, err)
			}
		}
		return nil
	})

	// A delayed flush: visible until its time, gone after.
	var later []string
	for i := range 9 {
		k := fmt.Sprintf("d%d", i)
		set(t, addrs[i%3], k, "x")
		later = append(later, k)
	}
	allVisible(t, addrs, later)
	issued := time.Now()
	if got := dial(t, aMC).do("flush_all 2\r\n", ""); got != "OK\r\n" {
		t.Fatalf("flush_all 2: %q", got)
	}
	// The flush names a nanosecond before the second after next: at least one second after it was issued.
	for _, addr := range addrs {
		h, err := hitsErr(t, addr, later)
		if err != nil {
			t.Logf("the visibility check before the delayed flush's time failed to read: %v", err)
			break
		}
		if time.Since(issued) >= time.Second {
			t.Logf("the visibility check took %v: too late to tell", time.Since(issued))
			break
		}
		if len(h) != len(later) {
			t.Fatalf("%s finds only %v before the delayed flush's time", addr, h)
		}
	}
	eventually.NoError(t, 30*time.Second, "the delayed flush hides the keys on every node", func() error {
		for _, addr := range addrs {
			h, err := hitsErr(t, addr, later)
			if err == nil && len(h) != 0 {
				err = fmt.Errorf("%s finds %v", addr, h)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})

	// A node down during a flush hides the flushed keys when it returns.
	var third []string
	for i := range 9 {
		k := fmt.Sprintf("t%d", i)
		set(t, addrs[i%3], k, "x")
		third = append(third, k)
	}
	allVisible(t, addrs, third)
	c.stop(t)
	eventually.NoError(t, 30*time.Second, "a and b see c down", func() error {
		for _, ch := range []*child{a, b} {
			var st servicesStatus
			if err := ch.call("cluster_status", nil, &st); err != nil {
				return err
			}
			for _, m := range st.Members {
				if m.Name == "c" && m.Alive {
					return fmt.Errorf("%s sees c alive", ch.name)
				}
			}
		}
		return nil
	})
	if got := dial(t, aMC).do("flush_all\r\n", ""); got != "OK\r\n" {
		t.Fatalf("flush_all with c down: %q", got)
	}
	noHits(t, []string{aMC}, third, "after the flush with c down")
	c, cMC = memcacheChild(t, "c", c.dir)
	eventually.NoError(t, 60*time.Second, "c, back, hides the keys flushed while it was down", func() error {
		h, err := hitsErr(t, cMC, third)
		if err == nil && len(h) != 0 {
			err = fmt.Errorf("c finds %v", h)
		}
		return err
	})

	// With the claimant down, a flush fails and flushes nothing.
	set(t, cMC, "after", "y")
	a.stop(t)
	eventually.NoError(t, 30*time.Second, "b sees a down", func() error {
		var st servicesStatus
		if err := b.call("cluster_status", nil, &st); err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.Name == "a" && m.Alive {
				return fmt.Errorf("b sees a alive")
			}
		}
		return nil
	})
	if got := dial(t, bMC).do("flush_all\r\n", ""); !strings.HasPrefix(got, "SERVER_ERROR ") {
		t.Fatalf("flush_all with the claimant down: %q, want SERVER_ERROR", got)
	}
	// NB: with a down, b may suspect c for a moment and read from fallbacks only (a sloppy read can miss);
	// a flush, once recorded, hides the key for good, so a refused flush that hid it fails this poll.
	eventually.NoError(t, 30*time.Second, "b reads a key set before the refused flush", func() error {
		h, err := hitsErr(t, bMC, []string{"after"})
		if err == nil && len(h) != 1 {
			return errors.New("a refused flush hid a key (or a read from fallbacks missed it)")
		}
		return err
	})
}

// TestFlushAllRefusedWhenDisabled: without -memcache-flush-all, flush_all is refused and flushes nothing.
func TestFlushAllRefusedWhenDisabled(t *testing.T) {
	n := startTestNode(t, nil)
	c := dial(t, n.MemcacheAddr())
	if got := c.do("set f 0 0 1\r\nx\r\nflush_all\r\nget f\r\n", "END"); got != "STORED\r\nCLIENT_ERROR flush_all not allowed\r\nVALUE f 0 1\r\nx\r\nEND\r\n" {
		t.Fatalf("flush_all while disabled: %q", got)
	}
	if f := n.state().FlushOf("kv"); f.Epoch != 0 || f.Pending != 0 {
		t.Fatalf("a refused flush_all set the epoch %+v", f)
	}
}

// TestFlushAllSurvivesACrash: a flush_all answered OK is on disk: a single node killed (SIGKILL) right after
// the answer comes back with the keys still hidden.
func TestFlushAllSurvivesACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("node processes")
	}
	for round := range 3 {
		a, aMC := memcacheChild(t, "a", "")
		keys := []string{"x", "y", "z"}
		for _, k := range keys {
			set(t, aMC, k, "v")
		}
		c := dial(t, aMC)
		if got := c.do("flush_all\r\n", ""); got != "OK\r\n" {
			t.Fatalf("flush_all: %q", got)
		}
		_ = a.cmd.Process.Kill()
		<-a.exited
		_, aMC = memcacheChild(t, "a", a.dir)
		if h := hits(t, aMC, keys); len(h) != 0 {
			t.Fatalf("round %d: after a crash right after flush_all, the node finds %v", round, h)
		}
	}
}

func TestCheckFlushClock(t *testing.T) {
	const now = int64(1_800_000_000_000_000_000)
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{{0, true}, {time.Second, true}, {-time.Second, true}, {maxFlushClockSkew, true}, {-maxFlushClockSkew, true},
		{maxFlushClockSkew + 1, false}, {-maxFlushClockSkew - 1, false}, {time.Hour, false}} {
		if err := checkFlushClock(now+int64(tc.skew), now); (err == nil) != tc.ok {
			t.Errorf("skew %v: %v", tc.skew, err)
		}
	}
}
