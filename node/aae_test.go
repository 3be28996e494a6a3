package node

import (
	"context"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/internal/eventually"
	"github.com/gokai-kv/gokai/kv"
)

// TestAAEModes: with -aae on the node's exchanges repair a key that only one of its replicas holds, with
// nobody reading it; passive keeps the trees and starts no exchange; off keeps no trees.
func TestAAEModes(t *testing.T) {
	for _, mode := range []string{"on", "passive", "off"} {
		t.Run(mode, func(t *testing.T) {
			n := startTestNode(t, func(c *Config) { c.AAE, c.AAEExchangePeriod = mode, 50*time.Millisecond })
			key := []byte("one-replica")
			pl := n.state().Ring.Preflist(key, n.cfg.N, nil)
			vn := n.Vnodes("kv")
			rep, err := actors.Request(context.Background(), n.system, vn.PID(pl[0].Partition),
				&kv.PutRequest{V: 1, Key: key, Coordinate: true, Blind: true, Value: []byte("v")}, 5*time.Second)
			if err != nil || rep.(*kv.PutReply).Err != "" {
				t.Fatalf("put to one replica: %v %v", rep, err)
			}
			held := func() int {
				c := 0
				for _, e := range pl {
					r, err := actors.Request(context.Background(), n.system, vn.PID(e.Partition), &kv.GetRequest{V: 1, Key: key}, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					if r.(*kv.GetReply).Object != nil {
						c++
					}
				}
				return c
			}
			st := n.aaeStatus()
			if st["mode"] != mode {
				t.Fatalf("aae_status mode %v", st["mode"])
			}
			switch mode {
			case "on":
				// NB: both polled: the repair's writes land on the replicas before the exchange counts the key
				// repaired.
				eventually.True(t, 10*time.Second, "every replica holds the key, counted repaired", func() bool {
					return held() == len(pl) && n.aae.Stats().KeysRepaired >= 1
				})
			case "passive":
				for p := range n.cfg.Q {
					eventually.True(t, 10*time.Second, "trees built", func() bool {
						s, ok := vn.AAEStatus(p)
						return ok && s.State == "built"
					})
				}
				// 20 periods: an "on" node would have run every planned exchange by now.
				time.Sleep(20 * n.cfg.AAEExchangePeriod) // schedule: an absence is checked over a bounded span
				if s := n.aae.Stats(); s.Exchanges != 0 || held() != 1 {
					t.Fatalf("passive: %+v, %d replicas hold the key", s, held())
				}
			case "off":
				if _, ok := vn.AAEStatus(pl[0].Partition); ok {
					t.Fatal("off: a vnode keeps hash trees")
				}
				if parts, _ := st["partitions"].([]any); len(parts) != 0 {
					t.Fatalf("off: aae_status lists %d partitions", len(parts))
				}
			}
		})
	}
}
