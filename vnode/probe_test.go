package vnode_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/gokai-kv/gokai/actors"
	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// probe is a behaviour that implements every optional callback and records each call in a journal shared
// by its incarnations (the factory's), so tests can see what the framework called, in which order.
type probe struct {
	setVnode
	j   *journal
	gen int // which incarnation (1, 2, ...)

	timers  map[string]vnode.Timer
	spawned map[string]*actor.PID
}

// journal records the calls of a probe's incarnations.
type journal struct {
	mu      sync.Mutex
	events  []string
	gens    int
	selves  []vnode.Self
	refuse  int           // HandoffStarting refuses this many more times
	release chan struct{} // async work blocks on it
	// cover answers coverage commands.
	cover func(cmd any, f vnode.Filter, from vnode.Sender) vnode.Result
}

func newJournal() *journal { return &journal{release: make(chan struct{})} }

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

// take returns the events so far and clears them.
func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.events
	j.events = nil
	return out
}

// has reports whether ev was recorded (without clearing).
func (j *journal) has(ev string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.events {
		if e == ev {
			return true
		}
	}
	return false
}

func (j *journal) releaseCh() chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.release
}

func (j *journal) setRelease(ch chan struct{}) {
	j.mu.Lock()
	j.release = ch
	j.mu.Unlock()
}

func (j *journal) self(gen int) vnode.Self {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.selves[gen-1]
}

func (j *journal) factory() vnode.Factory {
	return func() vnode.Behaviour {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.gens++
		return &probe{j: j, gen: j.gens, timers: map[string]vnode.Timer{}, spawned: map[string]*actor.PID{}}
	}
}

var (
	_ vnode.HandoffStarter   = (*probe)(nil)
	_ vnode.HandoffCanceller = (*probe)(nil)
	_ vnode.HandoffFinisher  = (*probe)(nil)
	_ vnode.InfoHandler      = (*probe)(nil)
	_ vnode.ExitHandler      = (*probe)(nil)
	_ vnode.CoverageHandler  = (*probe)(nil)
)

func (p *probe) Init(env vnode.Env) error {
	p.j.mu.Lock()
	p.j.selves = append(p.j.selves, env.Self)
	p.j.mu.Unlock()
	p.j.add("init %d", p.gen)
	return p.setVnode.Init(env)
}

func (p *probe) Terminate(reason any) { p.j.add("terminate %d %v", p.gen, reason) }

func (p *probe) HandoffStarting(to vnode.HandoffTarget) bool {
	p.j.mu.Lock()
	refuse := p.j.refuse > 0
	if refuse {
		p.j.refuse--
	}
	p.j.mu.Unlock()
	p.j.add("starting %s hinted=%v ok=%v", to.Node, to.Hinted, !refuse)
	return !refuse
}

func (p *probe) HandoffCancelled() { p.j.add("cancelled") }

func (p *probe) HandoffFinished(to vnode.HandoffTarget) { p.j.add("finished %s", to.Node) }

func (p *probe) HandleInfo(msg any) {
	if name, ok := msg.(string); ok {
		delete(p.timers, name)
	}
	p.j.add("info %d %v", p.gen, msg)
}

func (p *probe) HandleExit(pid *actor.PID, reason actor.TerminatedReason) {
	for name, sp := range p.spawned {
		if sp.Id == pid.Id {
			p.j.add("exit %d %s %v", p.gen, name, reason)
			return
		}
	}
	p.j.add("exit %d unknown %s %v", p.gen, pid.Id, reason)
}

func (p *probe) HandleCoverage(cmd any, f vnode.Filter, from vnode.Sender) vnode.Result {
	return p.j.cover(cmd, f, from)
}

// Commands of the probe, besides setVnode's.
type (
	setTimer struct {
		Name string
		D    time.Duration
	}
	stopTimer struct{ Name string }
	spawnOne  struct{ Name string }
	watchOne  struct {
		Name string
		PID  *actor.PID
	}
	unwatchOne struct{ Name string }
	asyncWork  struct{ Tag string }
	asyncBusy  struct{ Tag string }
	done       struct{ Tag string }
)

func (p *probe) HandleCommand(cmd any, from vnode.Sender) vnode.Result {
	switch m := cmd.(type) {
	case *setTimer:
		p.timers[m.Name] = p.env.Self.After(m.D, m.Name)
		return vnode.Reply(&done{})
	case *stopTimer:
		return vnode.Reply(&done{Tag: fmt.Sprint(p.timers[m.Name].Stop())})
	case *spawnOne:
		p.spawned[m.Name] = p.env.Self.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		return vnode.Reply(p.spawned[m.Name])
	case *watchOne:
		p.spawned[m.Name] = m.PID
		p.env.Self.Watch(m.PID)
		return vnode.Reply(&done{})
	case *unwatchOne:
		p.env.Self.Unwatch(p.spawned[m.Name])
		return vnode.Reply(&done{})
	case *asyncWork:
		release, j := p.j.releaseCh(), p.j
		return vnode.Async(func(ctx context.Context) any {
			j.add("async running %s", m.Tag)
			select {
			case <-release:
			case <-ctx.Done():
				return &done{Tag: m.Tag + " cancelled"}
			}
			return &done{Tag: m.Tag}
		})
	case *asyncBusy:
		release := p.j.releaseCh()
		return vnode.Async(func(context.Context) any { <-release; return &done{Tag: m.Tag} }).IfBusy(&done{Tag: m.Tag + " busy"})
	}
	return p.setVnode.HandleCommand(cmd, from)
}

// startProbe runs a probe vnode of partition 5 in a manager named name.
func startProbe(t *testing.T, sys *actor.ActorSystem, name string, j *journal, cfg vnode.ManagerConfig) *vnode.Manager {
	t.Helper()
	cfg.Name, cfg.Node, cfg.Partitions, cfg.Factory = name, name, []int{5}, j.factory()
	if cfg.Store == nil {
		cfg.Store = storage.NewMemory()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := vnode.StartManager(sys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(j.releaseOnce())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return m
}

// releaseOnce returns the release channel if it is still open, else a fresh one to close (so cleanup may
// close it whatever the test did).
func (j *journal) releaseOnce() chan struct{} {
	ch := j.releaseCh()
	select {
	case <-ch:
		return make(chan struct{})
	default:
		return ch
	}
}

// req sends msg to pid and returns the reply.
func req(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, msg any) any {
	t.Helper()
	res, err := actors.Request(context.Background(), sys, pid, msg, 5*time.Second)
	if err != nil {
		t.Fatalf("%T: %v", msg, err)
	}
	return res
}
