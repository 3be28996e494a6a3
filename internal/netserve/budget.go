package netserve

import (
	"sync/atomic"
	"time"
)

// DefaultBudgetBytes is the budget a server makes for itself when it is given none: 256 MiB.
const DefaultBudgetBytes = 256 << 20

// SmallReservation is the largest reservation that may use a Budget's headroom: the last eighth of the
// budget is kept for requests and responses of at most this size, so that a flood of large ones cannot
// starve the small ones (a get of a short value, an error response).
const SmallReservation = 64 << 10

// TrimEvery is the least time between two calls of a Budget's OnLow.
const TrimEvery = 10 * time.Second

// Budget bounds the bytes a node's client connections hold for requests and responses in flight, across
// servers (memcache and msgpack-RPC share one): a buffer is reserved before it is filled, and released
// when it is dropped. A reservation that does not fit fails at once; the server answers that request
// with an overload error and keeps the connection. A nil *Budget admits everything.
//
// It does not allocate or free anything itself: it is a counter with a limit, and the servers keep the
// discipline (every Reserve matched by one Release on every path; see Account).
type Budget struct {
	limit    int64
	headroom int64 // kept for reservations of at most SmallReservation bytes

	used    atomic.Int64
	refused atomic.Uint64

	// OnLow, when set before use, is called on its own goroutine when usage falls back to a sixteenth of
	// the limit or less after it had reached an eighth of it, at most once per TrimEvery. The node uses it
	// to hand the freed memory back to the OS (the Go heap otherwise keeps it until its next collection).
	OnLow    func()
	peak     atomic.Int64 // highest usage since OnLow was last called
	lastTrim atomic.Int64 // unix nanoseconds of the last OnLow
	now      func() time.Time
}

// NewBudget returns a budget of limit bytes (at least 1).
func NewBudget(limit int64) *Budget {
	limit = max(limit, 1)
	return &Budget{limit: limit, headroom: limit / 8, now: time.Now}
}

// Reserve takes n bytes from the budget, or reports false (counting a refusal) if they do not fit. A
// reservation over SmallReservation must also leave the headroom free.
func (b *Budget) Reserve(n int) bool {
	if b == nil || n <= 0 {
		return true
	}
	ceiling := b.limit
	if n > SmallReservation {
		ceiling -= b.headroom
	}
	for {
		u := b.used.Load()
		if u+int64(n) > ceiling {
			b.refused.Add(1)
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			b.notePeak(u + int64(n))
			return true
		}
	}
}

// force takes n bytes whether or not they fit (see Account.Force).
func (b *Budget) force(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.notePeak(b.used.Add(int64(n)))
}

func (b *Budget) notePeak(u int64) {
	for {
		p := b.peak.Load()
		if u <= p || b.peak.CompareAndSwap(p, u) {
			return
		}
	}
}

// Release gives back n bytes reserved before.
func (b *Budget) Release(n int) {
	if b == nil || n <= 0 {
		return
	}
	u := b.used.Add(-int64(n))
	if u < 0 {
		panic("netserve: Budget released more than was reserved") // INVARIANT: every Release matches a Reserve
	}
	if b.OnLow != nil && u <= b.limit/16 && b.peak.Load() >= b.limit/8 {
		b.maybeTrim()
	}
}

// maybeTrim calls OnLow unless it was called less than TrimEvery ago.
func (b *Budget) maybeTrim() {
	now := b.now().UnixNano()
	last := b.lastTrim.Load()
	if now-last < int64(TrimEvery) || !b.lastTrim.CompareAndSwap(last, now) {
		return
	}
	b.peak.Store(b.used.Load())
	go b.OnLow()
}

// Used returns the bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Refused returns how many reservations did not fit, since the start.
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// Account is one connection's share of a Budget, with a cap of its own: what the connection holds (its
// read buffer beyond the base size, its requests being run, its responses waiting to be written) must fit
// both. It may be used from the connection's goroutines concurrently. The zero value, and a nil *Account,
// admit everything (a nil one keeps no count).
type Account struct {
	b    *Budget
	max  int64 // 0: no cap of its own
	held atomic.Int64
}

// NewAccount returns an account on b (nil: no node budget) capped at maxBytes (0: no cap of its own).
func NewAccount(b *Budget, maxBytes int64) *Account {
	return &Account{b: b, max: maxBytes}
}

// Reserve takes n bytes for the connection, or reports false if they exceed its cap or the budget.
func (a *Account) Reserve(n int) bool {
	if a == nil || n <= 0 {
		return true
	}
	if a.max > 0 {
		for {
			h := a.held.Load()
			if h+int64(n) > a.max {
				if a.b != nil {
					a.b.refused.Add(1)
				}
				return false
			}
			if a.held.CompareAndSwap(h, h+int64(n)) {
				break
			}
		}
	} else {
		a.held.Add(int64(n))
	}
	if !a.b.Reserve(n) {
		a.held.Add(-int64(n))
		return false
	}
	return true
}

// Force takes n bytes even if they do not fit: for the small error responses a server must send to keep
// its protocol (each is bounded, and so is their number per connection).
func (a *Account) Force(n int) {
	if a == nil || n <= 0 {
		return
	}
	a.held.Add(int64(n))
	a.b.force(n)
}

// Release gives back n bytes reserved (or forced) before.
func (a *Account) Release(n int) {
	if a == nil || n <= 0 {
		return
	}
	if a.held.Add(-int64(n)) < 0 {
		panic("netserve: Account released more than was reserved") // INVARIANT: every Release matches a Reserve
	}
	a.b.Release(n)
}

// Held returns the bytes the connection holds now.
func (a *Account) Held() int64 {
	if a == nil {
		return 0
	}
	return a.held.Load()
}
