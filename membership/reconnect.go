package membership

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Reconnecting members that memberlist gave up on (Serf's reconnect loop).
//
// memberlist forgets a dead node: after GossipToTheDeadTime it stops gossiping to it, and push-pull only
// contacts live nodes. Two sides of a partition that lasted longer than that each see the other as dead and
// never talk again, so the cluster stays split after the network heals. The reconnect loop closes that gap:
// every member of the cluster state that memberlist does not see alive is re-joined (a memberlist push-pull
// with its last known gossip address), with a per-address backoff, for as long as it stays a member. A node
// that memberlist has never seen since this process started (a restart: memberlist keeps nothing) is looked
// for at the saved peer addresses (GossipConfig.Peers).
//
// A join is a TCP exchange bounded by TCPTimeout; an unreachable address costs one failed dial per backoff
// period. The first push-pull after a partition also hands each side the other's "you are dead" rumour,
// which memberlist refutes with a higher incarnation, so both sides are alive again within a round or two.

// reconnectTick is how often the loop looks for members to re-join (attempts themselves follow each
// address's backoff).
const reconnectTick = 250 * time.Millisecond

// reconnectBackoff is the retry state of one address.
type reconnectBackoff struct {
	next time.Time     // no attempt before this
	wait time.Duration // the wait after the next failed attempt
}

// reconnectTargets lists the gossip addresses to try now: the last known address of every other member of
// the current state that memberlist does not see alive, and, while some member has never been seen, the
// saved peer addresses that no alive node uses.
func (g *Gossip) reconnectTargets() []string {
	st := g.State()
	g.viewMu.RLock()
	defer g.viewMu.RUnlock()
	var out []string
	unseen := false
	for _, m := range st.Members {
		if m.Name == g.self {
			continue
		}
		e, ok := g.view[m.Name]
		switch {
		case !ok || e.Addr == "":
			unseen = true
		case e.State != LiveAlive:
			out = append(out, e.Addr)
		}
	}
	if unseen {
		for _, p := range g.cfg.Peers {
			used := false
			for _, e := range g.view {
				if e.Addr == p && e.State == LiveAlive {
					used = true
					break
				}
			}
			if !used {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reconnect runs until Shutdown: it re-joins the addresses reconnectTargets names, each at most once per its
// backoff (ReconnectInterval doubling up to ReconnectMaxInterval, with jitter), and forgets the backoff of
// addresses that are no longer targets.
func (g *Gossip) reconnect() {
	t := time.NewTicker(min(reconnectTick, g.cfg.ReconnectInterval))
	defer t.Stop()
	backoff := map[string]*reconnectBackoff{}
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		if g.adopting.Load() || g.leaving.Load() {
			continue // an adopting join must stay alone; a leaving node stops looking for peers
		}
		targets := g.reconnectTargets()
		for addr := range backoff {
			if !slices.Contains(targets, addr) {
				delete(backoff, addr)
			}
		}
		now := time.Now()
		for _, addr := range targets {
			b, ok := backoff[addr]
			if !ok {
				// NB: the first attempt waits one interval: a node memberlist just declared dead after a
				// restart usually comes back by itself.
				b = &reconnectBackoff{next: now.Add(g.jitter(g.cfg.ReconnectInterval)), wait: g.cfg.ReconnectInterval}
				backoff[addr] = b
			}
			if now.Before(b.next) {
				continue
			}
			err := g.rejoin(addr)
			b.wait = min(2*b.wait, g.cfg.ReconnectMaxInterval)
			b.next = time.Now().Add(g.jitter(b.wait))
			if err != nil {
				g.log.Debug("membership: reconnect failed", "addr", addr, "err", err, "next", b.wait)
				continue
			}
			g.reconnects.Add(1)
			g.log.Info("membership: reconnected to a member memberlist had given up on", "addr", addr)
		}
	}
}

// jitter spreads d by up to ±20%, so that nodes of one side do not dial in lockstep.
func (g *Gossip) jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

// rejoin runs one memberlist join (push-pull) with addr. It does not run beside an explicit Join.
func (g *Gossip) rejoin(addr string) error {
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	if g.adopting.Load() || g.isClosed() {
		return ErrClosed
	}
	_, err := g.ml.Load().Join([]string{addr})
	return err
}

// Reconnects is the number of successful re-joins of members memberlist had declared dead, left or not
// yet seen (see reconnect).
func (g *Gossip) Reconnects() int64 { return g.reconnects.Load() }
