package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// After a schedule: end every fault, wait for the cluster to heal and settle, wait for the replicas to
// converge, read the final state, run the checker and report.

// Bounds of the waits after a schedule. The targets the suite asserts are shorter; the bounds only stop
// the wait, so a miss is reported with the time it took or "not within the bound".
const (
	healBound     = 40 * time.Second // from the heal: one cluster again
	settleBound   = 60 * time.Second // after healing: transfers done
	settleShort   = 5 * time.Second  // the same when the cluster did not heal within healBound
	convergeBound = 45 * time.Second // from the heal (at least convergeMin after settling)
	convergeMin   = 10 * time.Second
)

// sideSpec is one side of a fault for the availability figures.
type sideSpec struct {
	name   string
	nodes  []int
	target bool // assert >= availTarget on this side (after the detection grace)
}

// availTarget: once the fault is detected, each side with a target answers at least this share of its
// requests (sloppy quorum serves both sides of a partition).
const availTarget = 0.95

// detectGrace is how long after a fault starts requests are left out of the availability figures ("once
// the fault is detected").
const detectGrace = 5 * time.Second

// verdictSpec describes what a schedule did and what it must achieve.
type verdictSpec struct {
	schedule string // name in the report
	desc     string
	members  []int // the cluster's members once everything settled
	// The fault window for availability, and its sides.
	faultFrom, faultTo time.Time
	grace              time.Duration
	sides              []sideSpec
	// healAt is when the last fault ended (heal, restart, resume); heal and convergence times count
	// from it.
	healAt time.Time
	// Targets (0: reported only).
	healTarget, convergeTarget time.Duration
	// extraKeys are keys written outside the workload (the add race), read and checked like its keys.
	extraKeys []string
	// cut is the fault's two groups (by index): the report says when each node saw the other side dead,
	// and alive again after the fault ended.
	cut [2][]int
}

// healWatch measures, from the moment a fault ends, how long until every member sees every other alive
// and all report the same cluster state. It polls in the background while the load goes on.
type healWatch struct {
	at   time.Time
	done chan struct{}
	took time.Duration
	why  string
}

func (h *harness) watchHeal(at time.Time, members []int) *healWatch {
	names := h.names(members...)
	hw := &healWatch{at: at, done: make(chan struct{})}
	go func() {
		defer close(hw.done)
		var why string
		eventually.WithinEvery(healBound-time.Since(at), 100*time.Millisecond, func() bool {
			why = h.clusterOnce(names, false)
			return why == ""
		})
		hw.took, hw.why = time.Since(at), why
	}()
	return hw
}

// verdict stops the load, recovers the cluster, checks everything and reports. extra holds histories
// recorded outside the workload (may be nil).
func (h *harness) verdict(w *workload, hw *healWatch, sampler *viewSampler, spec verdictSpec, extra ...*History) {
	t := h.t
	t.Helper()
	if w != nil {
		w.stop()
	}
	h.recoverAll()
	var ops []Op
	keys := append([]string(nil), spec.extraKeys...)
	if w != nil {
		ops = append(ops, w.hist.Ops()...)
		keys = append(keys, w.keys...)
	}
	for _, x := range extra {
		ops = append(ops, x.Ops()...)
	}
	members := h.names(spec.members...)
	r := &report{spec: spec, ops: ops}

	// One cluster again.
	if hw != nil {
		<-hw.done
		r.heal, r.healWhy = hw.took, hw.why
	}
	settleStart := time.Now()
	bound := settleBound
	if r.healWhy != "" {
		bound = settleShort // not one cluster by the heal bound: do not wait the whole settle bound too
	}
	took, why := h.waitCluster(members, true, bound)
	r.settle, r.settleWhy, r.settleBound = took, why, bound
	settledAt := time.Now()
	h.event("settled after %v %s", took.Round(time.Millisecond), why)
	if sampler != nil {
		sampler.stop()
	}

	// Replicas identical.
	deadline := settledAt.Add(convergeMin)
	if r.healWhy != "" {
		deadline = settledAt.Add(convergeMin / 2) // not one cluster: a short look is enough to report
	} else if !spec.healAt.IsZero() && spec.healAt.Add(convergeBound).After(deadline) {
		deadline = spec.healAt.Add(convergeBound)
	}
	var reps []ReplicaRead
	// NB: every poll reads every key from every replica: every 250 ms, not faster.
	r.converged = eventually.WithinEvery(time.Until(deadline), 250*time.Millisecond, func() bool {
		var err error
		reps, err = h.replicaReads(keys, members)
		if err != nil {
			r.notes = append(r.notes, "replica reads: "+err.Error())
		}
		r.differ = DifferingKeys(reps)
		return len(r.differ) == 0
	})
	from := spec.healAt
	if from.IsZero() {
		from = settleStart
	}
	r.converge = time.Since(from)
	r.keys = len(keys)
	if !r.converged {
		r.differExample = describeDiffer(reps, r.differ[0])
	}

	// Final state: a normal get through every member, and every primary replica.
	finals := h.finalGets(keys, members)
	for _, rr := range reps {
		f := FinalRead{Source: fmt.Sprintf("replica %s/p%d", shortName(rr.Node), rr.Partition), Key: rr.Key, Values: rr.Values, Err: rr.Err}
		finals = append(finals, f)
	}
	r.sets = CheckSets(ops, finals)
	r.counts = CountByKind(ops)
	if !spec.faultFrom.IsZero() {
		var sides []Side
		for _, s := range spec.sides {
			sides = append(sides, Side{Name: s.name, Nodes: h.names(s.nodes...)})
		}
		r.avail = Availability(ops, sides, spec.faultFrom.Add(spec.grace), spec.faultTo)
		if spec.grace > 0 {
			r.availDetect = Availability(ops, sides, spec.faultFrom, spec.faultFrom.Add(spec.grace))
		}
	}
	r.stats = h.coordStats(members)
	if sampler != nil {
		r.timeline = sampler.timeline(h.start)
		r.notes = append(r.notes, h.detectionNotes(sampler, spec)...)
	}
	r.events = h.eventLog()
	h.writeArtifacts(w, extra, r)

	text := r.String()
	t.Log("\n" + text)
	if *reportFlag != "" {
		if err := appendFile(*reportFlag, text+"\n"); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	r.assert(h)
}

// report is one schedule's figures.
type report struct {
	spec          verdictSpec
	ops           []Op
	counts        []Counts
	sets          SetReport
	avail         []Avail
	availDetect   []Avail // the detection grace, reported only
	heal          time.Duration
	healWhy       string
	settle        time.Duration
	settleWhy     string
	settleBound   time.Duration
	converge      time.Duration
	converged     bool
	keys          int
	differ        []string
	differExample string
	stats         string
	timeline      string
	events        string
	notes         []string
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s: %s\n", r.spec.schedule, r.spec.desc)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tops\tok\tfail\tindet\tlost\tunexpected\t")
	lostBy := map[Kind]int{}
	for _, l := range r.sets.Lost {
		lostBy[l.Op.Kind]++
	}
	unexpBy := map[Kind]int{}
	for _, u := range r.sets.Unexpected {
		if u.Op != nil {
			unexpBy[u.Op.Kind]++
		} else {
			unexpBy["?"]++
		}
	}
	for _, c := range r.counts {
		lost, unexp := fmt.Sprint(lostBy[c.Kind]), fmt.Sprint(unexpBy[c.Kind])
		if !isSetKind(c.Kind) {
			lost, unexp = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", c.Kind, c.Ops, c.OK, c.Fail, c.Indeterminate, lost, unexp)
	}
	tw.Flush()
	if len(r.avail) > 0 {
		fmt.Fprintf(&b, "availability from %+.1fs to %+.1fs (fault start + %v grace .. fault end):\n",
			r.spec.faultFrom.Add(r.spec.grace).Sub(r.spec.faultFrom).Seconds(), r.spec.faultTo.Sub(r.spec.faultFrom).Seconds(), r.spec.grace)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "side\tnodes\tops\tok\tfail\tindet\tanswered\ttarget\t")
		for i, a := range r.avail {
			s := r.spec.sides[i]
			target := "-"
			if s.target {
				target = fmt.Sprintf(">=%.0f%% %s", 100*availTarget, passFail(a.Ops > 0 && a.Ratio() >= availTarget))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f%%\t%s\t\n", a.Side, nodeList(s.nodes), a.Ops, a.OK, a.Fail, a.Indet, 100*a.Ratio(), target)
		}
		for i, a := range r.availDetect {
			fmt.Fprintf(tw, "%s (first %v)\t%s\t%d\t%d\t%d\t%d\t%.1f%%\t-\t\n", a.Side, r.spec.grace, nodeList(r.spec.sides[i].nodes),
				a.Ops, a.OK, a.Fail, a.Indet, 100*a.Ratio())
		}
		tw.Flush()
	}
	if !r.spec.healAt.IsZero() {
		fmt.Fprintf(&b, "heal time: %s", durOrWhy(r.heal, r.healWhy, healBound))
		if r.spec.healTarget > 0 {
			fmt.Fprintf(&b, " (target <= %v: %s)", r.spec.healTarget, passFail(r.healWhy == "" && r.heal <= r.spec.healTarget))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "settled (transfers done): %s after the checks began\n", durOrWhy(r.settle, r.settleWhy, r.settleBound))
	conv := fmt.Sprintf("%v", r.converge.Round(100*time.Millisecond))
	if !r.converged {
		conv = fmt.Sprintf("NOT converged after %v: %d of %d keys differ, e.g. %s", r.converge.Round(100*time.Millisecond),
			len(r.differ), r.keys, r.differExample)
	}
	fmt.Fprintf(&b, "convergence (replicas identical, from the heal): %s", conv)
	if r.spec.convergeTarget > 0 {
		fmt.Fprintf(&b, " (target <= %v: %s)", r.spec.convergeTarget, passFail(r.converged && r.converge <= r.spec.convergeTarget))
	}
	b.WriteString("\n")
	s := r.sets
	fmt.Fprintf(&b, "sets: %d keys, %d acknowledged elements, %d lost, %d unexpected; %d indeterminate (%d of them present); %d stale final reads; %d failed final reads\n",
		s.Keys, s.Acked, len(s.Lost), len(s.Unexpected), s.Indeterminate, s.IndeterminatePresent, len(s.Stale), len(s.ReadErrors))
	if len(s.Lost) > 0 {
		fmt.Fprintf(&b, "  lost: %s%s\n  e.g. %s\n", s.LostByKey(), r.lostBeforeFault(), joinRefs(s.Lost, 5))
	}
	if len(s.Unexpected) > 0 {
		fmt.Fprintf(&b, "  unexpected, e.g. %s\n", joinRefs(s.Unexpected, 5))
	}
	for i, st := range s.Stale {
		if i == 5 {
			fmt.Fprintf(&b, "  ... %d more stale reads\n", len(s.Stale)-5)
			break
		}
		fmt.Fprintf(&b, "  stale: %s %s misses %d acknowledged elements, e.g. %s\n", st.Source, st.Key, st.Missing, st.Example)
	}
	for i, e := range s.ReadErrors {
		if i == 5 {
			break
		}
		fmt.Fprintf(&b, "  read error: %s\n", e)
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "node counters at the end:\n%s", r.stats)
	fmt.Fprintf(&b, "schedule:\n%s", r.events)
	if r.timeline != "" {
		fmt.Fprintf(&b, "what each node saw (cluster_status every 250ms; changes only):\n%s", r.timeline)
	}
	return b.String()
}

// assert turns the figures into test failures (the targets; known failures are reported, not skipped).
func (r *report) assert(h *harness) {
	t := h.t
	t.Helper()
	name := r.spec.schedule
	s := r.sets
	if len(s.Lost) > 0 {
		t.Errorf("%s: %d of %d acknowledged elements lost: %s%s; e.g. %s", name, len(s.Lost), s.Acked, s.LostByKey(),
			r.lostBeforeFault(), joinRefs(s.Lost, 2))
	}
	if len(s.Unexpected) > 0 {
		t.Errorf("%s: %d unexpected elements in the final state, e.g. %s", name, len(s.Unexpected), joinRefs(s.Unexpected, 3))
	}
	if len(s.Stale) > 0 {
		t.Errorf("%s: %d final reads (after quiescence) miss acknowledged elements, e.g. %s %s misses %d", name, len(s.Stale),
			s.Stale[0].Source, s.Stale[0].Key, s.Stale[0].Missing)
	}
	if len(s.ReadErrors) > 0 {
		t.Errorf("%s: %d final reads failed after quiescence, e.g. %s", name, len(s.ReadErrors), s.ReadErrors[0])
	}
	if r.healWhy != "" {
		t.Errorf("%s: not one cluster again %v after the fault ended: %s", name, r.heal.Round(time.Millisecond), r.healWhy)
	} else if r.spec.healTarget > 0 && r.heal > r.spec.healTarget {
		t.Errorf("%s: one cluster again only %v after the fault ended (target %v)", name, r.heal.Round(time.Millisecond), r.spec.healTarget)
	}
	if r.settleWhy != "" {
		t.Errorf("%s: cluster not settled (transfers done) %v into the checks: %s", name, r.settle.Round(time.Millisecond), r.settleWhy)
	}
	if !r.converged {
		t.Errorf("%s: replicas not identical %v after the fault ended: %d of %d keys differ, e.g. %s", name,
			r.converge.Round(100*time.Millisecond), len(r.differ), r.keys, r.differExample)
	} else if r.spec.convergeTarget > 0 && r.converge > r.spec.convergeTarget {
		t.Errorf("%s: replicas identical only %v after the fault ended (target %v)", name, r.converge.Round(100*time.Millisecond), r.spec.convergeTarget)
	}
	for i, a := range r.avail {
		sp := r.spec.sides[i]
		if !sp.target {
			continue
		}
		if a.Ops == 0 {
			t.Errorf("%s: no requests sent to side %s during the fault window", name, a.Side)
		} else if a.Ratio() < availTarget {
			t.Errorf("%s: side %s (%s) answered %.1f%% of %d requests once the fault was detected (target >= %.0f%%): %d ok, %d fail, %d indeterminate",
				name, a.Side, nodeList(sp.nodes), 100*a.Ratio(), a.Ops, 100*availTarget, a.OK, a.Fail, a.Indet)
		}
	}
}

// lostBeforeFault says how many lost elements were written before the first fault began (then the loss
// is not the fault's doing).
func (r *report) lostBeforeFault() string {
	if r.spec.faultFrom.IsZero() {
		return ""
	}
	n := 0
	for _, l := range r.sets.Lost {
		if l.Op.Invoke.Before(r.spec.faultFrom) {
			n++
		}
	}
	return fmt.Sprintf("; %d of them written before the first fault began", n)
}

func passFail(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func durOrWhy(d time.Duration, why string, bound time.Duration) string {
	if why == "" {
		return d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("NOT within %v (%s)", bound, why)
}

func nodeList(idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, fmt.Sprintf("n%d", i))
	}
	return strings.Join(s, ",")
}

func joinRefs(rs []ElemRef, n int) string {
	var s []string
	for _, r := range rs[:min(n, len(rs))] {
		s = append(s, r.String())
	}
	return strings.Join(s, "; ")
}

func describeDiffer(reps []ReplicaRead, key string) string {
	var s []string
	for _, r := range reps {
		if r.Key != key {
			continue
		}
		switch {
		case r.Err != "":
			s = append(s, fmt.Sprintf("%s/p%d: %s", shortName(r.Node), r.Partition, r.Err))
		case !r.Found:
			s = append(s, fmt.Sprintf("%s/p%d: not found", shortName(r.Node), r.Partition))
		default:
			s = append(s, fmt.Sprintf("%s/p%d: %d siblings, %d elements, context %x", shortName(r.Node), r.Partition,
				len(r.Values), len(UnionValues(r.Values)), r.Context[:min(8, len(r.Context))]))
		}
	}
	return key + " [" + strings.Join(s, "; ") + "]"
}

func (h *harness) eventLog() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, e := range h.events {
		fmt.Fprintf(&b, "  %+7.1fs %s\n", e.at.Sub(h.start).Seconds(), e.what)
	}
	return b.String()
}

// writeArtifacts keeps the histories and the report beside the node logs.
func (h *harness) writeArtifacts(w *workload, extra []*History, r *report) {
	write := func(name string, hist *History) {
		f, err := os.Create(filepath.Join(h.dir, name))
		if err != nil {
			h.t.Logf("history: %v", err)
			return
		}
		defer f.Close()
		if err := hist.WriteJSON(f); err != nil {
			h.t.Logf("history: %v", err)
		}
	}
	if w != nil {
		write("history.jsonl", w.hist)
	}
	for i, x := range extra {
		write(fmt.Sprintf("history-extra-%d.jsonl", i), x)
	}
	_ = os.WriteFile(filepath.Join(h.dir, "report.txt"), []byte(r.String()), 0o644)
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// --- final reads ------------------------------------------------------------------------------------------

// forEach runs f on every item with a few workers.
func forEach[T any](items []T, f func(T)) {
	const workers = 8
	var wg sync.WaitGroup
	next := make(chan T)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				f(it)
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
}

// finalGets reads every key through every member with a normal get (default R).
func (h *harness) finalGets(keys, members []string) []FinalRead {
	type job struct{ key, node string }
	var jobs []job
	for _, m := range members {
		for _, k := range keys {
			jobs = append(jobs, job{k, m})
		}
	}
	var mu sync.Mutex
	var out []FinalRead
	forEach(jobs, func(j job) {
		n := h.byName(j.node)
		f := FinalRead{Source: "get@" + n.short, Key: j.key}
		ctx, cancel := context.WithTimeout(context.Background(), clientWait)
		obj, err := n.admin.Get(ctx, []byte(j.key), &client.ReadOptions{Timeout: serverTimeout})
		cancel()
		switch {
		case err == nil:
			for _, v := range obj.Values {
				f.Values = append(f.Values, v.Data)
			}
		case !errors.Is(err, client.ErrNotFound):
			f.Err = err.Error()
		}
		mu.Lock()
		out = append(out, f)
		mu.Unlock()
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].Key < out[j].Key || out[i].Key == out[j].Key && out[i].Source < out[j].Source
	})
	return out
}

type prefEntry struct {
	Partition int    `msgpack:"partition"`
	Node      string `msgpack:"node"`
	Primary   bool   `msgpack:"primary"`
}

type vnodeObject struct {
	Found   bool     `msgpack:"found"`
	Values  [][]byte `msgpack:"values"`
	Context []byte   `msgpack:"context"`
}

// replicaReads reads every primary replica of every key directly: the preference list from the first
// member, then vnode_get on each primary's node. A failed read is a ReplicaRead with Err.
func (h *harness) replicaReads(keys, members []string) ([]ReplicaRead, error) {
	via := h.byName(members[0])
	var mu sync.Mutex
	var out []ReplicaRead
	var firstErr error
	forEach(keys, func(k string) {
		ctx, cancel := context.WithTimeout(context.Background(), adminCall)
		defer cancel()
		var pl []prefEntry
		if err := via.admin.Call(ctx, "preflist", []any{[]byte(k)}, &pl, true); err != nil {
			mu.Lock()
			out = append(out, ReplicaRead{Key: k, Node: via.name, Err: "preflist: " + err.Error()})
			if firstErr == nil {
				firstErr = fmt.Errorf("preflist %s via %s: %w", k, via.short, err)
			}
			mu.Unlock()
			return
		}
		for _, e := range pl {
			if !e.Primary {
				continue
			}
			r := ReplicaRead{Key: k, Node: e.Node, Partition: e.Partition}
			n := h.byName(e.Node)
			if n == nil {
				r.Err = "preflist names a node the harness does not know"
			} else {
				var o vnodeObject
				if err := n.admin.Call(ctx, "vnode_get", []any{e.Partition, []byte(k)}, &o, true); err != nil {
					r.Err = err.Error()
				} else {
					r.Found, r.Values, r.Context = o.Found, o.Values, o.Context
				}
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].Key < out[j].Key || out[i].Key == out[j].Key && out[i].Partition < out[j].Partition
	})
	return out, firstErr
}

// coordStats is one line per member with the coordinators' counters that explain a run.
func (h *harness) coordStats(members []string) string {
	var b strings.Builder
	names := []string{"gokai_coord_gets", "gokai_coord_puts", "gokai_coord_timeouts", "gokai_coord_quorum_failures",
		"gokai_coord_fallbacks", "gokai_read_repairs", "gokai_siblings_seen", "gokai_hinted_handoff_keys", "gokai_handoff_items_received"}
	for _, m := range members {
		n := h.byName(m)
		ctx, cancel := context.WithTimeout(context.Background(), adminCall)
		st, err := n.admin.Stats(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", n.short, err)
			continue
		}
		var parts []string
		for _, name := range names {
			v, _ := st.Int(name)
			parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(name, "gokai_"), v))
		}
		fmt.Fprintf(&b, "  %s: %s\n", n.short, strings.Join(parts, " "))
	}
	return b.String()
}

// detectionNotes says, for a partition, when each node first saw each node of the other side dead, and
// when it saw it alive again after the heal (from the samples of cluster_status).
func (h *harness) detectionNotes(s *viewSampler, spec verdictSpec) []string {
	if len(spec.cut[0]) == 0 || len(spec.cut[1]) == 0 || spec.faultFrom.IsZero() {
		return nil
	}
	var notes []string
	for side := 0; side < 2; side++ {
		for _, i := range spec.cut[side] {
			var parts []string
			for _, j := range spec.cut[1-side] {
				parts = append(parts, s.detection(fmt.Sprintf("n%d", i), fmt.Sprintf("n%d", j), spec.faultFrom, spec.faultTo, spec.healAt))
			}
			notes = append(notes, "detection: "+strings.Join(parts, "; "))
		}
	}
	return notes
}
