package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/entropy"
	"github.com/gokai-kv/gokai/internal/netserve"
	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/supervisor"
)

// Version is gokai's version string.
var Version = "0.1.0"

func nodeID(name string) ring.NodeID { return ring.NodeID(name) }

// Node is one running gokai node: its supervision tree and handles on its parts for tools and tests.
type Node struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	tree   *supervisor.Tree

	stopOnce sync.Once
	stopErr  error

	pki *pki.Bundle // certs-dir; nil without

	system  *actor.ActorSystem
	disp    *actors.Dispatcher
	backend storage.Backend
	cl      *cluster
	aae     *entropy.Manager // aae-sup; nil before it starts

	// The services, in registration order (New); each has its own vnode supervisor and coordinators.
	svcs       []*svcRuntime
	svcByName  map[string]*svcRuntime
	defaultSvc *svcRuntime               // the one that serves memcache and unprefixed methods; may be nil
	methods    map[string]service.Method // every service's msgpack-RPC methods; set once their Start ran

	mc   *memcache.Server
	mcLn net.Listener

	rpc   *rpc.Server
	rpcLn net.Listener

	// mem is the budget both client faces share (ClientMemoryMiB).
	mem *netserve.Budget

	web *web // the HTTP listener and metrics (http.go, metrics.go); nil when HTTPListen is ""

	logs *logState // the log handler's rate limits and peer names (logging.go)

	vnodeTimeEvery int // vnode commands timed for metrics: one in this many (metrics.go)
}

// New prepares a node running the services opts register (WithService; at least one); Start brings it up.
// now may be nil (time.Now).
func New(cfg Config, logger *slog.Logger, now func() time.Time, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	lh := newLogHandler(logger.Handler())
	n := &Node{cfg: cfg, logger: slog.New(lh).With("node", cfg.Name), now: now, logs: lh.st}
	n.vnodeTimeEvery = vnodeTimeEvery
	if o.vnodeTimeEvery > 0 {
		n.vnodeTimeEvery = o.vnodeTimeEvery
	}
	if err := n.setupServices(o.services); err != nil {
		return nil, err
	}
	if n.defaultSvc == nil {
		// NB: memcache is the default service's face: without one the node serves none.
		n.cfg.MemcacheListen = ""
	}
	if err := n.loadSecurity(); err != nil {
		return nil, err
	}
	n.mem = netserve.NewBudget(int64(cfg.ClientMemoryMiB) << 20)
	// When the clients' buffers have drained after a burst, hand the memory back to the OS now rather
	// than at the collector's leisure.
	n.mem.OnLow = debug.FreeOSMemory
	n.tree = supervisor.New(n.logger, now)
	// The client sockets are bound first, so the addresses gossip advertises are known (connections wait
	// in the backlog until the listeners serve, last).
	n.tree.Add(supervisor.Child{Name: "bind", Start: n.bind, Stop: n.unbind})
	if cfg.HTTPListen != "" {
		// NB: second, so health checks answer (and /readyz says "starting") while the rest starts.
		n.web = &web{}
		n.web.metrics = newNodeMetrics(n)
		n.tree.Add(supervisor.Child{Name: "http", Start: n.startHTTP, Run: n.runHTTP, Stop: n.stopHTTP})
	}
	n.tree.Add(supervisor.Child{Name: "storage", Start: n.startStorage, Run: n.healStorage, Stop: n.stopStorage})
	n.tree.Add(supervisor.Child{Name: "cluster", Start: n.startCluster, Stop: n.stopCluster})
	// One vnode supervisor per service, in registration order (stopped in reverse).
	for _, rt := range n.svcs {
		n.tree.Add(supervisor.Child{Name: rt.sup, Start: func(context.Context) error { return n.startVnodes(rt) },
			Stop: func(ctx context.Context) error { return rt.vnodes.Stop(ctx) }})
	}
	n.tree.Add(supervisor.Child{Name: "handoff-sup", Start: n.startHandoff, Stop: n.stopHandoff})
	n.tree.Add(supervisor.Child{Name: "coordinator-sup", Start: n.startCoordinators, Stop: n.stopCoordinators})
	// Anti-entropy repairs through the coordinators: it starts after them and stops before them.
	n.tree.Add(supervisor.Child{Name: entropy.SupervisorName, Start: n.startAAE, Stop: n.stopAAE})
	n.tree.Add(supervisor.Child{Name: "cluster-watch", Run: n.watchCluster})
	if n.cfg.MemcacheListen != "" {
		n.tree.Add(supervisor.Child{Name: "memcache", Start: n.startMemcache, Run: n.runMemcache, Stop: n.stopMemcache})
	}
	if cfg.RPCListen != "" {
		n.tree.Add(supervisor.Child{Name: "msgpack-rpc", Start: n.startRPC, Run: n.runRPC, Stop: n.stopRPC})
	}
	if cfg.DebugListen != "" {
		n.tree.Add(supervisor.Child{Name: "debug", Run: n.runDebug})
	}
	return n, nil
}

// Start starts the tree in order: storage, cluster, each service's vnodes, handoff, coordinators (and the
// services' client sides), listeners.
func (n *Node) Start(ctx context.Context) error {
	n.system = actors.NewSystem(n.logger)
	n.disp = actors.NewDispatcher(max(8, 4*runtime.GOMAXPROCS(0)), 300)
	if err := n.tree.Start(ctx); err != nil {
		return err
	}
	if n.web != nil {
		n.web.started.Store(true)
	}
	return nil
}

// Stop stops accepting, drains in-flight requests, stops vnodes and closes storage (reverse order). Later
// calls return the first call's result.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		if n.web != nil {
			n.web.stopping.Store(true)
		}
		n.stopErr = n.tree.Stop(ctx)
		if n.system != nil {
			n.system.Shutdown()
			n.disp.Close()
		}
	})
	return n.stopErr
}

// Done delivers a failure the node's tree could not handle (the node should then Stop and exit non-zero).
func (n *Node) Done() <-chan error { return n.tree.Done() }

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// MemcacheAddr is the bound memcache address ("" when disabled or not started).
func (n *Node) MemcacheAddr() string {
	if n.mcLn == nil {
		return ""
	}
	return n.mcLn.Addr().String()
}

// RPCAddr is the bound msgpack-RPC address ("" when disabled or not started).
func (n *Node) RPCAddr() string {
	if n.rpcLn == nil {
		return ""
	}
	return n.rpcLn.Addr().String()
}

// TransportAddr is the node-to-node transport address other nodes reach this one at (the SEED of a
// cluster join); "" before Start.
func (n *Node) TransportAddr() string {
	if n.cl == nil || n.cl.remote == nil {
		return ""
	}
	return n.cl.remote.Address()
}

// Backend, Ring and System expose the node's parts to tools and tests (Vnodes and Coordinators, per
// service, are in services.go).
func (n *Node) Backend() storage.Backend   { return n.backend }
func (n *Node) Ring() *ring.Ring           { return n.state().Ring }
func (n *Node) System() *actor.ActorSystem { return n.system }

func (n *Node) startStorage(context.Context) error {
	switch n.cfg.Backend {
	case "memory":
		n.backend = storage.NewMemory()
		return nil
	default:
		if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
			return err
		}
		lc := storage.DefaultLevelDBConfig(filepath.Join(n.cfg.DataDir, "leveldb"))
		lc.Sync, lc.WriteBufferMiB, lc.BlockCacheMiB = n.cfg.Sync, n.cfg.WriteBufMiB, n.cfg.BlockCacheMB
		lc.Logger = n.logger.With("component", "storage")
		db, err := storage.OpenLevelDB(lc)
		if err != nil {
			return err
		}
		n.backend = db
		return nil
	}
}

func (n *Node) stopStorage(context.Context) error { return n.backend.Close() }

// healStorage runs the backend's recovery from a full disk (storage.LevelDB.Heal): writes come back by
// themselves once space is freed, without a restart. Other backends have no disk.
func (n *Node) healStorage(ctx context.Context) error {
	if db, ok := n.backend.(*storage.LevelDB); ok {
		if err := db.Heal(ctx, n.logger.With("component", "storage")); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func writeFileAtomic(path string, data []byte) error { return writeFileAtomicMode(path, data, 0o644) }

// writeFileAtomicMode writes data to path through a synced temporary file and a rename.
func writeFileAtomicMode(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// vnodeDispatcher runs vnode mailboxes inline, on the goroutine that sends to an idle vnode (a vnode
// already running takes the message into its current run). A local read then completes on the client's
// goroutine, coordinator and vnodes alike, with no hand-off to a worker and back; profiles put those
// hand-offs (wake-ups, channel operations, scheduler) at a fifth of a read. Nesting stays shallow:
// coordinators run inline only for their first run (actors.InlineFirst) and vnodes never wait on another
// actor. With fsync on every write (Sync) a vnode's handler blocks for a disk flush: vnodes then run on
// the worker pool, so concurrent writes to different partitions share a flush (goleveldb merges writes
// that wait together) instead of queueing behind one another on the sender's goroutine.
func (n *Node) vnodeDispatcher() actor.Dispatcher {
	if n.cfg.Sync {
		return n.disp
	}
	return actor.NewSynchronizedDispatcher(300)
}

// bind opens the client listening sockets.
func (n *Node) bind(context.Context) error {
	if n.cfg.MemcacheListen != "" {
		ln, err := net.Listen("tcp", n.cfg.MemcacheListen)
		if err != nil {
			return fmt.Errorf("memcache: %w", err)
		}
		n.mcLn = n.maybeTLS(ln, n.cfg.MemcacheTLS)
	}
	if n.cfg.RPCListen != "" {
		ln, err := net.Listen("tcp", n.cfg.RPCListen)
		if err != nil {
			n.unbind(context.Background())
			return fmt.Errorf("msgpack-rpc: %w", err)
		}
		n.rpcLn = n.maybeTLS(ln, n.cfg.RPCTLS)
	}
	return nil
}

// maybeTLS serves ln over TLS with the node's certificate when on (clients may present an operator's).
func (n *Node) maybeTLS(ln net.Listener, on bool) net.Listener {
	if !on || n.pki == nil {
		return ln
	}
	return tls.NewListener(ln, n.pki.ServerConfig(false))
}

// unbind closes sockets the listeners did not take over (a start that failed before them).
func (n *Node) unbind(context.Context) error {
	if n.mcLn != nil && n.mc == nil {
		n.mcLn.Close()
	}
	if n.rpcLn != nil && n.rpc == nil {
		n.rpcLn.Close()
	}
	return nil
}

func (n *Node) startMemcache(context.Context) error {
	ln := n.mcLn
	var mcfg memcache.Config
	mcfg.MaxValueBytes, mcfg.MaxConns, mcfg.IdleTimeout = n.cfg.MemcacheMaxValue, n.cfg.MemcacheMaxConns, n.cfg.MemcacheIdle
	mcfg.FlushAllEnabled, mcfg.Version, mcfg.Now = n.cfg.MemcacheFlushAll, memcache.CompatVersion(Version), n.now
	mcfg.ReadTimeout, mcfg.Memory = orNone(n.cfg.MemcacheReadTimeout), n.mem
	mcfg.Protocols = n.cfg.MemcacheProtocol
	if n.cfg.MemcacheAuthFile != "" {
		users, err := memcache.LoadUsers(n.cfg.MemcacheAuthFile)
		if err != nil {
			return err
		}
		mcfg.Users = users
	}
	if err := mcfg.Validate(); err != nil {
		return err
	}
	var store memcache.Store
	if n.defaultSvc.inst != nil {
		store = n.defaultSvc.inst.Memcache
	}
	if store == nil {
		return fmt.Errorf("memcache: the default service %s serves no memcache face (set memcache-listen to \"\")", n.defaultSvc.spec.Name)
	}
	n.mc = memcache.NewServer(mcfg, store, n.logger.With("component", "memcache"))
	n.logger.Info("memcache listening", "addr", ln.Addr().String())
	return nil
}

func (n *Node) runMemcache(ctx context.Context) error {
	return serveLoop(ctx, "memcache", &n.mcLn, func(l net.Listener) net.Listener { return n.maybeTLS(l, n.cfg.MemcacheTLS) }, n.mc.Serve)
}

// serveLoop runs serve on *ln until ctx ends. A serve that returns while ctx is live is a crash: the listener
// is rebound on the same address so the supervisor's restart can serve again.
func serveLoop(ctx context.Context, name string, ln *net.Listener, wrap func(net.Listener) net.Listener, serve func(net.Listener) error) error {
	err := serve(*ln)
	if ctx.Err() != nil {
		return nil
	}
	if l, lerr := net.Listen("tcp", (*ln).Addr().String()); lerr == nil {
		*ln = wrap(l)
	}
	return fmt.Errorf("%s: serve returned: %v", name, err)
}

func (n *Node) stopMemcache(ctx context.Context) error { return n.mc.Shutdown(ctx) }

// runDebug serves net/http/pprof (profiles for performance work) until ctx ends.
func (n *Node) runDebug(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", n.cfg.DebugListen)
	if err != nil {
		return fmt.Errorf("node: debug listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	// NB: the bound address, so that a configured port 0 logs the port the OS chose.
	n.logger.Info("debug listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (n *Node) startRPC(context.Context) error {
	ln := n.rpcLn
	// NB: client requests are small trees (a key, a value, an options map); 4096 elements is far above
	// any valid request and bounds what the decoder may allocate per message.
	rcfg := rpc.Config{MaxConns: n.cfg.RPCMaxConns, MaxElems: 4096, IdleTimeout: n.cfg.RPCIdle,
		ReadTimeout: orNone(n.cfg.RPCReadTimeout), Memory: n.mem, MaxConnBytes: n.cfg.RPCMaxConnMiB << 20}
	if err := rcfg.Validate(); err != nil {
		return err
	}
	n.rpc = rpc.NewServer(rcfg, rpcHandler{n}, n.logger.With("component", "msgpack-rpc"))
	n.logger.Info("msgpack-rpc listening", "addr", ln.Addr().String())
	return nil
}

// orNone turns a node timeout, where 0 means none, into a protocol server's, where 0 means the default and
// a negative value none.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func (n *Node) runRPC(ctx context.Context) error {
	return serveLoop(ctx, "msgpack-rpc", &n.rpcLn, func(l net.Listener) net.Listener { return n.maybeTLS(l, n.cfg.RPCTLS) }, n.rpc.Serve)
}

func (n *Node) stopRPC(ctx context.Context) error { return n.rpc.Shutdown(ctx) }
