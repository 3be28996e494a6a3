package storage

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// groupScript holds a leader at its collection point until the test has queued the followers it wants
// behind it, and records the size of every group.
type groupScript struct {
	t       *testing.T
	c       *committer
	hold    chan struct{} // closed: the first leader collects
	held    chan struct{} // closed by the first leader as it reaches its collection point
	once    sync.Once
	mu      sync.Mutex
	groups  []int
	pending int // followers to wait for
}

func scriptCommitter(t *testing.T, c *committer) *groupScript {
	s := &groupScript{t: t, c: c, hold: make(chan struct{}), held: make(chan struct{})}
	c.hookCollect = func() {
		first := false
		s.once.Do(func() { first = true })
		if first {
			close(s.held)
			<-s.hold
		}
	}
	c.hookGroup = func(n int) {
		s.mu.Lock()
		s.groups = append(s.groups, n)
		s.mu.Unlock()
	}
	return s
}

// queued is how many writers wait behind the leader.
func (s *groupScript) queued() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return len(s.c.queue)
}

func (s *groupScript) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.groups...)
}

// openLevelDBForCommit opens a LevelDB in a temp dir.
func openLevelDBForCommit(t *testing.T) *LevelDB {
	t.Helper()
	l, err := OpenLevelDB(DefaultLevelDBConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestGroupCommitMergesWaitingWriters: writers that arrive while a leader writes go to goleveldb as one
// batch, and every one of them returns stored (Put, Delete and Write alike).
func TestGroupCommitMergesWaitingWriters(t *testing.T) {
	l := openLevelDBForCommit(t)
	if err := l.Put(9, []byte("gone"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	s := scriptCommitter(t, &l.commit)

	errs := make(chan error, 8)
	go func() { errs <- l.Put(1, []byte("leader"), []byte("L")) }()
	<-s.held
	const followers = 6
	for i := range followers - 2 {
		go func() { errs <- l.Put(uint32(2+i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("v%d", i))) }()
	}
	go func() { errs <- l.Delete(9, []byte("gone")) }()
	go func() {
		errs <- l.Write(7, []Op{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}})
	}()
	eventually.True(t, 10*time.Second, "followers queued behind the leader", func() bool { return s.queued() == followers })
	close(s.hold)
	for range followers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One goleveldb batch for all of them.
	if got := s.sizes(); len(got) != 1 || got[0] != followers+1 {
		t.Fatalf("groups %v, want [%d]", got, followers+1)
	}
	want := map[string]string{"\x00\x00\x00\x01leader": "L", "\x00\x00\x00\x07a": "1", "\x00\x00\x00\x07b": "2"}
	for i := range followers - 2 {
		want[string(appendKey(nil, uint32(2+i), []byte(fmt.Sprintf("k%d", i))))] = fmt.Sprintf("v%d", i)
	}
	for k, v := range want {
		got, err := l.Get(decodeStored(k))
		if err != nil || string(got) != v {
			t.Errorf("%q: %q, %v; want %q", k, got, err, v)
		}
	}
	if _, err := l.Get(9, []byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted key: %v, want ErrNotFound", err)
	}
}

func decodeStored(k string) (uint32, []byte) {
	p, _ := decodePartition([]byte(k))
	return p, []byte(k[prefixLen:])
}

// TestGroupCommitBoundsGroup: a group holds at most maxGroupBytes of keys and values, its leader's own write
// included; the first writer that does not fit leads the next group.
func TestGroupCommitBoundsGroup(t *testing.T) {
	l := openLevelDBForCommit(t)
	s := scriptCommitter(t, &l.commit)
	big := bytes.Repeat([]byte("v"), maxGroupBytes*2/5)
	errs := make(chan error, 4)
	go func() { errs <- l.Put(1, []byte("leader"), []byte("L")) }()
	<-s.held
	// Queued one at a time, so their order is known: 2 and 3 fit in one group (4/5 of the bound), 4 does not.
	for i := range 3 {
		go func() { errs <- l.Put(uint32(2+i), []byte("big"), big) }()
		eventually.True(t, 10*time.Second, "follower queued", func() bool { return s.queued() == i+1 })
	}
	close(s.hold)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := s.sizes(); fmt.Sprint(got) != "[3 1]" {
		t.Fatalf("groups %v, want [3 1]", got)
	}
	for p := uint32(2); p <= 4; p++ {
		if got, err := l.Get(p, []byte("big")); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("partition %d: %d bytes, %v", p, len(got), err)
		}
	}
}

// TestGroupCommitErrorReachesEveryWriter: when the group's batch fails, every writer of the group gets the
// error (none is told its write was stored), and the committer is left ready for the next writer.
func TestGroupCommitErrorReachesEveryWriter(t *testing.T) {
	db, err := leveldb.OpenFile(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	c := &committer{}
	s := scriptCommitter(t, c)
	l := newLevelDB(DefaultLevelDBConfig("unused"))
	write := func(p uint32) error {
		w := getPending(p, nil)
		w.one[0] = Op{Key: []byte("k"), Value: []byte("v")}
		w.ops = w.one[:]
		defer putPending(w)
		return c.commit(db, l.wo, w)
	}
	errs := make(chan error, 4)
	go func() { errs <- write(1) }()
	<-s.held
	for i := range 3 {
		go func() { errs <- write(uint32(2 + i)) }()
	}
	eventually.True(t, 10*time.Second, "followers queued behind the leader", func() bool { return s.queued() == 3 })
	close(s.hold)
	for range 4 {
		if err := <-errs; !errors.Is(err, leveldb.ErrClosed) {
			t.Fatalf("writer got %v, want leveldb.ErrClosed", err)
		}
	}
	if got := s.sizes(); fmt.Sprint(got) != "[4]" {
		t.Fatalf("groups %v, want [4]", got)
	}
	c.mu.Lock()
	leading, queued := c.leading, len(c.queue)
	c.mu.Unlock()
	if leading || queued != 0 {
		t.Fatalf("committer left leading=%v with %d queued", leading, queued)
	}
	if err := write(5); !errors.Is(err, leveldb.ErrClosed) {
		t.Fatalf("next writer got %v, want leveldb.ErrClosed", err)
	}
}
