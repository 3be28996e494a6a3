package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/membership"
	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/supervisor"
	"github.com/gokai-kv/gokai/vnode"
)

// Version is gokai's version string.
var Version = "0.1.0"

func nodeID(name string) membership.NodeID { return membership.NodeID(name) }

// Node is one running gokai node: its supervision tree and handles on its parts for tools and tests.
type Node struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	tree   *supervisor.Tree

	system  *actor.ActorSystem
	disp    *actors.Dispatcher
	backend storage.Backend
	ring    atomic.Pointer[membership.Ring]
	vnodes  *vnode.Manager
	coord   *coordinator.Service

	mc   *memcache.Server
	mcLn net.Listener

	rpc   *rpc.Server
	rpcLn net.Listener
}

// New prepares a node; Start brings it up. now may be nil (time.Now).
func New(cfg Config, logger *slog.Logger, now func() time.Time) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	n := &Node{cfg: cfg, logger: logger.With("node", cfg.Name), now: now}
	n.tree = supervisor.New(n.logger, now)
	n.tree.Add(supervisor.Child{Name: "storage", Start: n.startStorage, Stop: n.stopStorage})
	n.tree.Add(supervisor.Child{Name: "ring", Start: n.startRing})
	n.tree.Add(supervisor.Child{Name: "vnode-sup", Start: n.startVnodes, Stop: n.stopVnodes})
	n.tree.Add(supervisor.Child{Name: "coordinator-sup", Start: n.startCoordinators, Stop: n.stopCoordinators})
	if cfg.MemcacheListen != "" {
		n.tree.Add(supervisor.Child{Name: "memcache", Start: n.startMemcache, Run: n.runMemcache, Stop: n.stopMemcache})
	}
	if cfg.RPCListen != "" {
		n.tree.Add(supervisor.Child{Name: "msgpack-rpc", Start: n.startRPC, Run: n.runRPC, Stop: n.stopRPC})
	}
	return n, nil
}

// Start starts the tree in order: storage, ring, vnodes, coordinators, listeners.
func (n *Node) Start(ctx context.Context) error {
	n.system = actors.NewSystem(n.logger)
	n.disp = actors.NewDispatcher(max(8, 4*runtime.GOMAXPROCS(0)), 300)
	return n.tree.Start(ctx)
}

// Stop stops accepting, drains in-flight requests, stops vnodes and closes storage (reverse order).
func (n *Node) Stop(ctx context.Context) error {
	err := n.tree.Stop(ctx)
	if n.system != nil {
		n.system.Shutdown()
		n.disp.Close()
	}
	return err
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

// Coordinator, Vnodes, Backend, Ring and System expose the node's parts to tools and tests.
func (n *Node) Coordinator() *coordinator.Service { return n.coord }
func (n *Node) Vnodes() *vnode.Manager            { return n.vnodes }
func (n *Node) Backend() storage.Backend          { return n.backend }
func (n *Node) Ring() *membership.Ring            { return n.ring.Load() }
func (n *Node) System() *actor.ActorSystem        { return n.system }

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
		db, err := storage.OpenLevelDB(lc)
		if err != nil {
			return err
		}
		n.backend = db
		return nil
	}
}

func (n *Node) stopStorage(context.Context) error { return n.backend.Close() }

// startRing loads the ring saved in the data dir, or claims a new one and saves it. Q is fixed once saved.
func (n *Node) startRing(context.Context) error {
	self := nodeID(n.cfg.Name)
	path := filepath.Join(n.cfg.DataDir, "ring")
	if n.cfg.Backend == "leveldb" {
		if raw, err := os.ReadFile(path); err == nil {
			r, err := membership.UnmarshalRing(raw)
			if err != nil {
				return fmt.Errorf("ring: %s: %w", path, err)
			}
			if r.Q() != n.cfg.Q {
				return fmt.Errorf("ring: data dir has q=%d, config says q=%d (q is fixed when the data dir is created)", r.Q(), n.cfg.Q)
			}
			if nodes := r.Nodes(); len(nodes) != 1 || nodes[0] != self {
				return fmt.Errorf("ring: data dir belongs to %v, this node is %s", nodes, self)
			}
			n.ring.Store(r)
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ring: %w", err)
		}
	}
	r, err := membership.NewRing(n.cfg.Q, n.cfg.N, []membership.NodeID{self})
	if err != nil {
		return err
	}
	if n.cfg.Backend == "leveldb" {
		raw, err := r.MarshalBinary()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(path, raw); err != nil {
			return fmt.Errorf("ring: save: %w", err)
		}
	}
	n.ring.Store(r)
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
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

func (n *Node) startVnodes(ctx context.Context) error {
	r := n.ring.Load()
	m, err := vnode.StartManager(n.system, vnode.ManagerConfig{
		Node: n.cfg.Name, Partitions: r.PartitionsOf(nodeID(n.cfg.Name)), Factory: vnode.NewKV(n.cfg.kvConfig()),
		Store: n.backend, Logger: n.logger, Now: n.now,
		MaxRestarts: n.cfg.VnodeMaxRestarts, RestartWindow: n.cfg.VnodeRestartWin, OnEscalate: n.tree.Escalate,
		Dispatcher: n.disp,
	})
	if err != nil {
		return err
	}
	n.vnodes = m
	return nil
}

func (n *Node) stopVnodes(ctx context.Context) error { return n.vnodes.Stop(ctx) }

// router answers coordinators' questions from the node's current ring and vnodes.
type router struct{ n *Node }

func (r router) Preflist(key []byte, nrep int) []membership.PrefEntry {
	return r.n.ring.Load().Preflist(key, nrep, nil)
}

func (r router) VnodePID(node membership.NodeID, p int) *actor.PID {
	if node != nodeID(r.n.cfg.Name) {
		return nil // single node: no remote vnodes yet
	}
	return r.n.vnodes.PID(p)
}

func (n *Node) startCoordinators(context.Context) error {
	cc := n.cfg.coordinatorConfig()
	cc.Logger, cc.Now, cc.Dispatcher = n.logger, n.now, n.disp
	s, err := coordinator.Start(n.system, cc, router{n})
	if err != nil {
		return err
	}
	n.coord = s
	return nil
}

func (n *Node) stopCoordinators(ctx context.Context) error {
	// Lingering coordinators get a bounded grace for their read repairs, then are stopped.
	dctx, cancel := context.WithTimeout(ctx, n.cfg.Linger+time.Second)
	defer cancel()
	derr := n.coord.Drain(dctx)
	if derr != nil {
		n.logger.Warn("coordinators did not drain", "err", derr)
	}
	return n.coord.Stop(ctx)
}

func (n *Node) startMemcache(context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.MemcacheListen)
	if err != nil {
		return fmt.Errorf("memcache: %w", err)
	}
	var mcfg memcache.Config
	mcfg.MaxValueBytes, mcfg.MaxConns, mcfg.IdleTimeout = n.cfg.MemcacheMaxValue, n.cfg.MemcacheMaxConns, n.cfg.MemcacheIdle
	mcfg.FlushAllEnabled, mcfg.Version, mcfg.Now = n.cfg.MemcacheFlushAll, Version, n.now
	if err := mcfg.Validate(); err != nil {
		ln.Close()
		return err
	}
	n.mcLn = ln
	n.mc = memcache.NewServer(mcfg, &memcacheStore{n: n}, n.logger.With("component", "memcache"))
	n.logger.Info("memcache listening", "addr", ln.Addr().String())
	return nil
}

func (n *Node) runMemcache(ctx context.Context) error {
	return serveLoop(ctx, "memcache", &n.mcLn, n.mc.Serve)
}

// serveLoop runs serve on *ln until ctx ends. A serve that returns while ctx is live is a crash: the listener
// is rebound on the same address so the supervisor's restart can serve again.
func serveLoop(ctx context.Context, name string, ln *net.Listener, serve func(net.Listener) error) error {
	err := serve(*ln)
	if ctx.Err() != nil {
		return nil
	}
	if l, lerr := net.Listen("tcp", (*ln).Addr().String()); lerr == nil {
		*ln = l
	}
	return fmt.Errorf("%s: serve returned: %v", name, err)
}

func (n *Node) stopMemcache(ctx context.Context) error { return n.mc.Shutdown(ctx) }

func (n *Node) startRPC(context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.RPCListen)
	if err != nil {
		return fmt.Errorf("msgpack-rpc: %w", err)
	}
	// NB: client requests are small trees (a key, a value, an options map); 4096 elements is far above
	// any valid request and bounds what the decoder may allocate per message.
	rcfg := rpc.Config{MaxConns: n.cfg.RPCMaxConns, MaxElems: 4096}
	if err := rcfg.Validate(); err != nil {
		ln.Close()
		return err
	}
	n.rpcLn = ln
	n.rpc = rpc.NewServer(rcfg, rpcHandler{n}, n.logger.With("component", "msgpack-rpc"))
	n.logger.Info("msgpack-rpc listening", "addr", ln.Addr().String())
	return nil
}

func (n *Node) runRPC(ctx context.Context) error {
	return serveLoop(ctx, "msgpack-rpc", &n.rpcLn, n.rpc.Serve)
}

func (n *Node) stopRPC(ctx context.Context) error { return n.rpc.Shutdown(ctx) }
