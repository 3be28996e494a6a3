package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/coverage"
	"github.com/gokai-kv/gokai/protocol/memcache"
	"github.com/gokai-kv/gokai/vnode"
)

// Service describes one service a node runs. Name, ID and Vnode are required.
type Service struct {
	// Name is the service's msgpack-RPC name space ("counter" serves "counter.incr") and part of its actor
	// names: lower-case letters, digits and '_', starting with a letter, at most 32 bytes. Unique in a node;
	// every node of a cluster must run the same services.
	Name string
	// ID is the service's storage key space (storage.KeySpace): part of its on-disk format, so it must
	// never change. Unique in a node. 0 is KV's (see the package doc).
	ID uint16
	// Vnode makes the behaviour of the service's vnodes on a node; called once per node start, before any
	// of its vnodes starts.
	Vnode func(n NodeInfo) (vnode.Factory, error)
	// Wire lists the messages the service's vnodes and coordinators exchange between nodes: the node
	// registers them for the transport (actors.EnsureWire). Codes are append-only; services outside gokai
	// take theirs from 1024 up (actors.WireType).
	Wire []Wire
	// Start makes the service's client side once its vnodes and coordinators run: its RPC methods, its
	// memcache store (the default service only) and its stats. Optional: a service without it serves no
	// method.
	Start func(h Host) (*Instance, error)
	// Validate checks the service's settings; optional. node.New fails with its error.
	Validate func() error
	// Default makes this the node's default service: its methods also answer without the name space (KV:
	// "get" as well as "kv.get"), and its Instance.Memcache serves the memcache face. At most one per node.
	Default bool
	// Rehome, when set, lets the node move the keys a vnode holds for key ranges whose preference list no
	// longer names it (node/rehome.go). Without it such copies stay where they are (reads still find the
	// current list's copies; read repair fills them in).
	Rehome *Rehome
	// AntiEntropy opts the service into active anti-entropy (docs/anti-entropy.md): its behaviour must
	// implement vnode.AAEHasher (its vnodes then keep hash trees) and its Start must return an Instance with
	// Repair (the node's exchanges repair through it).
	AntiEntropy bool
}

// Wire is one message type on the transport: its code and a constructor of a fresh value (a non-nil
// pointer; its dynamic type is the one that travels).
type Wire struct {
	Code actors.WireType
	New  func() any
}

// Rehome is what re-homing needs from a service. Its vnodes' folds (vnode.FoldRequest) must yield the key
// the service routes by (ring.PartitionForKey) and the stored value; items are sent with the framework's
// HandoffBatch and merged by the behaviour's HandleHandoffData.
type Rehome struct {
	// Drop is the command, sent to the vnode that held the misplaced keys, that removes keys[i] if the value
	// it stores for it is still exactly values[i] (what the fold read), so that nothing written since is
	// lost. The vnode answers with a message Dropped reads.
	Drop func(keys, values [][]byte) any
	// Dropped reads Drop's reply: how many keys were removed, or why none could be.
	Dropped func(reply any) (int, error)
}

// NodeInfo is what a service learns about the node it runs on.
type NodeInfo struct {
	Name    string       // the node's id
	Version string       // gokai's version (node.Version)
	Q, N    int          // ring partitions; replicas per key
	Logger  *slog.Logger // carries the node and the service
	Now     func() time.Time
	// FlushCutoff is the service's flush epoch as of nowNs (unix ns, the caller's clock): the greatest
	// LastMod (unix ns) a flush hides, 0 for none. Values written at or before it read as deleted (see
	// Host.Flush). It reads the node's current cluster state: cheap, safe for concurrent use, non-blocking.
	// nil (a service run outside a node) hides nothing.
	FlushCutoff func(nowNs int64) int64
}

// Host is the running node, as a service's Start sees it: its own vnodes and coordinators.
type Host struct {
	NodeInfo
	System *actor.ActorSystem
	// Coordinators are the service's own: coordinator.Read and coordinator.Write on them reach the service's
	// vnodes, with the node's N/R/W defaults, timeouts and overload limit.
	Coordinators *coordinator.Service
	// Vnodes is the service's vnode supervisor on this node (its partitions, their PIDs).
	Vnodes *vnode.Manager
	// Cluster is the node's ring, which nodes are up, and the service's vnodes on every node: what a
	// coverage request (coverage.NewService) needs to plan and to reach the vnodes it asks.
	Cluster coverage.Cluster
	// Timeout is the node's request deadline (for calls a service makes to its vnodes directly).
	Timeout time.Duration
	// Stats returns the node's stats, every service's included (for a face that shows them, such as
	// memcache's `stats`). Call it only while serving requests, not from Start.
	Stats func() []Stat
	// Flush records a flush of the service (memcache flush_all) in the cluster state: from at on (at once
	// when at is not in the future; the clock of this node), every value written at or before at reads as
	// deleted on every node (FlushCutoff). Epochs only move forward: a flush earlier than the recorded one
	// changes nothing. It goes through the cluster's claimant and returns once the claimant recorded it and
	// handed the new state to every member it reaches; it fails, having recorded nothing, when the claimant
	// cannot be reached or ctx ends first.
	Flush func(ctx context.Context, at time.Time) error
	// Metrics is where the service registers its own Prometheus collectors, once, from Start (names
	// "gokai_<service>_...", docs/metrics.md); nil when the node serves no metrics (http-listen "").
	Metrics prometheus.Registerer
}

// Instance is a started service: what the node serves for it.
type Instance struct {
	// Methods are the service's msgpack-RPC methods, by name within its name space ("incr" is served as
	// "counter.incr"; for the default service as "incr" too). Names follow the rules of Service.Name.
	Methods map[string]Method
	// Memcache serves the memcache face; only the default service's is used. A node without a default
	// service serves no memcache; one whose default service has no Memcache refuses to start while
	// memcache-listen is set (set it to "").
	Memcache memcache.Store
	// Repair makes every replica of key hold the merge of all of them, as read repair does (anti-entropy's
	// repair path; required with Service.AntiEntropy). Safe for concurrent use; honours ctx.
	Repair func(ctx context.Context, key []byte) error
	// Stats are the service's counters, appended to the node's (names must be unique in the node: prefix
	// them, "gokai_<service>_..."); optional.
	Stats func() []Stat
}

// Method is one msgpack-RPC method. Call gets the request's params and returns a result msgpack can encode,
// or an error: a *msgpackrpc.Error is sent as it is, any other error through RPCError (never its own text).
// Call must be safe for concurrent use and honour ctx (cancelled when the connection goes or the node
// stops).
type Method struct {
	Call func(ctx context.Context, params []any) (any, error)
	// Operator restricts the method to operators (TLS with an operator certificate, or loopback on a node
	// without certificates), as the node's cluster methods are.
	Operator bool
}

// Stat is one counter or setting shown by `stats` (msgpack-RPC and memcache). Value is an int, int64 or
// string.
type Stat struct {
	Name  string
	Value any
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidName reports whether s is a valid service or method name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Check reports the first problem with s's description (not its settings: see Validate).
func (s Service) Check() error {
	switch {
	case !ValidName(s.Name):
		return fmt.Errorf("service: name %q: want [a-z][a-z0-9_]*, at most 32 bytes", s.Name)
	case s.Vnode == nil:
		return fmt.Errorf("service %s: Vnode is nil", s.Name)
	case s.Rehome != nil && (s.Rehome.Drop == nil || s.Rehome.Dropped == nil):
		return fmt.Errorf("service %s: Rehome needs Drop and Dropped", s.Name)
	}
	for _, w := range s.Wire {
		if w.Code == 0 || w.New == nil {
			return fmt.Errorf("service %s: wire message %d: code 0 or no constructor", s.Name, w.Code)
		}
	}
	if s.Validate != nil {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// CheckAll checks every service and that names and IDs are unique and at most one is the default.
func CheckAll(svcs []Service) error {
	if len(svcs) == 0 {
		return errors.New("service: a node needs at least one service")
	}
	names, ids := map[string]bool{}, map[uint16]string{}
	def := ""
	for _, s := range svcs {
		if err := s.Check(); err != nil {
			return err
		}
		if names[s.Name] {
			return fmt.Errorf("service: %s registered twice", s.Name)
		}
		if other, ok := ids[s.ID]; ok {
			return fmt.Errorf("service: %s and %s share key space %d", other, s.Name, s.ID)
		}
		if s.Default && def != "" {
			return fmt.Errorf("service: %s and %s are both the default service", def, s.Name)
		}
		if s.Default {
			def = s.Name
		}
		names[s.Name], ids[s.ID] = true, s.Name
	}
	return nil
}

// SupervisorName is the actor name of a service's vnode supervisor on every node: "vnode-sup-<name>", and
// for key space 0 the name from before services, "vnode-sup" (actors.VnodeSupervisorName).
func (s Service) SupervisorName() string {
	if s.ID == 0 {
		return actors.VnodeSupervisorName
	}
	return actors.VnodeSupervisorName + "-" + s.Name
}
