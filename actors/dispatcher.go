package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Dispatcher runs actor mailboxes on a fixed set of long-lived worker goroutines instead of protoactor's
// default of a new goroutine per mailbox run.
//
// Why: a per-request coordinator and the vnodes it asks each get their mailbox scheduled several times per
// request. With the default dispatcher every run starts a fresh goroutine whose small initial stack grows
// (copies) as it descends into the actor, the FSM and the storage engine; profiles of a read showed ~20% of
// CPU in stack growth. Workers keep their grown stacks.
//
// Schedule never blocks: when every worker is busy and the queue is full, the run falls back to a new
// goroutine, so an actor that sends to another from inside a worker can never deadlock the pool.
type Dispatcher struct {
	queue      chan func()
	throughput int
	stop       chan struct{}
	wg         sync.WaitGroup

	mu     sync.RWMutex
	closed bool // REQUIRES: mu held
}

var _ actor.Dispatcher = (*Dispatcher)(nil)

// NewDispatcher starts workers goroutines (at least 1) with a queue of 64 runs per worker. throughput is how
// many messages one mailbox run processes before yielding (protoactor's default is 300).
func NewDispatcher(workers, throughput int) *Dispatcher {
	if workers < 1 {
		workers = 1
	}
	if throughput < 1 {
		throughput = 300
	}
	d := &Dispatcher{queue: make(chan func(), 64*workers), throughput: throughput, stop: make(chan struct{})}
	d.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go d.work()
	}
	return d
}

func (d *Dispatcher) work() {
	defer d.wg.Done()
	for {
		select {
		case fn := <-d.queue:
			fn()
		case <-d.stop:
			// No run can be queued any more (closed is set): finish the ones that were.
			for {
				select {
				case fn := <-d.queue:
					fn()
				default:
					return
				}
			}
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *Dispatcher) Schedule(fn func()) {
	d.mu.RLock()
	if !d.closed {
		select {
		case d.queue <- fn:
			d.mu.RUnlock()
			return
		default:
		}
	}
	d.mu.RUnlock()
	go fn()
}

// Throughput implements actor.Dispatcher.
func (d *Dispatcher) Throughput() int { return d.throughput }

// Close stops the workers once they ran every queued run; later runs get goroutines of their own.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
}

// InlineFirst is a dispatcher for one actor: it runs the actor's first mailbox run on the goroutine that
// scheduled it (the spawner's: the run that handles Started) and every later run on Pool, except a run for a
// message from another node when the actor's Mailbox says so (Mailbox.RunPeerMessagesInline). Set Pool,
// then hand a pointer to actor.WithDispatcher; the zero value of the rest is ready, and one InlineFirst must
// serve one actor only.
//
// Why: a request coordinator is spawned by the goroutine that waits for its answer. Running its start
// inline saves a hand-off to a worker and back; when the vnodes it asks answer at once (they run inline
// too), the whole request completes before Spawn returns. Later runs (local late replies, timers) go to the
// pool, so inline runs never nest deeper than spawner → coordinator → vnode; a run for a reply from another
// node (Mailbox.RunPeerMessagesInline) nests as deep on the transport's goroutine: coordinator → vnode (a
// read repair).
type InlineFirst struct {
	Pool actor.Dispatcher
	used atomic.Bool
	// fromPeer: a message from another node was posted since the last scheduled run
	// (Mailbox.RunPeerMessagesInline).
	fromPeer atomic.Bool
}

var _ actor.Dispatcher = (*InlineFirst)(nil)

// Schedule implements actor.Dispatcher.
func (d *InlineFirst) Schedule(fn func()) {
	if d.used.CompareAndSwap(false, true) || (d.fromPeer.Load() && d.fromPeer.Swap(false)) {
		fn()
		return
	}
	d.Pool.Schedule(fn)
}

// Throughput implements actor.Dispatcher.
func (d *InlineFirst) Throughput() int { return d.Pool.Throughput() }
