package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/vnode"
)

// Re-home: moving the keys a vnode holds for key ranges whose preference list no longer names it. It runs
// for every service that says how to drop a key (service.Service.Rehome: KV's DropRequest), each service's
// vnodes apart; the description below is one service's.
//
// A replica lives in the vnode of the partition its preference-list entry names. With the skip rule
// (ring.Ring.PreflistForPartition) those partitions depend on the owners around a key's partition p,
// so an ownership change can take partition X out of p's list and put Y in: the copies of p's keys in X's
// vnode are then never read again, and Y's vnode starts without them. Read repair puts a key on Y when it
// is read; re-home does it for every key, and drops the copy in X:
//
//	for each partition X this node owns, once per ring (and again when X took handed-off data):
//	  fold X; a key k is misplaced when p = partition(k) is not in Sources(X) (p's list does not name X)
//	  send k's object to the vnode of every partition of p's list (HandoffBatch: merged with Sync, acked
//	  once stored); when all acked, drop k from X if X still holds exactly the object sent (the service's
//	  Rehome.Drop)
//
// Safety: a copy is dropped only after every vnode of its key's current list stored it, and only if it did
// not change since the fold, so re-home never loses a write; at worst a misplaced copy stays (a target was
// down, or the key was written meanwhile) and the next pass, after a backoff, tries again. It runs only
// while no ownership transfer is pending: lists change with every completed transfer, and the ring the
// transfers end in is the one keys must settle in. Writes that rings in between placed are found by the
// pass after the last transfer, which checks every key of X against the final ring; seeing a transfer
// pending clears every mark, so that pass happens even if the transfers end in the owners they started
// from.
//
// A clean pass is confirmed by a second one rehomeSettle later: coordinators still on the previous ring
// (gossip reaches nodes at different times) may write keys into X after its first pass.
//
// Cost: two local folds of each owned partition per ownership change (keys are hashed, nothing else is
// read), plus the moves. A partition is marked done for a ring fingerprint; confirmed marks persist in
// data-dir/rehome, so a restart does not fold again (a data dir without the file folds everything once).
//
// Gaps, both leaving a copy misplaced (not lost) until the next ownership change or until X takes
// handed-off data: a coordinator whose node stays behind on an older ring for longer than rehomeSettle
// (cut off from gossip) can write a key into X after X's confirming pass; and a whole commit, transfers
// included, can begin and end between two looks of this node's cluster watch (250 ms) with the same
// owners as before. Such a write normally reached partition p's own vnode too (every list of p starts
// with p), so reads see it and read repair spreads it.

// rehomeSettle is how long after a clean pass a partition gets its confirming pass, which catches the
// writes that coordinators still on the previous ring sent it meanwhile: longer than a write's deadline
// (5 s by default) plus the time a ring takes to reach every node.
const rehomeSettle = 10 * time.Second

// rehomeMark says under which ring a partition was last found to hold no misplaced key.
type rehomeMark struct {
	ring     uint64    // ringFingerprint of that ring
	received int64     // vnode.Manager.HandoffReceived of the partition before that pass folded it
	at       time.Time // when that pass ended
	// confirmed: a second clean pass under the same ring and data ran rehomeSettle after the first.
	confirmed bool
}

// rehomeDue returns the vnodes of owned that need a pass: those without a mark for the ring fp, or that
// took handed-off data since their mark, or whose mark waits for its confirming pass and is rehomeSettle
// old; and whose retry time (after a failed pass) is not in the future. Those whose partition is in first
// (its sources changed, see rehomeFirst) come first; each group by partition, then service. Pure.
func rehomeDue(owned []slot, fp uint64, received func(slot) int64, marks map[slot]rehomeMark, retryAt map[slot]time.Time, now time.Time, first func(int) bool) []slot {
	var due []slot
	for _, x := range owned {
		if m, ok := marks[x]; ok && m.ring == fp && m.received == received(x) && (m.confirmed || now.Before(m.at.Add(rehomeSettle))) {
			continue
		}
		if t, ok := retryAt[x]; ok && now.Before(t) {
			continue
		}
		due = append(due, x)
	}
	slices.SortFunc(due, func(a, b slot) int {
		if fa, fb := first(a.Partition), first(b.Partition); fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		return compareSlots(a, b)
	})
	return due
}

// rehomeFirst reports, for the partitions of ring, whether their sources (Ring.Sources) differ from
// prev's: where misplaced keys are likely, so their pass goes first (nil prev: none).
func rehomeFirst(prev, rg *ring.Ring, n int) func(int) bool {
	if prev == nil || prev.Q() != rg.Q() {
		return func(int) bool { return false }
	}
	a, b := prev.Sources(n), rg.Sources(n)
	return func(x int) bool { return !slices.Equal(a[x], b[x]) }
}

// ringFingerprint identifies the preference lists of ring r for n replicas: a hash of n and the owners.
func ringFingerprint(r *ring.Ring, n int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00", n)
	for _, o := range r.Owners() {
		h.Write([]byte(o))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// rehomer moves one partition's misplaced keys (see the comment at the top of this file). It is not tied
// to a Node, so tests can run it on vnode managers of their own.
type rehomer struct {
	self   string // this node's id, sent with the batches ("" in tests of their own)
	system *actor.ActorSystem
	local  func(p int) *actor.PID                   // this node's vnode of p (nil: none)
	vnode  func(node ring.NodeID, p int) *actor.PID // node's vnode of p (nil: unreachable)
	n      int                                      // replicas per key
	drop   service.Rehome                           // the service's drop command and its reply

	batchItems, batchBytes int           // misplaced keys per round of sends and drops
	timeout                time.Duration // per request
}

// rehomeStats counts one partition's pass: keys found misplaced, and those moved (stored by every vnode
// of their list and dropped here).
type rehomeStats struct{ misplaced, moved int }

// errRehomeTarget: a vnode of a misplaced key's list could not be reached; its keys stay for a later pass.
var errRehomeTarget = errors.New("rehome: target unreachable")

// partition runs one pass over partition x with ring (at cluster-state version), where sources =
// ring.Sources(n)[x]. It returns an error, with the counts so far, when a pass could not finish: misplaced
// keys it did not move are still in x.
func (h *rehomer) partition(ctx context.Context, rg *ring.Ring, version uint64, sources []int, x int) (rehomeStats, error) {
	var st rehomeStats
	src := h.local(x)
	if src == nil {
		return st, fmt.Errorf("rehome: no vnode for partition %d", x)
	}
	res, err := actors.Request(ctx, h.system, src, &vnode.FoldRequest{}, h.timeout)
	if err != nil {
		return st, fmt.Errorf("rehome: partition %d: fold: %w", x, err)
	}
	fold, ok := res.(*vnode.HandoffStarted)
	if !ok {
		return st, fmt.Errorf("rehome: partition %d: fold: unexpected reply %T", x, res)
	}
	type target struct {
		node ring.NodeID
		p    int
	}
	var (
		keys, objs [][]byte
		items      = map[target][][]byte{}
		size       int
		seq        uint64
	)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		targets := make([]target, 0, len(items))
		for tg := range items {
			targets = append(targets, tg)
		}
		slices.SortFunc(targets, func(a, b target) int { return a.p - b.p })
		for _, tg := range targets {
			pid := h.vnode(tg.node, tg.p)
			if pid == nil {
				return fmt.Errorf("%w: partition %d on %s", errRehomeTarget, tg.p, tg.node)
			}
			seq++
			res, err := actors.Request(ctx, h.system, pid, &vnode.HandoffBatch{V: 1, Seq: seq, Items: items[tg], Ring: version, From: h.self}, h.timeout)
			if err != nil {
				return fmt.Errorf("%w: partition %d on %s: %w", errRehomeTarget, tg.p, tg.node, err)
			}
			if ack, ok := res.(*vnode.HandoffAck); !ok || ack.Err != "" || ack.Seq != seq {
				return fmt.Errorf("%w: partition %d on %s: %v", errRehomeTarget, tg.p, tg.node, res)
			}
		}
		res, err := actors.Request(ctx, h.system, src, h.drop.Drop(keys, objs), h.timeout)
		if err != nil {
			return fmt.Errorf("rehome: partition %d: drop: %w", x, err)
		}
		dropped, err := h.drop.Dropped(res)
		st.moved += dropped
		if err != nil {
			return fmt.Errorf("rehome: partition %d: drop: %w", x, err)
		}
		keys, objs, size = keys[:0], objs[:0], 0
		clear(items)
		return nil
	}
	err = fold.Fold(func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := rg.PartitionForKey(k)
		if _, in := slices.BinarySearch(sources, p); in {
			return nil
		}
		// NB: a fold's key and value are only valid during the call.
		key, obj := bytes.Clone(k), bytes.Clone(v)
		item, err := fold.Encode(key, obj)
		if err != nil {
			return err
		}
		st.misplaced++
		keys, objs = append(keys, key), append(objs, obj)
		for _, e := range rg.PreflistForPartition(p, h.n, nil) {
			tg := target{e.Node, e.Partition}
			items[tg] = append(items[tg], item)
		}
		size += len(item)
		if len(keys) >= h.batchItems || size >= h.batchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return st, err
}

// rehomeState is the node's re-home bookkeeping. The cluster-watch goroutine starts passes; one pass (a
// goroutine over the due partitions) runs at a time.
type rehomeState struct {
	mu      sync.Mutex
	loaded  bool                   // marks were read from data-dir/rehome; REQUIRES: mu held
	marks   map[slot]rehomeMark    // REQUIRES: mu held
	retryAt map[slot]time.Time     // REQUIRES: mu held
	backoff map[slot]time.Duration // REQUIRES: mu held
	running bool                   // REQUIRES: mu held
	// gen counts the times observeRehome cleared the marks: a pass that began before a clear records none.
	gen uint64 // REQUIRES: mu held
	// last is the ring of the last pass that finished (nil before one did): partitions whose sources
	// changed since go first. REQUIRES: mu held
	last *ring.Ring
	// fp is the fingerprint of fpRing (the ring of the last scan). REQUIRES: mu held
	fpRing *ring.Ring
	fp     uint64
	// stopped: the node stops; no pass starts any more (waitRehome). REQUIRES: mu held
	stopped bool
	wg      sync.WaitGroup // the running pass; Add only under mu while !stopped
	moved   atomic.Int64   // keys moved since start (gokai_rehomed_keys)
}

// rehomePath keeps the re-home marks between runs.
func (n *Node) rehomePath() string { return filepath.Join(n.cfg.DataDir, "rehome") }

// observeRehome is called with every cluster state the watch loop sees: while ownership transfers are
// pending, intermediate rings place keys, so every mark is cleared (the pass after the transfers then
// checks every owned partition, whatever owners the transfers end in).
func (n *Node) observeRehome(s *membership.ClusterState) {
	pending := false
	for _, t := range s.Transfers {
		if t.State == membership.TransferWaiting {
			pending = true
			break
		}
	}
	rs := &n.cl.rehome
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !pending || (rs.loaded && len(rs.marks) == 0) {
		return
	}
	rs.marks, rs.loaded = map[slot]rehomeMark{}, true
	rs.gen++
	if rs.retryAt == nil {
		rs.retryAt, rs.backoff = map[slot]time.Time{}, map[slot]time.Duration{}
	}
	if n.cfg.Backend == "leveldb" {
		if err := os.Remove(n.rehomePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.logger.Warn("rehome: clear marks", "err", err)
		}
	}
}

// scanRehome starts a pass over the vnodes of the partitions this node owns that need one (see rehomeDue;
// the services with Rehome), unless one is running or transfers are pending. Called from the cluster-watch
// goroutine.
func (n *Node) scanRehome(ctx context.Context, s *membership.ClusterState) {
	for _, t := range s.Transfers {
		if t.State == membership.TransferWaiting {
			return
		}
	}
	rs := &n.cl.rehome
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.running || rs.stopped || ctx.Err() != nil {
		return
	}
	if !rs.loaded {
		rs.marks, rs.retryAt, rs.backoff = n.loadRehomeMarks(), map[slot]time.Time{}, map[slot]time.Duration{}
		rs.loaded = true
	}
	if rs.fpRing != s.Ring {
		rs.fpRing, rs.fp = s.Ring, ringFingerprint(s.Ring, n.cfg.N)
	}
	fp := rs.fp
	owned := n.rehomeSlots(s.Ring)
	noFirst := func(int) bool { return false }
	if len(rehomeDue(owned, fp, n.handoffReceived, rs.marks, rs.retryAt, n.now(), noFirst)) == 0 {
		return
	}
	// NB: computed only when some partition is due (Sources walks every preference list twice).
	due := rehomeDue(owned, fp, n.handoffReceived, rs.marks, rs.retryAt, n.now(), rehomeFirst(rs.last, s.Ring, n.cfg.N))
	rs.running = true
	rs.wg.Add(1)
	go n.runRehome(ctx, s.Ring, s.Version, fp, rs.gen, due)
}

// rehomeSlots are the vnodes re-home looks after under ring: those of the partitions this node owns, of
// every service with Rehome.
func (n *Node) rehomeSlots(rg *ring.Ring) []slot {
	owned := rg.PartitionsOf(n.self())
	var out []slot
	for _, rt := range n.svcs {
		if rt.spec.Rehome == nil {
			continue
		}
		for _, p := range owned {
			out = append(out, slot{Service: rt.spec.Name, Partition: p})
		}
	}
	return out
}

// handoffReceived is vnode.Manager.HandoffReceived of sl's service.
func (n *Node) handoffReceived(sl slot) int64 {
	if rt := n.svcByName[sl.Service]; rt != nil && rt.vnodes != nil {
		return rt.vnodes.HandoffReceived(sl.Partition)
	}
	return 0
}

// rehomerFor is the rehomer of one service's vnodes.
func (n *Node) rehomerFor(rt *svcRuntime) *rehomer {
	return &rehomer{self: string(n.self()), system: n.system, local: rt.vnodes.PID, vnode: router{n, rt}.VnodePID, n: n.cfg.N, drop: *rt.spec.Rehome,
		batchItems: 256, batchBytes: 1 << 20, timeout: 5 * time.Second}
}

// runRehome runs one pass over due with ring (fingerprint fp), then records the marks, unless the marks
// were cleared (generation gen ended) meanwhile.
func (n *Node) runRehome(ctx context.Context, rg *ring.Ring, version, fp, gen uint64, due []slot) {
	rs := &n.cl.rehome
	defer rs.wg.Done()
	rehomers := map[string]*rehomer{}
	sources := rg.Sources(n.cfg.N)
	marked, confirmed := false, false
	for _, sl := range due {
		x := sl.Partition
		h := rehomers[sl.Service]
		if h == nil {
			h = n.rehomerFor(n.svcByName[sl.Service])
			rehomers[sl.Service] = h
		}
		rs.mu.Lock()
		stale := rs.gen != gen // transfers began: wait for the ring they end in
		rs.mu.Unlock()
		if stale || ctx.Err() != nil {
			break
		}
		// NB: read before the fold: data handed to x later may be missed by this fold, and then the count
		// differs from the mark and x is due again.
		received := n.handoffReceived(sl)
		st, err := h.partition(ctx, rg, version, sources[x], x)
		rs.moved.Add(int64(st.moved))
		rs.mu.Lock()
		if err == nil && st.moved == st.misplaced {
			if rs.gen == gen {
				// NB: a clean pass under the ring and data of an earlier clean pass confirms it.
				old, ok := rs.marks[sl]
				c := ok && old.ring == fp && old.received == received
				rs.marks[sl] = rehomeMark{ring: fp, received: received, at: n.now(), confirmed: c}
				marked, confirmed = true, confirmed || c
			}
			delete(rs.retryAt, sl)
			delete(rs.backoff, sl)
		} else if ctx.Err() == nil {
			b := min(max(2*rs.backoff[sl], time.Second), time.Minute)
			rs.backoff[sl], rs.retryAt[sl] = b, n.now().Add(b)
		}
		rs.mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			n.logger.Warn("rehome: pass failed, retrying later", "service", sl.Service, "partition", x, "misplaced", st.misplaced, "moved", st.moved, "err", err)
		case st.moved > 0 || st.misplaced > 0:
			n.logger.Info("rehome: moved keys to their preference list", "service", sl.Service, "partition", x, "misplaced", st.misplaced, "moved", st.moved)
		}
	}
	rs.mu.Lock()
	rs.running = false
	if marked {
		rs.last = rg
	}
	if confirmed {
		n.saveRehomeMarksLocked(rg)
	}
	rs.mu.Unlock()
}

// waitRehome waits for the running pass (its ctx must be done or ending).
func (n *Node) waitRehome() {
	// NB: stopped under mu, so no pass starts (wg.Add) once Wait may run: an Add racing a Wait on a zero
	// counter is a misuse of the WaitGroup (the race detector caught the cluster watch starting a pass as a
	// node that had just started stopped).
	rs := &n.cl.rehome
	rs.mu.Lock()
	rs.stopped = true
	rs.mu.Unlock()
	rs.wg.Wait()
}

// loadRehomeMarks reads data-dir/rehome: lines "service partition fingerprint" (fingerprint in hex), and
// for the service of key space 0 (KV) "partition fingerprint", the form from before services, which nodes of
// then read too. A missing or unreadable file gives no marks: every owned partition gets a pass.
func (n *Node) loadRehomeMarks() map[slot]rehomeMark {
	marks := map[slot]rehomeMark{}
	if n.cfg.Backend != "leveldb" {
		return marks
	}
	raw, err := os.ReadFile(n.rehomePath())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.logger.Warn("rehome: read marks", "err", err)
		}
		return marks
	}
	space0 := n.space0()
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if strings.HasPrefix(l, "#") || len(f) < 2 || len(f) > 3 {
			continue
		}
		svc := space0
		if len(f) == 3 {
			svc, f = f[0], f[1:]
		}
		rt := n.svcByName[svc]
		x, err1 := strconv.Atoi(f[0])
		fp, err2 := strconv.ParseUint(f[1], 16, 64)
		if rt == nil || rt.spec.Rehome == nil || err1 != nil || err2 != nil || x < 0 || x >= n.cfg.Q {
			continue
		}
		// NB: HandoffReceived counts from 0 in every process. Only confirmed marks are saved.
		marks[slot{Service: svc, Partition: x}] = rehomeMark{ring: fp, confirmed: true}
	}
	return marks
}

// space0 is the name of the service in key space 0 ("" if none runs).
func (n *Node) space0() string {
	for _, rt := range n.svcs {
		if rt.spec.ID == 0 {
			return rt.spec.Name
		}
	}
	return ""
}

// saveRehomeMarksLocked writes the confirmed marks of the vnodes re-home looks after under ring.
// REQUIRES: rehome.mu held.
func (n *Node) saveRehomeMarksLocked(rg *ring.Ring) {
	if n.cfg.Backend != "leveldb" {
		return
	}
	space0 := n.space0()
	var b strings.Builder
	b.WriteString("# gokai re-home marks: [service] partition, fingerprint of the ring its vnode holds no misplaced key under\n")
	for _, sl := range n.rehomeSlots(rg) {
		m, ok := n.cl.rehome.marks[sl]
		switch {
		case !ok || !m.confirmed:
		case sl.Service == space0:
			fmt.Fprintf(&b, "%d %x\n", sl.Partition, m.ring)
		default:
			fmt.Fprintf(&b, "%s %d %x\n", sl.Service, sl.Partition, m.ring)
		}
	}
	if err := writeFileAtomic(n.rehomePath(), []byte(b.String())); err != nil {
		n.logger.Warn("rehome: save marks", "err", err)
	}
}
