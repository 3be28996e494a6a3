package counter

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/service"
	"github.com/gokai-kv/gokai/vnode"
)

// ServiceName is the counter's msgpack-RPC name space ("counter.incr").
const ServiceName = "counter"

// KeySpace is the counter's storage key space: part of its on-disk format, never to change.
const KeySpace = 1024

// Service is the counter as a service a node runs (node.WithService): its vnodes (NewVnode), its wire
// messages, its msgpack-RPC methods (counter.incr, counter.value), its stats, and re-homing of counters whose
// preference list changed. It is not a default service: it serves no memcache and its methods answer only
// with the "counter." prefix, so it runs beside KV.
func Service() service.Service {
	return service.Service{
		Name: ServiceName, ID: KeySpace,
		Wire: wireMessages,
		Vnode: func(service.NodeInfo) (vnode.Factory, error) {
			return NewVnode, nil
		},
		Start: func(h service.Host) (*service.Instance, error) {
			c := NewClient(h.Coordinators)
			st := &stats{}
			m := methods{c: c, stats: st}
			return &service.Instance{Methods: m.table(), Stats: st.list}, nil
		},
		Rehome: &service.Rehome{
			Drop: func(keys, values [][]byte) any { return &dropRequest{names: keys, states: values} },
			Dropped: func(reply any) (int, error) {
				d, ok := reply.(*dropReply)
				if !ok {
					return 0, fmt.Errorf("counter: drop: unexpected reply %T", reply)
				}
				return d.n, d.err
			},
		},
	}
}

// stats are the counter's own counters in the node's stats (the coordinators' are the node's).
type stats struct {
	incrs, incrErrs, values, valueErrs atomic.Int64
}

func (s *stats) list() []service.Stat {
	return []service.Stat{
		{Name: "gokai_counter_incrs", Value: s.incrs.Load()},
		{Name: "gokai_counter_incr_errors", Value: s.incrErrs.Load()},
		{Name: "gokai_counter_values", Value: s.values.Load()},
		{Name: "gokai_counter_value_errors", Value: s.valueErrs.Load()},
	}
}

// count adds one request's outcome: ok, or failed (a request the coordinators refused as bad counts as
// neither, as the methods' own parameter checks do).
func (s *stats) count(ok, failed *atomic.Int64, err error) {
	switch {
	case errors.Is(err, coordinator.ErrBadRequest):
		return
	case err != nil:
		failed.Add(1)
	default:
		ok.Add(1)
	}
}
