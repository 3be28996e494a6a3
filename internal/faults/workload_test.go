package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// The workloads: clients in the hub namespace, each bound to one node, recording every operation.

// Per-operation bounds: the node's deadline for one request, and the client's wait for one step.
const (
	serverTimeout = 2 * time.Second
	clientWait    = 3 * time.Second
)

// loadSpec says which clients run.
type loadSpec struct {
	nodes                              []int // the nodes the clients talk to (each gets its own clients)
	rmwPerNode, casPerNode, setPerNode int
	rmwKeys, casKeys, setKeys          int
	think                              time.Duration // pause between a client's operations
}

// defaultLoad is the suite's load: 2 read-modify-write clients per node over 6 keys, one memcache cas
// client per node over 3 keys, one blind-set client per node over 4 keys, 25 ms between operations.
func defaultLoad(nodes ...int) loadSpec {
	return loadSpec{nodes: nodes, rmwPerNode: 2, casPerNode: 1, setPerNode: 1, rmwKeys: 6, casKeys: 3, setKeys: 4,
		think: 25 * time.Millisecond}
}

// workload runs the clients of a loadSpec until stop.
type workload struct {
	h    *harness
	hist *History
	keys []string // every key the workload writes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func keyNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// startLoad starts the clients. Keys are prefixed per harness run, so histories never mix.
func (h *harness) startLoad(spec loadSpec) *workload {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{h: h, hist: &History{}, ctx: ctx, cancel: cancel}
	rmw, cas, set := keyNames("rmw", spec.rmwKeys), keyNames("cas", spec.casKeys), keyNames("set", spec.setKeys)
	w.keys = append(append(append(w.keys, rmw...), cas...), set...)
	w.seed(h.node(spec.nodes[0]), rmw, RPCReadModifyWrite)
	w.seed(h.node(spec.nodes[0]), cas, MemcacheCas)
	h.t.Cleanup(w.stop)
	for _, i := range spec.nodes {
		n := h.node(i)
		for c := 0; c < spec.rmwPerNode; c++ {
			id := fmt.Sprintf("r%d%s", c, n.short)
			cl := h.rpcClient(n, clientWait)
			w.run(func(rng *rand.Rand) { w.rmwWorker(id, n, cl, rmw, rng, spec.think) })
		}
		for c := 0; c < spec.casPerNode; c++ {
			id := fmt.Sprintf("m%d%s", c, n.short)
			w.run(func(rng *rand.Rand) { w.casWorker(id, n, cas, rng, spec.think) })
		}
		for c := 0; c < spec.setPerNode; c++ {
			id := fmt.Sprintf("s%d%s", c, n.short)
			w.run(func(rng *rand.Rand) { w.setWorker(id, n, set, rng, spec.think) })
		}
	}
	h.event("load started: %d nodes × (%d rpc-rmw + %d mc-cas + %d mc-set clients)", len(spec.nodes), spec.rmwPerNode,
		spec.casPerNode, spec.setPerNode)
	return w
}

// seed writes each set key's first element before the clients start, one key at a time, so the clients
// find the keys: a client that finds no key writes without a context, and concurrent context-less writes
// are their own failure (the add race tests it), which would otherwise show up in every schedule. A seed
// write that fails is recorded and tried again (the same element: harmless) for up to 15 s.
func (w *workload) seed(n *fnode, keys []string, kind Kind) {
	w.h.t.Helper()
	for _, key := range keys {
		attempt := 0
		eventually.NoError(w.h.t, 15*time.Second, fmt.Sprintf("seed %s through %s", key, n.short), func() error {
			attempt++
			op := Op{Client: "seed", Node: n.name, Kind: kind, Key: key, Elem: "seed." + key, Invoke: time.Now(), Sent: true, Blind: true}
			ctx, cancel := context.WithTimeout(context.Background(), clientWait)
			_, err := n.admin.Put(ctx, []byte(key), EncodeSet([]string{op.Elem}), nil, &client.WriteOptions{Timeout: serverTimeout})
			cancel()
			op.Outcome, op.Answered = ClassifyRPCWrite(err)
			op.Complete = time.Now()
			if err != nil {
				op.Err = err.Error()
			}
			w.hist.Add(op)
			if err != nil {
				w.h.event("seed %s through %s: attempt %d failed: %v", key, n.short, attempt, err)
			}
			return err
		})
	}
}

var seedMu sync.Mutex
var seedRNG = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

func (w *workload) run(f func(*rand.Rand)) {
	seedMu.Lock()
	rng := rand.New(rand.NewPCG(seedRNG.Uint64(), seedRNG.Uint64()))
	seedMu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f(rng)
	}()
}

// stop ends the load and waits for the operations in flight (each is bounded).
func (w *workload) stop() {
	if w.ctx.Err() == nil {
		w.cancel()
		w.wg.Wait()
		w.h.event("load stopped: %d operations", len(w.hist.Ops()))
	}
	w.wg.Wait()
}

// rest waits between two operations; false when the load is stopping.
func (w *workload) rest(d time.Duration) bool {
	select {
	case <-w.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// rmwWorker: get (not_found is the empty set), union the siblings, add a unique element, put the union
// with the get's context.
func (w *workload) rmwWorker(id string, n *fnode, c *client.Client, keys []string, rng *rand.Rand, think time.Duration) {
	for seq := 0; w.ctx.Err() == nil; seq++ {
		key := keys[rng.IntN(len(keys))]
		op := Op{Client: id, Node: n.name, Kind: RPCReadModifyWrite, Key: key, Elem: fmt.Sprintf("%s.%d", id, seq), Invoke: time.Now()}
		// NB: not w.ctx: stopping the load lets operations in flight finish, so their outcome is known.
		ctx, cancel := context.WithTimeout(context.Background(), 2*clientWait)
		obj, err := c.Get(ctx, []byte(key), &client.ReadOptions{Timeout: serverTimeout})
		var elems []string
		var vctx []byte
		switch {
		case err == nil:
			for _, v := range obj.Values {
				elems = append(elems, DecodeSet(v.Data)...)
			}
			vctx = obj.Context
		case errors.Is(err, client.ErrNotFound):
		default:
			op.Outcome, op.Err = Fail, "get: "+err.Error()
		}
		if op.Outcome == 0 {
			op.Sent, op.Blind = true, vctx == nil
			_, err = c.Put(ctx, []byte(key), EncodeSet(append(elems, op.Elem)), vctx, &client.WriteOptions{Timeout: serverTimeout})
			op.Outcome, op.Answered = ClassifyRPCWrite(err)
			if err != nil {
				op.Err = "put: " + err.Error()
				var de *DialError
				op.Sent = !errors.As(err, &de)
			}
		}
		cancel()
		op.Complete = time.Now()
		w.hist.Add(op)
		if !w.rest(think) {
			return
		}
	}
}

// casWorker: gets (every sibling, one cas unique), union, add a unique element, cas with the unique; add
// on a miss. EXISTS, NOT_FOUND and NOT_STORED are definite failures.
func (w *workload) casWorker(id string, n *fnode, keys []string, rng *rand.Rand, think time.Duration) {
	m := &mcClient{topo: w.h.topo, addr: n.mcAddr()}
	defer m.close()
	for seq := 0; w.ctx.Err() == nil; seq++ {
		key := keys[rng.IntN(len(keys))]
		op := Op{Client: id, Node: n.name, Kind: MemcacheCas, Key: key, Elem: fmt.Sprintf("%s.%d", id, seq), Invoke: time.Now()}
		vals, unique, err := m.gets(key)
		if err != nil {
			op.Outcome, op.Err = Fail, "gets: "+err.Error()
		} else {
			var reply string
			if vals == nil {
				op.Blind = true
				reply, err = m.store("add", key, EncodeSet([]string{op.Elem}), "")
			} else {
				reply, err = m.store("cas", key, EncodeSet(append(UnionValues(vals), op.Elem)), unique)
			}
			op.Outcome, op.Answered = ClassifyMemcacheStore(reply, err)
			var de *DialError
			op.Sent = !errors.As(err, &de)
			switch {
			case err != nil:
				op.Err = err.Error()
			case op.Outcome != OK:
				op.Err = reply
			}
		}
		op.Complete = time.Now()
		w.hist.Add(op)
		if !w.rest(think) {
			return
		}
	}
}

// setWorker: plain memcache set of a unique value (last writer wins: only availability is measured).
func (w *workload) setWorker(id string, n *fnode, keys []string, rng *rand.Rand, think time.Duration) {
	m := &mcClient{topo: w.h.topo, addr: n.mcAddr()}
	defer m.close()
	for seq := 0; w.ctx.Err() == nil; seq++ {
		key := keys[rng.IntN(len(keys))]
		op := Op{Client: id, Node: n.name, Kind: MemcacheSet, Key: key, Elem: fmt.Sprintf("%s.%d", id, seq), Invoke: time.Now(), Blind: true}
		reply, err := m.store("set", key, []byte(op.Elem), "")
		op.Outcome, op.Answered = ClassifyMemcacheStore(reply, err)
		var de *DialError
		op.Sent = !errors.As(err, &de)
		switch {
		case err != nil:
			op.Err = err.Error()
		case op.Outcome != OK:
			op.Err = reply
		}
		op.Complete = time.Now()
		w.hist.Add(op)
		if !w.rest(think) {
			return
		}
	}
}

// --- memcache add race -----------------------------------------------------------------------------------

// addRace makes two clients, one through node a and one through node b, add each of count fresh keys at
// the same moment with different values, and records both outcomes.
func (h *harness) addRace(prefix string, count int, a, b *fnode) (*History, []string) {
	hist := &History{}
	ma := &mcClient{topo: h.topo, addr: a.mcAddr()}
	mb := &mcClient{topo: h.topo, addr: b.mcAddr()}
	defer ma.close()
	defer mb.close()
	keys := keyNames(prefix, count)
	for _, key := range keys {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for side, m := range map[string]*mcClient{"a": ma, "b": mb} {
			n := a
			if side == "b" {
				n = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				op := Op{Client: "add-" + side, Node: n.name, Kind: MemcacheAdd, Key: key, Elem: key + "." + side,
					Invoke: time.Now(), Blind: true}
				reply, err := m.store("add", key, []byte(op.Elem), "")
				op.Outcome, op.Answered = ClassifyMemcacheStore(reply, err)
				var de *DialError
				op.Sent = !errors.As(err, &de)
				switch {
				case err != nil:
					op.Err = err.Error()
				case op.Outcome != OK:
					op.Err = reply
				}
				op.Complete = time.Now()
				hist.Add(op)
			}()
		}
		close(start)
		wg.Wait()
	}
	return hist, keys
}

// --- a raw memcache text client ----------------------------------------------------------------------------

// mcClient is one memcache connection to a node from the hub, dialled on demand and dropped after any
// error (the stream may be out of sync).
type mcClient struct {
	topo *Topology
	addr string
	c    net.Conn
	r    *bufio.Reader
}

func (m *mcClient) close() {
	if m.c != nil {
		m.c.Close()
		m.c, m.r = nil, nil
	}
}

func (m *mcClient) conn() error {
	if m.c != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := m.topo.Dial(ctx, "tcp", m.addr)
	if err != nil {
		return err
	}
	m.c, m.r = c, bufio.NewReaderSize(c, 64<<10)
	return nil
}

// roundTrip sends req and returns the reader positioned at the reply; on error the connection is dropped.
func (m *mcClient) send(req []byte) error {
	if err := m.conn(); err != nil {
		return err
	}
	_ = m.c.SetDeadline(time.Now().Add(clientWait))
	if _, err := m.c.Write(req); err != nil {
		m.close()
		return err
	}
	return nil
}

func (m *mcClient) line() (string, error) {
	l, err := m.r.ReadString('\n')
	if err != nil {
		m.close()
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// gets returns every sibling of key and their cas unique; nil values on a miss.
func (m *mcClient) gets(key string) ([][]byte, string, error) {
	if err := m.send([]byte("gets " + key + "\r\n")); err != nil {
		return nil, "", err
	}
	var vals [][]byte
	unique := ""
	for {
		l, err := m.line()
		if err != nil {
			return nil, "", err
		}
		if l == "END" {
			return vals, unique, nil
		}
		f := strings.Fields(l)
		if len(f) != 5 || f[0] != "VALUE" || f[1] != key {
			m.close()
			return nil, "", fmt.Errorf("gets %s: unexpected line %q", key, l)
		}
		size, err := strconv.Atoi(f[3])
		if err != nil || size < 0 || size > 1<<20 {
			m.close()
			return nil, "", fmt.Errorf("gets %s: bad size in %q", key, l)
		}
		if unique != "" && f[4] != unique {
			m.close()
			return nil, "", fmt.Errorf("gets %s: siblings with different cas uniques %s and %s", key, unique, f[4])
		}
		unique = f[4]
		data := make([]byte, size+2)
		if _, err := io.ReadFull(m.r, data); err != nil {
			m.close()
			return nil, "", err
		}
		if !bytes.HasSuffix(data, []byte("\r\n")) {
			m.close()
			return nil, "", fmt.Errorf("gets %s: data block without CRLF", key)
		}
		vals = append(vals, data[:size])
	}
}

// store sends a storage command (set, add, cas with unique) and returns its reply line.
func (m *mcClient) store(cmd, key string, value []byte, unique string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s 0 0 %d", cmd, key, len(value))
	if unique != "" {
		b.WriteString(" " + unique)
	}
	b.WriteString("\r\n")
	b.Write(value)
	b.WriteString("\r\n")
	if err := m.send(b.Bytes()); err != nil {
		return "", err
	}
	return m.line()
}
