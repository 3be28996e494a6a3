package kv

import (
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/coverage"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/vnode"
)

// ServiceName is KV's name space on msgpack-RPC ("kv.get"; as the node's default service also "get").
const ServiceName = "kv"

// KeySpace is KV's storage key space: 0, the layout of a data dir from before services (storage.KeySpace),
// so a node's existing data reads unchanged.
const KeySpace = 0

// Service is KV as a service a node runs (node.WithService): its vnodes (NewVnode with o), its wire
// messages, its msgpack-RPC methods (get, put, delete, list_keys, count; vnode_get for operators), the memcache face, its
// stats, and re-homing of keys whose preference list changed (DropRequest). KV is the node's default
// service: its methods answer without the "kv." prefix, as they did before services.
func Service(o Options) service.Service {
	return service.Service{
		Name: ServiceName, ID: KeySpace, Default: true, AntiEntropy: true,
		Validate: o.Validate,
		Wire:     wireMessages,
		Vnode: func(n service.NodeInfo) (vnode.Factory, error) {
			cfg := o.Config(n.Q)
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			cfg.FlushCutoff = n.FlushCutoff
			return NewVnode(cfg), nil
		},
		Start: func(h service.Host) (*service.Instance, error) {
			cfg := o.Config(h.Q)
			cfg.FlushCutoff = h.FlushCutoff
			c, err := NewCoordinator(h.Coordinators, cfg)
			if err != nil {
				return nil, err
			}
			if h.Metrics != nil {
				if c.metrics, err = newKVMetrics(h.Metrics); err != nil {
					return nil, err
				}
			}
			cov, err := coverage.NewService(h.System, h.Cluster, coverage.Config{N: h.N, Logger: h.Logger})
			if err != nil {
				return nil, err
			}
			faces := rpcFaces{coord: c, now: h.Now, system: h.System, vnodes: h.Vnodes, timeout: h.Timeout,
				lister: &Lister{Coverage: cov, Q: h.Q}}
			stats := func() []service.Stat {
				cs := cov.Stats()
				return append(c.serviceStats(), service.Stat{Name: "gokai_kv_coverage_requests", Value: cs.Started},
					service.Stat{Name: "gokai_kv_coverage_failures", Value: cs.Failures})
			}
			return &service.Instance{Methods: faces.methods(), Memcache: newMemcacheStore(c, h), Stats: stats,
				Repair: c.Repair}, nil
		},
		Rehome: &service.Rehome{
			Drop: func(keys, values [][]byte) any { return &DropRequest{Keys: keys, Objects: values} },
			Dropped: func(reply any) (int, error) {
				d, ok := reply.(*DropReply)
				switch {
				case !ok:
					return 0, fmt.Errorf("kv: drop: unexpected reply %T", reply)
				case d.Err != "":
					return d.Dropped, errors.New(d.Err)
				}
				return d.Dropped, nil
			},
		},
	}
}

// serviceStats are KV's own counters in the node's stats (the coordinators' are the node's).
func (c *Coordinator) serviceStats() []service.Stat {
	st := c.Stats()
	return []service.Stat{
		{Name: "gokai_coord_gets", Value: st.Gets},
		{Name: "gokai_coord_puts", Value: st.Puts},
		{Name: "gokai_coord_deletes", Value: st.Deletes},
		{Name: "gokai_siblings_seen", Value: st.SiblingsSeen},
	}
}
