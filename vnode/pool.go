package vnode

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// workerPool runs the vnodes' blocking work (Async results, coverage streams): at most size goroutines, a
// FIFO queue of at most maxQueue jobs behind them (riak_core_vnode_worker_pool, shared by the manager's
// vnodes). Workers start on demand and exit when the queue is empty, so an idle pool holds no goroutine.
type workerPool struct {
	size, maxQueue int
	log            *slog.Logger
	ctx            context.Context // ends at close
	cancel         context.CancelFunc

	mu      sync.Mutex
	running int   // REQUIRES: mu held
	queue   []job // REQUIRES: mu held
	closed  bool  // REQUIRES: mu held
	wg      sync.WaitGroup
}

// job is one piece of work; drop is called instead of run when the pool closes before running it.
type job struct {
	run  func(ctx context.Context)
	drop func()
}

func newWorkerPool(size, maxQueue int, log *slog.Logger) *workerPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &workerPool{size: size, maxQueue: maxQueue, log: log, ctx: ctx, cancel: cancel}
}

// submit queues j; false when the queue is full or the pool closed (j is then neither run nor dropped).
func (p *workerPool) submit(j job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return false
	case p.running < p.size:
		p.running++
		p.wg.Add(1)
		go p.work(j)
		return true
	case len(p.queue) >= p.maxQueue:
		return false
	}
	p.queue = append(p.queue, j)
	return true
}

// work runs j, then queued jobs until the queue is empty.
func (p *workerPool) work(j job) {
	defer p.wg.Done()
	for {
		p.runOne(j)
		p.mu.Lock()
		if len(p.queue) == 0 || p.closed {
			p.running--
			p.mu.Unlock()
			return
		}
		j = p.queue[0]
		p.queue[0] = job{}
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = nil // NB: let a burst's backing array go
		}
		p.mu.Unlock()
	}
}

// runOne runs j; a panic is logged, not propagated (it would kill the process: no supervisor watches a
// worker goroutine).
func (p *workerPool) runOne(j job) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("vnode: async work panicked", "panic", fmt.Sprint(r))
		}
	}()
	j.run(p.ctx)
}

// close ends the pool's context, drops the queued jobs and waits for the running ones (or ctx).
func (p *workerPool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	queued := p.queue
	p.queue = nil
	p.mu.Unlock()
	p.cancel()
	for _, j := range queued {
		j.drop()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vnode: async work still running: %w", ctx.Err())
	}
}
