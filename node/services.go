package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/ring"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Option changes how New builds a node.
type Option func(*options)

type options struct {
	services []service.Service
	// vnodeTimeEvery: one vnode command in this many is timed for metrics (default vnodeTimeEvery; tests
	// time every one).
	vnodeTimeEvery int
}

// WithService makes the node run s (in the order given: vnode supervisors start in that order and stop in
// reverse). A node needs at least one service; cmd/gokai registers KV (kv.Service).
func WithService(s service.Service) Option {
	return func(o *options) { o.services = append(o.services, s) }
}

// svcRuntime is one service running on this node: its vnode supervisor, its coordinators and what its
// Start returned.
type svcRuntime struct {
	spec   service.Service
	sup    string // the vnode supervisor's actor name (service.Service.SupervisorName)
	logger *slog.Logger

	// Set by the tree's children as they start (vnodes, then coordinators and inst), read-only after.
	vnodes *vnode.Manager
	coords *coordinator.Service
	inst   *service.Instance
}

// remoteTargets remembers the vnode supervisors this process already let other nodes address (the guard's
// list is process-wide and only grows).
var remoteTargets sync.Map // supervisor name -> struct{}

// setupServices checks the services, registers their wire messages and makes their runtimes.
func (n *Node) setupServices(svcs []service.Service) error {
	if err := service.CheckAll(svcs); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.svcByName = map[string]*svcRuntime{}
	for _, s := range svcs {
		for _, w := range s.Wire {
			if err := actors.EnsureWire(w.Code, w.New); err != nil {
				return fmt.Errorf("node: service %s: %w", s.Name, err)
			}
		}
		rt := &svcRuntime{spec: s, sup: s.SupervisorName(), logger: n.logger.With("service", s.Name)}
		if _, done := remoteTargets.LoadOrStore(rt.sup, struct{}{}); !done && rt.sup != actors.VnodeSupervisorName {
			// NB: the trailing slash: the vnodes are reachable, the supervisor itself is not.
			actors.AllowRemoteTarget(rt.sup + "/")
		}
		n.svcs = append(n.svcs, rt)
		n.svcByName[s.Name] = rt
		if s.Default {
			n.defaultSvc = rt
		}
	}
	return nil
}

// serviceNames lists the services in registration order.
func (n *Node) serviceNames() []string {
	out := make([]string, len(n.svcs))
	for i, rt := range n.svcs {
		out[i] = rt.spec.Name
	}
	return out
}

func (n *Node) nodeInfo(rt *svcRuntime) service.NodeInfo {
	name := rt.spec.Name
	return service.NodeInfo{Name: n.cfg.Name, Version: Version, Q: n.cfg.Q, N: n.cfg.N, Logger: rt.logger, Now: n.now,
		FlushCutoff: func(nowNs int64) int64 { return n.flushCutoff(name, nowNs) }}
}

// startVnodes starts rt's vnode supervisor with a vnode for every partition when this node is a member
// (owner, receiver or fallback; see reconcile), in rt's storage key space.
func (n *Node) startVnodes(rt *svcRuntime) error {
	var parts []int
	if _, member := n.state().Member(n.self()); member {
		parts = make([]int, n.cfg.Q)
		for p := range parts {
			parts[p] = p
		}
	}
	factory, err := rt.spec.Vnode(n.nodeInfo(rt))
	if err != nil {
		return fmt.Errorf("service %s: %w", rt.spec.Name, err)
	}
	m, err := vnode.StartManager(n.system, vnode.ManagerConfig{
		Name: rt.sup, Node: n.cfg.Name, Partitions: parts, Factory: factory,
		Store: storage.KeySpace{Backend: n.backend, Space: rt.spec.ID}, Logger: rt.logger, Now: n.now,
		MaxRestarts: n.cfg.VnodeMaxRestarts, RestartWindow: n.cfg.VnodeRestartWin, OnEscalate: n.tree.Escalate,
		Dispatcher: n.vnodeDispatcher(), Observe: n.vnodeObserver(rt.spec.Name), ObserveEvery: n.vnodeTimeEvery, AAE: n.vnodeAAE(rt),
	})
	if err != nil {
		return fmt.Errorf("service %s: %w", rt.spec.Name, err)
	}
	rt.vnodes = m
	return nil
}

// router answers one service's coordinators from the node's current ring and that service's vnodes.
type router struct {
	n  *Node
	rt *svcRuntime
}

// Preflist is the key's N primaries that are up, and for each one that is down a fallback node (sloppy
// quorum): the fallback's vnode of the same partition takes the write as a hint.
func (r router) Preflist(key []byte, nrep int) []ring.PrefEntry {
	return r.n.state().Ring.Preflist(key, nrep, r.n.isUp)
}

// Fallback is the sloppy-quorum stand-in for failed as the replica of partition p of key: the fallback
// the ring gives when failed is considered down.
func (r router) Fallback(key []byte, p int, failed ring.NodeID) (ring.PrefEntry, bool) {
	up := func(x ring.NodeID) bool { return x != failed && r.n.isUp(x) }
	for _, e := range r.n.state().Ring.Preflist(key, r.n.cfg.N, up) {
		if e.Partition == p && !e.Primary {
			return e, true
		}
	}
	return ring.PrefEntry{}, false
}

// ReportFailure makes the node treat a replica's node as down for a while (see isUp).
func (r router) ReportFailure(node ring.NodeID) { r.n.suspect(node) }

// Ring is the node's current ring (coverage.Cluster).
func (r router) Ring() *ring.Ring { return r.n.state().Ring }

// Up reports whether node counts as up: memberlist sees it alive and no failure made it suspected
// (coverage.Cluster).
func (r router) Up(node ring.NodeID) bool { return r.n.isUp(node) }

// VnodePID is the service's local vnode for this node, else its remote vnode on a node memberlist sees
// alive; nil for a node that is down, so a coordinator never waits on the transport's retries to a dead
// peer.
func (r router) VnodePID(node ring.NodeID, p int) *actor.PID {
	if node == r.n.self() {
		return r.rt.vnodes.PID(p)
	}
	return r.n.remoteVnode(node, r.rt.sup, p)
}

// nodeMethods are the node's own msgpack-RPC methods: a default service's methods may not shadow them.
var nodeMethods = map[string]bool{"ping": true, "version": true, "stats": true, "ring": true, "members": true,
	"cluster_status": true, "transfers": true, "cluster_join": true, "cluster_keys": true, "cluster_leave": true,
	"cluster_clear": true, "cluster_plan": true, "cluster_commit": true, "preflist": true, "aae_status": true}

// startCoordinators starts every service's coordinators, then each service's client side (its Start), and
// gathers their msgpack-RPC methods.
func (n *Node) startCoordinators(context.Context) error {
	methods := map[string]service.Method{}
	for _, rt := range n.svcs {
		cc := n.cfg.coordinatorConfig()
		cc.Logger, cc.Now, cc.Dispatcher = rt.logger, n.now, n.disp
		cc.Observer = n.coordinatorObserver(rt.spec.Name)
		s, err := coordinator.Start(n.system, cc, router{n, rt})
		if err != nil {
			return errors.Join(fmt.Errorf("service %s: %w", rt.spec.Name, err), n.stopCoordinators(context.Background()))
		}
		rt.coords = s
		if rt.spec.Start == nil {
			continue
		}
		inst, err := rt.spec.Start(service.Host{NodeInfo: n.nodeInfo(rt), System: n.system, Coordinators: s,
			Cluster: router{n, rt}, Vnodes: rt.vnodes, Timeout: n.cfg.Timeout, Stats: n.serviceStats, Metrics: n.MetricsRegistry(),
			Flush: func(ctx context.Context, at time.Time) error { return n.flushService(ctx, rt.spec.Name, at) }})
		if err == nil && inst == nil {
			err = errors.New("Start returned no instance")
		}
		if err == nil {
			err = addMethods(methods, rt.spec, inst)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("service %s: %w", rt.spec.Name, err), n.stopCoordinators(context.Background()))
		}
		rt.inst = inst
	}
	n.methods = methods
	return nil
}

// addMethods adds inst's methods to the node's table: "<service>.<method>", and for the default service
// "<method>" too.
func addMethods(into map[string]service.Method, s service.Service, inst *service.Instance) error {
	for name, m := range inst.Methods {
		if !service.ValidName(name) || m.Call == nil {
			return fmt.Errorf("method %q: want a valid name and a Call", name)
		}
		names := []string{s.Name + "." + name}
		if s.Default {
			if nodeMethods[name] {
				return fmt.Errorf("method %q is one of the node's", name)
			}
			names = append(names, name)
		}
		for _, full := range names {
			if _, dup := into[full]; dup {
				return fmt.Errorf("method %q registered twice", full)
			}
			into[full] = m
		}
	}
	return nil
}

// stopCoordinators drains every service's coordinators at once (lingering ones get a bounded grace for
// their read repairs), then stops them.
func (n *Node) stopCoordinators(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, n.cfg.Linger+time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, rt := range n.svcs {
		if rt.coords == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.coords.Drain(dctx); err != nil {
				rt.logger.Warn("coordinators did not drain", "err", err)
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, rt := range n.svcs {
		if rt.coords != nil {
			errs = append(errs, rt.coords.Stop(ctx))
		}
	}
	return errors.Join(errs...)
}

// Services lists the services the node runs, in registration order.
func (n *Node) Services() []string { return n.serviceNames() }

// Vnodes is service svc's vnode supervisor (nil for an unknown service or before the node started it).
func (n *Node) Vnodes(svc string) *vnode.Manager {
	if rt := n.svcByName[svc]; rt != nil {
		return rt.vnodes
	}
	return nil
}

// Coordinators are service svc's coordinators (nil for an unknown service or before the node started
// them).
func (n *Node) Coordinators(svc string) *coordinator.Service {
	if rt := n.svcByName[svc]; rt != nil {
		return rt.coords
	}
	return nil
}
