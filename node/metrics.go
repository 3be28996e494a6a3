package node

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/syndtr/goleveldb/leveldb"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/storage"
)

// The node's Prometheus metrics (docs/metrics.md lists every series). Each node has its own registry (a
// process may run several nodes in tests). Two kinds of series:
//
//   - request series, updated on the request path: the coordinators' requests by op and result with a
//     latency histogram per op (coordinator.Observer), and the vnodes' commands with a histogram per
//     command (vnode.ManagerConfig.Observe). Their label children are resolved once per op or command
//     and kept in copy-on-write maps, so a request costs two clock reads and two atomic adds per level;
//   - state series, read when Prometheus scrapes (nodeCollector): the counters the node's parts already
//     keep (stats), cluster membership, transfers, storage. They cost nothing between scrapes.
//
// Other parts of the node register their own collectors on Node.MetricsRegistry (anti-entropy: see
// docs/metrics.md for the names reserved for it).

// vnodeTimeEvery is how many commands of a vnode pass for each one timed: every command is counted
// (gokai_vnode_commands_total), one in vnodeTimeEvery is timed (gokai_vnode_command_duration_seconds).
// Timing every command cost about a tenth of a local read's CPU (two clock reads and a histogram
// observation per replica); a sample keeps the distribution at an eighth of that.
const vnodeTimeEvery = 8

// latencyBuckets are the request histograms' upper bounds in seconds: 50µs (a local read on an idle
// node) to 10s (past any request timeout).
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// nodeMetrics is a node's registry and its request series.
type nodeMetrics struct {
	reg *prometheus.Registry

	coordRequests *prometheus.CounterVec   // service, op, result
	coordLatency  *prometheus.HistogramVec // service, op
	vnodeCommands *prometheus.HistogramVec // service, command (sampled)
	vnodeCount    *prometheus.CounterVec   // service, command

	obsMu     sync.Mutex
	observers []*coordObserver // every service's, for the status page's chart. REQUIRES: obsMu held
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.coordRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gokai_coordinator_requests_total",
		Help: "Requests the coordinators finished, by service, op and result (ok, timeout, quorum, overload, shutting_down, bad_request, crashed, canceled, error)."},
		[]string{"service", "op", "result"})
	m.coordLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gokai_coordinator_request_duration_seconds",
		Help: "Time from a request's admission to its answer at the coordinator, by service and op.", Buckets: latencyBuckets},
		[]string{"service", "op"})
	m.vnodeCommands = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gokai_vnode_command_duration_seconds",
		Help:    "Time a vnode spent on one command (its behaviour's handling, or the forward during a handoff), by service and command; one command in 8 of each vnode is timed.",
		Buckets: latencyBuckets}, []string{"service", "command"})
	m.vnodeCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gokai_vnode_commands_total",
		Help: "Commands the vnodes took, by service and command."}, []string{"service", "command"})
	m.reg.MustRegister(m.coordRequests, m.coordLatency, m.vnodeCommands, m.vnodeCount,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		nodeCollector{n})
	return m
}

// MetricsRegistry is where the node's parts register their Prometheus collectors; it is what /metrics
// serves. Nil when http-listen is "" (no metrics).
func (n *Node) MetricsRegistry() prometheus.Registerer {
	if n.web == nil {
		return nil
	}
	return n.web.metrics.reg
}

// coordinatorObserver is the request metrics of service svc's coordinators; nil without metrics.
func (n *Node) coordinatorObserver(svc string) coordinator.Observer {
	if n.web == nil {
		return nil
	}
	return n.web.metrics.coordinatorObserver(svc)
}

// vnodeObserver is the command metrics of service svc's vnodes; nil without metrics.
func (n *Node) vnodeObserver(svc string) func(cmd any, took time.Duration) {
	if n.web == nil {
		return nil
	}
	return n.web.metrics.vnodeObserve(svc)
}

// Results of a request, the result label of gokai_coordinator_requests_total.
const (
	resultOK           = "ok"
	resultTimeout      = "timeout"
	resultQuorum       = "quorum"
	resultOverload     = "overload"
	resultShuttingDown = "shutting_down"
	resultBadRequest   = "bad_request"
	resultCrashed      = "crashed"
	resultCanceled     = "canceled"
	resultError        = "error"
)

var requestResults = []string{resultOK, resultTimeout, resultQuorum, resultOverload, resultShuttingDown,
	resultBadRequest, resultCrashed, resultCanceled, resultError}

// requestResult classifies a coordinator's answer.
func requestResult(err error) string {
	if err == nil {
		return resultOK
	}
	var qe *coordinator.QuorumError
	switch {
	case errors.As(err, &qe):
		if qe.Timeout {
			return resultTimeout
		}
		return resultQuorum
	case errors.Is(err, coordinator.ErrOverload):
		return resultOverload
	case errors.Is(err, coordinator.ErrShuttingDown):
		return resultShuttingDown
	case errors.Is(err, coordinator.ErrBadRequest):
		return resultBadRequest
	case errors.Is(err, coordinator.ErrCoordinatorCrashed):
		return resultCrashed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return resultCanceled
	}
	return resultError
}

// opSeries are one op's resolved series.
type opSeries struct {
	latency prometheus.Observer
	results map[string]prometheus.Counter
}

// coordObserver is one service's coordinator.Observer.
type coordObserver struct {
	m   *nodeMetrics
	svc string
	mu  sync.Mutex                           // serialises additions to ops
	ops atomic.Pointer[map[string]*opSeries] // copy on write
}

var _ coordinator.Observer = (*coordObserver)(nil)

func (m *nodeMetrics) coordinatorObserver(svc string) *coordObserver {
	o := &coordObserver{m: m, svc: svc}
	empty := map[string]*opSeries{}
	o.ops.Store(&empty)
	m.obsMu.Lock()
	m.observers = append(m.observers, o)
	m.obsMu.Unlock()
	return o
}

func (o *coordObserver) Done(op string, took time.Duration, err error) {
	s := (*o.ops.Load())[op]
	if s == nil {
		s = o.add(op)
	}
	s.latency.Observe(took.Seconds())
	s.results[requestResult(err)].Inc()
}

func (o *coordObserver) add(op string) *opSeries {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *o.ops.Load()
	if s := old[op]; s != nil {
		return s
	}
	s := &opSeries{latency: o.m.coordLatency.WithLabelValues(o.svc, op), results: map[string]prometheus.Counter{}}
	for _, r := range requestResults {
		s.results[r] = o.m.coordRequests.WithLabelValues(o.svc, op, r)
	}
	next := make(map[string]*opSeries, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[op] = s
	o.ops.Store(&next)
	return s
}

// vnodeObserver is one service's vnode.ManagerConfig.Observe: commands are named by their Go type.
type vnodeObserver struct {
	m    *nodeMetrics
	svc  string
	mu   sync.Mutex                                  // serialises additions to cmds
	cmds atomic.Pointer[map[reflect.Type]*cmdSeries] // copy on write
}

// cmdSeries are one command type's resolved series.
type cmdSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

func (m *nodeMetrics) vnodeObserve(svc string) func(cmd any, took time.Duration) {
	o := &vnodeObserver{m: m, svc: svc}
	empty := map[reflect.Type]*cmdSeries{}
	o.cmds.Store(&empty)
	return o.observe
}

// observe counts cmd, and records took unless it is negative (an untimed command).
func (o *vnodeObserver) observe(cmd any, took time.Duration) {
	t := reflect.TypeOf(cmd)
	s := (*o.cmds.Load())[t]
	if s == nil {
		s = o.add(t)
	}
	s.count.Inc()
	if took >= 0 {
		s.latency.Observe(took.Seconds())
	}
}

func (o *vnodeObserver) add(t reflect.Type) *cmdSeries {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := *o.cmds.Load()
	if s := old[t]; s != nil {
		return s
	}
	name := commandName(t)
	s := &cmdSeries{count: o.m.vnodeCount.WithLabelValues(o.svc, name), latency: o.m.vnodeCommands.WithLabelValues(o.svc, name)}
	next := make(map[reflect.Type]*cmdSeries, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[t] = s
	o.cmds.Store(&next)
	return s
}

// commandName is a command's label: its type's name without pointer ("GetRequest"), or "other" for an
// unnamed type.
func commandName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Name() == "" {
		return "other"
	}
	return t.Name()
}

// nodeCollector reads the node's state when Prometheus scrapes. Before the node started and once it is
// stopping it reports only gokai_ready (0): the node's parts are not there to read.
type nodeCollector struct{ n *Node }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dReady     = desc("gokai_ready", "1 when /readyz answers 200, else 0.")
	dBuildInfo = desc("gokai_build_info", "Always 1: the node's name and gokai version.", "node", "version", "goversion")
	dRingQ     = desc("gokai_ring_partitions", "Partitions in the ring (Q).")
	dRingVer   = desc("gokai_cluster_state_version", "Version of the cluster state this node holds.")
	dOwned     = desc("gokai_ring_owned_partitions", "Partitions this node owns in the ring it holds.")
	dMembers   = desc("gokai_cluster_members", "Members of the cluster state, by state as this node sees them (up: alive and not suspected).", "state")
	dPending   = desc("gokai_cluster_transfers_pending", "Ownership transfers the cluster state still waits for (all nodes).")
	dSuspected = desc("gokai_peers_suspected", "Peers this node's failure detection suspects now.")
	dSuspicion = desc("gokai_peer_suspicions_total", "Times a peer became suspected.")
	dReconnect = desc("gokai_gossip_reconnects_total", "Re-joins of members gossip had lost.")

	dVnodes       = desc("gokai_vnodes", "Vnodes running, by service.", "service")
	dVRestarts    = desc("gokai_vnode_restarts_total", "Vnode restarts after a crash, by service.", "service")
	dMailbox      = desc("gokai_vnode_mailbox_messages", "Messages waiting in the vnodes' mailboxes, summed, by service.", "service")
	dMailboxMax   = desc("gokai_vnode_mailbox_messages_max", "Messages waiting in the fullest vnode mailbox, by service.", "service")
	dAsyncRefused = desc("gokai_vnode_async_refused_total", "Async jobs and coverage streams refused because the worker pool queue was full, by service.", "service")
	dReceived     = desc("gokai_handoff_received_items_total", "Handoff items (transfers, forwards, re-homed keys) this node's vnodes merged, by service.", "service")

	dInFlight  = desc("gokai_coordinators_in_flight", "Coordinators alive (answered-but-lingering included), by service.", "service")
	dRepairs   = desc("gokai_read_repairs_total", "Read-repair writes sent to stale or missing replicas, by service.", "service")
	dOverloads = desc("gokai_overload_sheds_total", "Requests refused because max-in-flight coordinators were running, by service.", "service")
	dFallbacks = desc("gokai_fallback_writes_total", "Writes sent to a fallback because a replica failed or was silent, by service.", "service")

	dHandoffActive = desc("gokai_handoff_transfers_active", "Outgoing transfers not done, by kind (ownership, hinted).", "kind")
	dHandoffKeys   = desc("gokai_handoff_keys_sent_total", "Items sent in acknowledged handoff batches, by kind.", "kind")
	dHandoffBytes  = desc("gokai_handoff_bytes_sent_total", "Bytes sent in acknowledged handoff batches, by kind.", "kind")
	dHandoffTries  = desc("gokai_handoff_attempts_total", "Transfer attempts that put a vnode in handoff mode.")
	dHintedRounds  = desc("gokai_hinted_handoffs_total", "Hinted handoffs that delivered data and dropped it.")
	dHintsPending  = desc("gokai_hints_pending_partitions", "Partitions (per service) holding hints this node has still to hand off.")
	dRehomed       = desc("gokai_rehomed_keys_total", "Keys moved to the partition their preference list names.")

	dDiskFull   = desc("gokai_storage_disk_full", "1 while writes fail because the disk is full.")
	dRecoveries = desc("gokai_storage_disk_full_recoveries_total", "Times storage came back after the disk was full.")
	dDropsDue   = desc("gokai_storage_dropped_partitions_pending", "Dropped partitions whose space the deferred compaction has still to take back.")
	dDropComps  = desc("gokai_storage_drop_compactions_total", "Deferred compactions of dropped partitions done.")
	dLevelBytes = desc("gokai_leveldb_level_bytes", "Bytes of goleveldb tables on disk, by level.", "level")
	dLevelTabs  = desc("gokai_leveldb_level_tables", "goleveldb tables, by level.", "level")
	dCompact    = desc("gokai_leveldb_compactions_total", "goleveldb compactions, by kind (memtable, level0, nonlevel0, seek).", "kind")
	dStalls     = desc("gokai_leveldb_write_delays_total", "Writes goleveldb delayed (write stalls).")
	dStallSecs  = desc("gokai_leveldb_write_delay_seconds_total", "Time writes spent delayed by goleveldb.")
	dPaused     = desc("gokai_leveldb_write_paused", "1 while goleveldb pauses writes (level 0 full).")
	dIO         = desc("gokai_leveldb_io_bytes_total", "Bytes goleveldb read and wrote, by direction.", "direction")
	dOpenTables = desc("gokai_leveldb_open_tables", "goleveldb tables open in its file cache.")

	dClientMem     = desc("gokai_client_memory_bytes", "Bytes client requests and responses in flight hold (both faces).")
	dClientMemMax  = desc("gokai_client_memory_limit_bytes", "client-memory-mib in bytes.")
	dClientRefused = desc("gokai_client_memory_refusals_total", "Requests refused because client-memory-mib was spent.")
	dRPCConns      = desc("gokai_rpc_connections", "Open msgpack-RPC connections.")
	dRPCRequests   = desc("gokai_rpc_requests_total", "msgpack-RPC requests received.")
	dRPCErrors     = desc("gokai_rpc_errors_total", "msgpack-RPC requests answered with an error.")
	dRPCBadFrames  = desc("gokai_rpc_bad_frames_total", "msgpack-RPC connections closed for a malformed message.")
	dRPCOverloads  = desc("gokai_rpc_overloads_total", "msgpack-RPC requests refused for memory.")
	dRPCTimeouts   = desc("gokai_rpc_read_timeouts_total", "msgpack-RPC connections closed because a started message did not arrive in time.")

	dAAEExchanges = desc("gokai_aae_exchanges_total", "Anti-entropy exchanges this node planned, by result (ok, error: a vnode did not answer or refused, skipped: the peer was down).", "result")
	dAAERunning   = desc("gokai_aae_exchanges_running", "Anti-entropy exchanges running now.")
	dAAEDiffering = desc("gokai_aae_keys_differing_total", "Keys anti-entropy exchanges found differing between replicas.")
	dAAERepairs   = desc("gokai_aae_repairs_total", "Keys anti-entropy repaired, by result (ok, error).", "result")
	dAAEBuilds    = desc("gokai_aae_tree_builds_total", "Hash-tree rebuilds from storage of this node's vnodes (after a crash, a verifying rebuild), by service.", "service")
	dAAEMismatch  = desc("gokai_aae_tree_mismatches_total", "Verifying rebuilds that found a vnode's hash trees out of step with its storage, by service.", "service")
)

var allDescs = []*prometheus.Desc{dReady, dBuildInfo, dRingQ, dRingVer, dOwned, dMembers, dPending, dSuspected, dSuspicion,
	dReconnect, dVnodes, dVRestarts, dMailbox, dMailboxMax, dAsyncRefused, dReceived, dInFlight, dRepairs, dOverloads,
	dFallbacks, dHandoffActive, dHandoffKeys, dHandoffBytes, dHandoffTries, dHintedRounds, dHintsPending, dRehomed,
	dDiskFull, dRecoveries, dDropsDue, dDropComps, dLevelBytes, dLevelTabs, dCompact, dStalls, dStallSecs, dPaused, dIO, dOpenTables,
	dClientMem, dClientMemMax, dClientRefused, dRPCConns, dRPCRequests, dRPCErrors, dRPCBadFrames, dRPCOverloads, dRPCTimeouts,
	dAAEExchanges, dAAERunning, dAAEDiffering, dAAERepairs, dAAEBuilds, dAAEMismatch}

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	ready, _ := readiness(n.readyInput())
	gauge(ch, dReady, boolf(ready))
	gauge(ch, dBuildInfo, 1, n.cfg.Name, Version, runtime.Version())
	if !n.web.started.Load() || n.web.stopping.Load() {
		return
	}
	n.collectCluster(ch)
	n.collectServices(ch)
	n.collectHandoff(ch)
	n.collectStorage(ch)
	n.collectClients(ch)
	n.collectAAE(ch)
}

// collectAAE reads the anti-entropy manager's counters and the vnodes' hash-tree status (nothing when
// anti-entropy is off).
func (n *Node) collectAAE(ch chan<- prometheus.Metric) {
	if n.aae == nil {
		return
	}
	s := n.aae.Stats()
	counter(ch, dAAEExchanges, float64(s.Exchanges-s.ExchangeErrors), "ok")
	counter(ch, dAAEExchanges, float64(s.ExchangeErrors), "error")
	counter(ch, dAAEExchanges, float64(s.Skipped), "skipped")
	gauge(ch, dAAERunning, float64(s.Running))
	counter(ch, dAAEDiffering, float64(s.KeysDiffering))
	counter(ch, dAAERepairs, float64(s.KeysRepaired), "ok")
	counter(ch, dAAERepairs, float64(s.RepairErrors), "error")
	for _, rt := range n.svcs {
		if rt.vnodes == nil {
			continue
		}
		builds, mismatched := n.aaeTreeCounts(rt)
		counter(ch, dAAEBuilds, float64(builds), rt.spec.Name)
		counter(ch, dAAEMismatch, float64(mismatched), rt.spec.Name)
	}
}

func (n *Node) collectCluster(ch chan<- prometheus.Metric) {
	s := n.state()
	gauge(ch, dRingQ, float64(s.Ring.Q()))
	gauge(ch, dRingVer, float64(s.Version))
	gauge(ch, dOwned, float64(len(s.Ring.PartitionsOf(n.self()))))
	var up, down int
	for _, m := range s.Members {
		if n.isUp(m.Name) {
			up++
		} else {
			down++
		}
	}
	gauge(ch, dMembers, float64(up), "up")
	gauge(ch, dMembers, float64(down), "down")
	gauge(ch, dPending, float64(len(s.Transfers)))
	gauge(ch, dSuspected, float64(len(n.cl.fd.Suspected())))
	counter(ch, dSuspicion, float64(n.cl.fd.suspicions.Load()))
	counter(ch, dReconnect, float64(n.cl.gossip.Reconnects()))
}

func (n *Node) collectServices(ch chan<- prometheus.Metric) {
	for _, rt := range n.svcs {
		svc := rt.spec.Name
		if v := rt.vnodes; v != nil {
			gauge(ch, dVnodes, float64(len(v.Partitions())), svc)
			counter(ch, dVRestarts, float64(v.Metrics().Restarts()), svc)
			total, deepest := v.MailboxDepth()
			gauge(ch, dMailbox, float64(total), svc)
			gauge(ch, dMailboxMax, float64(deepest), svc)
			counter(ch, dAsyncRefused, float64(v.Metrics().AsyncRefused()), svc)
			counter(ch, dReceived, float64(v.Metrics().HandoffItemsReceived()), svc)
		}
		if cs := rt.coords; cs != nil {
			st := cs.Stats()
			gauge(ch, dInFlight, float64(st.Active), svc)
			counter(ch, dRepairs, float64(st.ReadRepairs), svc)
			counter(ch, dOverloads, float64(st.Overloads), svc)
			counter(ch, dFallbacks, float64(st.Fallbacks), svc)
		}
	}
}

func (n *Node) collectHandoff(ch chan<- prometheus.Metric) {
	h := n.cl.handoff
	var active [2]int
	hints := 0
	for _, p := range h.Progress() {
		if p.State == "done" {
			continue
		}
		if p.Hinted {
			active[1]++
			hints++
		} else {
			active[0]++
		}
	}
	gauge(ch, dHandoffActive, float64(active[0]), "ownership")
	gauge(ch, dHandoffActive, float64(active[1]), "hinted")
	ok, ob, hk, hb := h.Sent()
	counter(ch, dHandoffKeys, float64(ok), "ownership")
	counter(ch, dHandoffKeys, float64(hk), "hinted")
	counter(ch, dHandoffBytes, float64(ob), "ownership")
	counter(ch, dHandoffBytes, float64(hb), "hinted")
	counter(ch, dHandoffTries, float64(h.Attempts()))
	counter(ch, dHintedRounds, float64(h.HintedRounds()))
	gauge(ch, dHintsPending, float64(hints))
	counter(ch, dRehomed, float64(n.cl.rehome.moved.Load()))
}

func (n *Node) collectStorage(ch chan<- prometheus.Metric) {
	db, ok := n.backend.(*storage.LevelDB)
	if !ok {
		return
	}
	gauge(ch, dDiskFull, boolf(db.DiskFull()))
	counter(ch, dRecoveries, float64(db.Recoveries()))
	done, pending := db.DropCompactions()
	gauge(ch, dDropsDue, float64(pending))
	counter(ch, dDropComps, float64(done))
	var st leveldb.DBStats
	if err := db.Stats(&st); err != nil {
		return // reopening after a full disk: the series come back with the DB
	}
	for l, b := range st.LevelSizes {
		lv := strconv.Itoa(l)
		gauge(ch, dLevelBytes, float64(b), lv)
		if l < len(st.LevelTablesCounts) {
			gauge(ch, dLevelTabs, float64(st.LevelTablesCounts[l]), lv)
		}
	}
	counter(ch, dCompact, float64(st.MemComp), "memtable")
	counter(ch, dCompact, float64(st.Level0Comp), "level0")
	counter(ch, dCompact, float64(st.NonLevel0Comp), "nonlevel0")
	counter(ch, dCompact, float64(st.SeekComp), "seek")
	counter(ch, dStalls, float64(st.WriteDelayCount))
	counter(ch, dStallSecs, st.WriteDelayDuration.Seconds())
	gauge(ch, dPaused, boolf(st.WritePaused))
	counter(ch, dIO, float64(st.IORead), "read")
	counter(ch, dIO, float64(st.IOWrite), "write")
	gauge(ch, dOpenTables, float64(st.OpenedTablesCount))
}

func (n *Node) collectClients(ch chan<- prometheus.Metric) {
	gauge(ch, dClientMem, float64(n.mem.Used()))
	gauge(ch, dClientMemMax, float64(n.mem.Limit()))
	counter(ch, dClientRefused, float64(n.mem.Refused()))
	if n.rpc != nil {
		rs := n.rpc.Stats()
		gauge(ch, dRPCConns, float64(rs.Conns))
		counter(ch, dRPCRequests, float64(rs.Requests))
		counter(ch, dRPCErrors, float64(rs.Errors))
		counter(ch, dRPCBadFrames, float64(rs.BadFrames))
		counter(ch, dRPCOverloads, float64(rs.Overloads))
		counter(ch, dRPCTimeouts, float64(rs.ReadTimeouts))
	}
}
