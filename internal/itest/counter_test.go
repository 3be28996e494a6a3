package itest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// The counter service (examples/counter) in a cluster of its own binaries, gokai-counter: increments through
// every node while a node is killed and restarted, a fourth joins and one leaves; afterwards every node
// reads, for every counter, a value that counts each acknowledged increment exactly once.

var counterCycles = flag.Int("counter.cycles", 1, "kill -9 and restart cycles of TestCounterCluster (a longer schedule: more)")

// counterBinary builds examples/counter/cmd/gokai-counter once per test binary run.
func counterBinary(t *testing.T) string {
	return buildBinary(t, "github.com/gokai-kv/gokai/examples/counter/cmd/gokai-counter")
}

// incrOutcome is what one counter.incr call did, as its caller can know it.
type incrOutcome int

const (
	incrAcked         incrOutcome = iota // the node answered true: W replicas stored it
	incrRefused                          // refused before anything ran (bad request, overload, shutting down, no connection)
	incrIndeterminate                    // failed or timed out after it was sent: it may have been applied
)

// classifyIncr says what an error of counter.incr means for the increment.
func classifyIncr(err error) incrOutcome {
	switch {
	case err == nil:
		return incrAcked
	case errors.Is(err, client.ErrBadRequest), errors.Is(err, client.ErrOverload),
		errors.Is(err, client.ErrShuttingDown), errors.Is(err, syscall.ECONNREFUSED):
		return incrRefused
	}
	return incrIndeterminate
}

// counterLedger is what the workers know of every counter: the sum of acknowledged increments, and the
// sums of the positive and of the negative indeterminate ones, which bound where the value may be.
type counterLedger struct {
	mu                 sync.Mutex
	acked              map[string]int64
	indetPos, indetNeg map[string]int64 // indetNeg is <= 0
	counts             [3]int           // by outcome
	errs               map[string]int   // indeterminate and refused errors, by text (for the log)
}

func newCounterLedger() *counterLedger {
	return &counterLedger{acked: map[string]int64{}, indetPos: map[string]int64{}, indetNeg: map[string]int64{},
		errs: map[string]int{}}
}

func (l *counterLedger) record(name string, by int64, err error) {
	o := classifyIncr(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[o]++
	switch o {
	case incrAcked:
		l.acked[name] += by
	case incrIndeterminate:
		if by > 0 {
			l.indetPos[name] += by
		} else {
			l.indetNeg[name] += by
		}
	}
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "127.0.0.1:"); i >= 0 {
			msg = msg[:i] // NB: one line per kind of error, not per port
		}
		l.errs[fmt.Sprintf("%d %s", o, msg)]++
	}
}

func (l *counterLedger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[incrAcked]
}

// bounds is where counter name's value must be: every acknowledged increment counted once, each
// indeterminate one counted once or not at all.
func (l *counterLedger) bounds(name string) (lo, hi int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked[name] + l.indetNeg[name], l.acked[name] + l.indetPos[name]
}

func (l *counterLedger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for e, n := range l.errs {
		errs = append(errs, fmt.Sprintf("%dx %s", n, e))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%d acknowledged, %d refused, %d indeterminate; errors (0 acked, 1 refused, 2 indeterminate): %s",
		l.counts[incrAcked], l.counts[incrRefused], l.counts[incrIndeterminate], strings.Join(errs, "; "))
}

// incrWorker sends counter.incr to one node, one call at a time, until stopped or max calls.
type incrWorker struct {
	stopc chan struct{}
	done  chan struct{}
}

func startIncrWorker(t *testing.T, addr string, seed uint64, names []string, max int, l *counterLedger) *incrWorker {
	w := &incrWorker{stopc: make(chan struct{}), done: make(chan struct{})}
	c := rpcClient(t, addr)
	r := rand.New(rand.NewPCG(seed, 7))
	go func() {
		defer close(w.done)
		for i := 0; i < max; i++ {
			select {
			case <-w.stopc:
				return
			default:
			}
			name := names[r.IntN(len(names))]
			by := 1 + r.Int64N(9)
			if r.IntN(4) == 0 {
				by = -by
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var ok bool
			err := c.Call(ctx, "counter.incr", []any{name, by}, &ok, false)
			cancel()
			if err == nil && !ok {
				err = fmt.Errorf("counter.incr answered %v", ok)
			}
			l.record(name, by, err)
			if err != nil {
				// NB: a node that is down refuses at once; do not spin on it.
				select {
				case <-w.stopc:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	return w
}

func (w *incrWorker) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	<-w.done
}

// counterValue reads counter.value of name through c, at R=3.
func counterValue(c *client.Client, name string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v int64
	err := c.Call(ctx, "counter.value", []any{name, map[string]any{"r": 3}}, &v, true)
	return v, err
}

// TestCounterCluster: a 3-node cluster of gokai-counter binaries takes concurrent increments (and
// decrements) of a few counters through every node while one node is killed (SIGKILL) and restarted on its
// data dir, while a fourth node joins, and while one leaves. Every call's outcome is recorded: acknowledged,
// refused before it ran, or indeterminate (an error or timeout after it was sent). Afterwards counter.value
// from every node, for every counter, is the same, and lies between the acknowledged sum plus the negative
// indeterminate ones and the acknowledged sum plus the positive ones: no acknowledged increment is lost or
// counted twice.
func TestCounterCluster(t *testing.T) {
	start := time.Now()
	cl := newCluster(t)
	cl.bin = counterBinary(t)
	flags := append([]string{"-q", "16"}, failureFlags...)
	for _, name := range []string{"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"} {
		cl.add(name, flags...)
	}
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	// The cluster CLI is the counter binary's own (gokai's, through package cli).
	mustMatch(t, "join", `(?i)join`, cl.cli(n2, "cluster", "join", n1.transportAddr))
	cl.cli(n3, "cluster", "join", n1.transportAddr)
	cl.waitStaged(n1, 2)
	cl.cli(n1, "cluster", "plan")
	cl.cli(n1, "cluster", "commit")
	cl.settled(60*time.Second, cl.names(), nil)
	t.Logf("3 nodes formed in %v", time.Since(start).Round(time.Millisecond))

	names := []string{"likes", "views", "stock", "balance", "queue-depth", "errors"}
	ledger := newCounterLedger()
	workers := map[string][]*incrWorker{}
	startWorkers := func(n *cnode, seed uint64) {
		for i := range 2 {
			workers[n.name] = append(workers[n.name], startIncrWorker(t, n.rpcAddr, seed+uint64(i), names, 100000, ledger))
		}
	}
	stopWorkers := func(name string) {
		for _, w := range workers[name] {
			w.stop()
		}
		delete(workers, name)
	}
	defer func() {
		for name := range workers {
			stopWorkers(name)
		}
	}()
	progress := func(what string, more int) {
		t.Helper()
		want := ledger.ackedCount() + more
		eventually.True(t, 60*time.Second, fmt.Sprintf("%d more acknowledged increments (%s)", more, what),
			func() bool { return ledger.ackedCount() >= want })
		t.Logf("%v: %s: %d acknowledged", time.Since(start).Round(time.Millisecond), what, ledger.ackedCount())
	}
	for i, n := range cl.nodes {
		startWorkers(n, uint64(10*i))
	}
	progress("load on 3 nodes", 300)

	for cycle := range *counterCycles {
		n2.kill9(t)
		// NB: until the others see n2 down, its replicas time out; then they route around it.
		waitSeenAlive(t, cl.cls[n1.name], n2.name, false, 30*time.Second)
		progress(fmt.Sprintf("n2 killed and seen down (cycle %d)", cycle+1), 300)
		n2 = n2.restart(t)
		cl.replace(n2)
		waitSeenAlive(t, cl.cls[n1.name], n2.name, true, 30*time.Second)
		progress("n2 restarted and seen up", 300)
	}

	n4 := cl.add("n4@127.0.0.1", flags...)
	startWorkers(n4, 40)
	cl.cli(n4, "cluster", "join", n1.transportAddr)
	cl.waitStaged(n1, 1)
	cl.cli(n1, "cluster", "plan")
	cl.cli(n1, "cluster", "commit")
	cl.settled(90*time.Second, cl.names(), nil)
	progress("n4 joined", 300)

	mustMatch(t, "leave", `leave of .* staged`, cl.cli(n1, "cluster", "leave", n3.name))
	cl.waitStaged(n1, 1)
	cl.cli(n1, "cluster", "plan")
	cl.cli(n1, "cluster", "commit")
	// NB: clients stop using a node once its leave is committed; its calls in flight finish.
	stopWorkers(n3.name)
	cl.remove(n3.name)
	cl.settled(90*time.Second, cl.names(), nil)
	progress("n3 left", 300)

	for name := range workers {
		stopWorkers(name)
	}
	t.Logf("%v: load stopped: %s", time.Since(start).Round(time.Millisecond), ledger.summary())
	// Every remaining node reads every counter in its bounds, and all read the same. Reads repair the
	// replicas they read, and hints and re-homing move what fallbacks took: poll until they agree.
	for _, name := range names {
		lo, hi := ledger.bounds(name)
		var why string
		if !eventually.WithinEvery(60*time.Second, 100*time.Millisecond, func() bool {
			var vals []string
			why = ""
			first := int64(0)
			for i, n := range cl.nodes {
				v, err := counterValue(cl.cls[n.name], name)
				switch {
				case err != nil:
					why = fmt.Sprintf("%s: %v", n.name, err)
					return false
				case v < lo || v > hi:
					why = fmt.Sprintf("%s reads %d, out of [%d, %d]", n.name, v, lo, hi)
				case i > 0 && v != first:
					why = fmt.Sprintf("%s reads %d, %s %d", n.name, v, cl.nodes[0].name, first)
				}
				if i == 0 {
					first = v
				}
				vals = append(vals, fmt.Sprintf("%s=%d", n.name, v))
			}
			if why == "" {
				t.Logf("%s: %s in [%d, %d]", name, strings.Join(vals, " "), lo, hi)
			}
			return why == ""
		}) {
			t.Fatalf("counter %s: %s (acknowledged sum %d; %s)", name, why, lo, ledger.summary())
		}
	}
	// A read changes nothing: the values stay put.
	for _, name := range names {
		lo, hi := ledger.bounds(name)
		for _, n := range cl.nodes {
			if v, err := counterValue(cl.cls[n.name], name); err != nil || v < lo || v > hi {
				t.Fatalf("%s from %s on a second read: %d %v, want [%d, %d]", name, n.name, v, err, lo, hi)
			}
		}
	}
	// The binary's own commands.
	cl.cli(n1, "incr", "cli-made", "5")
	cl.cli(n2, "decr", "cli-made", "2")
	cl.cli(n4, "incr", "cli-made")
	// NB: a read at the default R right after the writes may miss one (sloppy quorum, keys not yet
	// re-homed after the leave): poll, as the checks above do.
	eventually.NoError(t, 30*time.Second, "gokai-counter value cli-made reads 4", func() error {
		var got struct {
			Name  string `json:"name"`
			Value int64  `json:"value"`
		}
		cl.cliJSON(n2, &got, "value", "cli-made")
		if got.Name != "cli-made" || got.Value != 4 {
			return fmt.Errorf("value --json: %+v, want 4", got)
		}
		return nil
	})
	if res := binCLI(t, cl.binary(), n1.rpcAddr, "", "incr", "cli-made", "9007199254740992"); res.code != 2 {
		t.Fatalf("incr by 2^53: exit %d, want 2 (usage)\n%s", res.code, res.stderr)
	}
	// The service's own stats are in the node's.
	ctx, cancel := shortCtx()
	defer cancel()
	st, err := cl.cls[n1.name].Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := st.Int("gokai_counter_incrs"); !ok || v == 0 {
		t.Fatalf("gokai_counter_incrs = %v (%v) on n1, which served increments", v, ok)
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}
