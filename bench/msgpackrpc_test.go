package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// firstID is the msgid of the first request sent in slot.
func firstID(slot int) uint32 { return rpcMsgID(slot, 1) }

// rpcReply encodes a response [1, msgid, rerr, result] (of values msgpack can encode).
func rpcReply(msgid any, rerr, result any) []byte {
	b, err := msgpack.Marshal([]any{rpcResponse, msgid, rerr, result})
	if err != nil {
		panic(err)
	}
	return b
}

// object is get's result holding values.
func object(values ...[]byte) map[string]any {
	meta := make([]any, len(values))
	for i := range meta {
		meta[i] = map[string]any{"flags": 0, "expiry": 0, "last_modified": int64(1700000000000000000)}
	}
	return map[string]any{"values": values, "metadata": meta, "context": []byte{0x83, 1, 2, 3}}
}

func rpcErr(code, msg string) map[string]any { return map[string]any{"code": code, "message": msg} }

func TestRPCSendWire(t *testing.T) {
	var out bytes.Buffer
	c := newRPCClient(rwPair{strings.NewReader(""), &out})
	for _, q := range []struct {
		kind       OpKind
		key, value []byte
	}{{OpGet, []byte("bench:1"), []byte("ignored")}, {OpSet, []byte("bench:2"), []byte("hello")}, {OpSet, []byte("bench:3"), nil}} {
		if err := c.Queue(q.kind, q.key, q.value); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != 0 {
		t.Fatal("Queue wrote before Flush")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []any{
		[]any{int8(0), int64(firstID(0)), "get", []any{[]byte("bench:1"), map[string]any{}}},
		[]any{int8(0), int64(firstID(1)), "put", []any{[]byte("bench:2"), []byte("hello"), nil, map[string]any{"blind": true}}},
		[]any{int8(0), int64(firstID(2)), "put", []any{[]byte("bench:3"), []byte{}, nil, map[string]any{"blind": true}}},
	}
	dec := msgpack.NewDecoder(&out) // trusted bytes: our own encoding
	for i, w := range want {
		v, err := dec.DecodeInterface()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if fmt.Sprint(normalize(v)) != fmt.Sprint(normalize(w)) {
			t.Errorf("request %d = %#v, want %#v", i, v, w)
		}
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes after the requests", out.Len())
	}
	// keys and values are bin, not str
	var raw bytes.Buffer
	c = newRPCClient(rwPair{strings.NewReader(""), &raw})
	c.Queue(OpSet, []byte("k"), []byte("v"))
	c.Flush()
	if !bytes.Contains(raw.Bytes(), []byte{0xc4, 1, 'k', 0xc4, 1, 'v', 0xc0, 0x81, 0xa5, 'b', 'l', 'i', 'n', 'd', 0xc3}) {
		t.Errorf("put params not [bin, bin, nil, {\"blind\": true}]: % x", raw.Bytes())
	}
}

// normalize turns every integer into int64, so values compare whatever width msgpack picked.
func normalize(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	if rv := reflect.ValueOf(v); rv.CanInt() {
		return rv.Int()
	} else if rv.CanUint() {
		return int64(rv.Uint())
	}
	return v
}

func TestRPCRead(t *testing.T) {
	id := firstID(0)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	big := bytes.Repeat([]byte("v"), 3*rpcBufSize) // forces the read buffer to grow
	tests := []struct {
		name    string
		kind    OpKind
		reply   []byte
		want    Outcome
		wantErr string // "" ok, "reply:TEXT" *ReplyError with that Line, "protocol" ErrProtocol, "eof"
	}{
		{"hit", OpGet, rpcReply(id, nil, object([]byte("hello"))), Hit, ""},
		{"hit siblings", OpGet, rpcReply(id, nil, object([]byte("a"), []byte("b"))), Hit, ""},
		{"hit big value", OpGet, rpcReply(id, nil, object(big)), Hit, ""},
		{"hit str values", OpGet, rpcReply(id, nil, map[string]any{"values": []string{"x"}}), Hit, ""},
		{"hit values first", OpGet, rpcReply(id, nil, map[string]any{"values": [][]byte{{1}}}), Hit, ""},
		{"no live values", OpGet, rpcReply(id, nil, map[string]any{"values": []any{}}), Miss, ""},
		{"nil values", OpGet, rpcReply(id, nil, object()), Miss, ""},
		{"not found", OpGet, rpcReply(id, rpcErr("not_found", "not found"), nil), Miss, ""},
		{"msgid as uint32", OpGet, cat([]byte{0x94, 1, 0xce, 0, 0, 4, 0}, []byte{0xc0, 0x81, 0xa6}, []byte("values"), []byte{0x90}), Miss, ""},
		{"timeout", OpGet, rpcReply(id, map[string]any{"code": "timeout", "message": "need 2 got 1", "need": 2, "got": 1}, nil), 0, "reply:timeout: need 2 got 1"},
		{"stored", OpSet, rpcReply(id, nil, map[string]any{}), Stored, ""},
		{"stored nil result", OpSet, rpcReply(id, nil, nil), Stored, ""},
		{"stored with body", OpSet, rpcReply(id, nil, object([]byte("x"))), Stored, ""},
		{"put not found", OpSet, rpcReply(id, rpcErr("not_found", "x"), nil), 0, "reply:not_found: x"},
		{"overload", OpSet, rpcReply(id, rpcErr("overload", "busy"), nil), 0, "reply:overload: busy"},
		{"error code only", OpSet, rpcReply(id, map[string]any{"code": "internal"}, nil), 0, "reply:internal"},
		{"error as str", OpGet, rpcReply(id, "boom", nil), 0, "reply:boom"},
		{"error as int", OpGet, rpcReply(id, 7, nil), 0, "reply:error reply of another shape"},
		{"error code not a str", OpGet, rpcReply(id, map[string]any{"code": 5, "message": "m"}, nil), 0, "reply:m"},
		{"error with int keys", OpGet, rpcReply(id, map[int]any{1: "x"}, nil), 0, "reply:"},
		{"control bytes quoted", OpSet, rpcReply(id, rpcErr("x", "a\nb"), nil), 0, "reply:x: a?b"},
		{"get result not a map", OpGet, rpcReply(id, nil, []byte("v")), 0, "protocol"},
		{"get result nil", OpGet, rpcReply(id, nil, nil), 0, "protocol"},
		{"get without values", OpGet, rpcReply(id, nil, map[string]any{"context": []byte{1}}), 0, "protocol"},
		{"values not an array", OpGet, rpcReply(id, nil, map[string]any{"values": "x"}), 0, "protocol"},
		{"wrong msgid", OpGet, rpcReply(id+1, nil, object()), 0, "protocol"},
		{"stale msgid", OpGet, rpcReply(rpcMsgID(0, 0), nil, object()), 0, "protocol"},
		{"negative msgid", OpGet, rpcReply(-1, nil, object()), 0, "protocol"},
		{"msgid over uint32", OpGet, rpcReply(uint64(1)<<32|uint64(id), nil, object()), 0, "protocol"},
		{"msgid not an int", OpGet, rpcReply("1024", nil, object()), 0, "protocol"},
		{"request type", OpGet, cat([]byte{0x94, 0, 0xcd, 4, 0, 0xa3}, []byte("get"), []byte{0x90}), 0, "protocol"},
		{"three elements", OpGet, []byte{0x93, 1, 0xcd, 4, 0, 0xc0}, 0, "protocol"},
		{"not an array", OpGet, []byte{0x81, 1, 2}, 0, "protocol"},
		{"array32 of 4 billion", OpGet, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 0, "protocol"},
		{"bin32 of 4 GiB", OpGet, []byte{0x94, 1, 0xcd, 4, 0, 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff}, 0, "protocol"},
		{"nested too deep", OpGet, bytes.Repeat([]byte{0x91}, 100), 0, "protocol"},
		{"never-used byte", OpGet, []byte{0xc1}, 0, "protocol"},
		{"truncated", OpGet, rpcReply(id, nil, object([]byte("hello")))[:12], 0, "eof"},
		{"empty", OpSet, nil, 0, "eof"},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/bytewise"
			}
			t.Run(name, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tt.reply)
				if split {
					r = iotest.OneByteReader(r)
				}
				c := newRPCClient(rwPair{r, io.Discard})
				if err := c.Queue(tt.kind, []byte("k"), []byte("v")); err != nil {
					t.Fatal(err)
				}
				got, err := c.Read(tt.kind, []byte("k"))
				checkRead(t, got, err, tt.want, tt.wantErr)
			})
		}
	}
}

func checkRead(t *testing.T, got Outcome, err error, want Outcome, wantErr string) {
	t.Helper()
	var re *ReplyError
	switch {
	case wantErr == "":
		if err != nil || got != want {
			t.Fatalf("Read = %v, %v; want %v", got, err, want)
		}
	case strings.HasPrefix(wantErr, "reply:"):
		if !errors.As(err, &re) || re.Line != strings.TrimPrefix(wantErr, "reply:") {
			t.Fatalf("err = %v, want *ReplyError %q", err, wantErr)
		}
	case wantErr == "protocol":
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("err = %v, want ErrProtocol", err)
		}
	case wantErr == "eof":
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want EOF", err)
		}
	}
}

// TestRPCOutOfOrder: replies come in any order; Read hands them out in request order, Next as they come, and
// a reply to a request that is not in flight (a duplicate, an earlier use of the slot) breaks the stream.
func TestRPCOutOfOrder(t *testing.T) {
	replies := [][]byte{
		rpcReply(firstID(2), nil, object([]byte("v"))),
		rpcReply(firstID(0), rpcErr("not_found", ""), nil),
		rpcReply(firstID(1), rpcErr("overload", "busy"), nil),
		rpcReply(rpcMsgID(0, 2), nil, map[string]any{}),
	}
	c := newRPCClient(rwPair{bytes.NewReader(bytes.Join(replies, nil)), io.Discard})
	for _, kind := range []OpKind{OpGet, OpSet, OpGet} {
		if err := c.Queue(kind, []byte("k"), nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Read(OpGet, nil)
	checkRead(t, got, err, Miss, "")
	got, err = c.Read(OpSet, nil)
	checkRead(t, got, err, 0, "reply:overload: busy")
	if _, err := c.Read(OpSet, nil); err == nil {
		t.Fatal("Read of the wrong kind succeeded")
	}
	got, err = c.Read(OpGet, nil)
	checkRead(t, got, err, Hit, "")
	// Send into slot 0 once Queue and Read are done with it: its second use has msgid rpcMsgID(0, 2)
	if err := c.Send(0, OpSet, []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	if slot, out, err := c.Next(); slot != 0 || out != Stored || err != nil {
		t.Fatalf("Next = %d, %v, %v", slot, out, err)
	}

	// Next: slots 5, 9 and 1000 in flight, replies 9, 1000, 5, then a duplicate of 9
	replies = [][]byte{
		rpcReply(firstID(9), nil, map[string]any{}),
		rpcReply(firstID(1000), nil, object([]byte("x"))),
		rpcReply(firstID(5), rpcErr("not_found", ""), nil),
		rpcReply(firstID(9), nil, map[string]any{}),
	}
	c = newRPCClient(rwPair{bytes.NewReader(bytes.Join(replies, nil)), io.Discard})
	for _, s := range []struct {
		slot int
		kind OpKind
	}{{5, OpGet}, {9, OpSet}, {1000, OpGet}} {
		if err := c.Send(s.slot, s.kind, []byte("k"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send(9, OpGet, []byte("k"), nil); err == nil {
		t.Fatal("Send into a busy slot succeeded")
	}
	if err := c.Send(rpcSlots, OpGet, []byte("k"), nil); err == nil {
		t.Fatal("Send into a slot out of range succeeded")
	}
	for _, want := range []struct {
		slot int
		out  Outcome
	}{{9, Stored}, {1000, Hit}, {5, Miss}} {
		slot, out, err := c.Next()
		if slot != want.slot || out != want.out || err != nil {
			t.Fatalf("Next = %d, %v, %v; want %d, %v", slot, out, err, want.slot, want.out)
		}
	}
	if _, _, err := c.Next(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("duplicate reply: err = %v, want ErrProtocol", err)
	}
	if _, _, err2 := c.Next(); !errors.Is(err2, ErrProtocol) || c.Buffered() != true {
		t.Fatalf("after a protocol error: err = %v, want it sticky (and Buffered, so Next reports it)", err2)
	}
}

// TestRPCQueueBound: Queue refuses more requests in flight than msgids can tell apart.
func TestRPCQueueBound(t *testing.T) {
	c := newRPCClient(rwPair{strings.NewReader(""), io.Discard})
	for i := range rpcSlots {
		if err := c.Queue(OpGet, []byte("k"), nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := c.Queue(OpGet, []byte("k"), nil); err == nil {
		t.Fatal("request over the bound queued")
	}
}

// TestRPCBuffered: Buffered is true exactly when a complete reply waits, however the bytes arrived.
func TestRPCBuffered(t *testing.T) {
	r1, r2 := rpcReply(firstID(0), nil, object([]byte("v"))), rpcReply(firstID(1), nil, map[string]any{})
	pr, pw := io.Pipe()
	c := newRPCClient(rwPair{pr, io.Discard})
	c.Send(0, OpGet, []byte("k"), nil)
	c.Send(1, OpSet, []byte("k"), nil)
	if c.Buffered() {
		t.Fatal("Buffered with nothing read")
	}
	go func() { pw.Write(append(r1, r2[:3]...)) }()
	if slot, out, err := c.Next(); slot != 0 || out != Hit || err != nil {
		t.Fatalf("Next = %d, %v, %v", slot, out, err)
	}
	if c.Buffered() {
		t.Fatal("Buffered with 3 bytes of a reply")
	}
	go func() { pw.Write(r2[3:]) }()
	if slot, out, err := c.Next(); slot != 1 || out != Stored || err != nil {
		t.Fatalf("Next = %d, %v, %v", slot, out, err)
	}
	pw.Close()
}

// replayRW is a server that replays a precomputed stream of replies and discards the requests.
type replayRW struct{ r *bytes.Reader }

func (p *replayRW) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *replayRW) Write(b []byte) (int, error) { return len(b), nil }

// TestRPCNoAllocs: the steady state of send, flush and read, queued or windowed, allocates nothing.
func TestRPCNoAllocs(t *testing.T) {
	const runs = 200
	key, value := []byte("bench:42"), fillValue(make([]byte, 100))
	for _, mode := range []string{"queue", "window"} {
		var stream []byte
		for i := range 2 * (runs + 1) { // AllocsPerRun adds one warm-up run; a get and a put per run
			id := rpcMsgID(i%rpcSlots, uint32(1+i/rpcSlots)) // queue: slot after slot
			if mode == "window" {
				id = rpcMsgID(0, uint32(1+i)) // window: slot 0 again and again
			}
			if i%2 == 0 {
				stream = append(stream, rpcReply(id, nil, object(value))...)
			} else {
				stream = append(stream, rpcReply(id, nil, map[string]any{})...)
			}
		}
		c := newRPCClient(&replayRW{bytes.NewReader(stream)})
		allocs := testing.AllocsPerRun(runs, func() {
			for _, kind := range []OpKind{OpGet, OpSet} {
				want := Hit
				if kind == OpSet {
					want = Stored
				}
				var out Outcome
				var err error
				if mode == "queue" {
					c.Queue(kind, key, value)
					c.Flush()
					out, err = c.Read(kind, key)
				} else {
					c.Send(0, kind, key, value)
					c.Flush()
					_, out, err = c.Next()
				}
				if out != want || err != nil {
					t.Fatalf("%s %v: %v, %v", mode, kind, out, err)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per get+set", mode, allocs)
		}
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// rpcResult is what one Next said, in comparable form.
type rpcResult struct {
	slot int
	out  Outcome
	err  string // "", "reply:LINE", "protocol", "eof", or another error's text
}

// readAll sends requests to slots 0..len(kinds)-1 and calls Next until an error that is not a reply error
// (the stream is exhausted or broken), checking the client's promises on the way.
func readAll(t *testing.T, r io.Reader, kinds []OpKind) []rpcResult {
	c := newRPCClient(rwPair{r, io.Discard})
	for slot, k := range kinds {
		if err := c.Send(slot, k, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	var res []rpcResult
	returned := map[int]bool{}
loop:
	for range len(kinds) + 1 {
		slot, out, err := c.Next()
		var re *ReplyError
		switch {
		case err == nil || errors.As(err, &re):
			if slot < 0 || slot >= len(kinds) || returned[slot] {
				t.Fatalf("Next returned slot %d, which was not in flight", slot)
			}
			returned[slot] = true
			if err == nil {
				want := map[OpKind][]Outcome{OpGet: {Hit, Miss}, OpSet: {Stored}}[kinds[slot]]
				if out != want[0] && (len(want) == 1 || out != want[1]) {
					t.Fatalf("slot %d (%v): outcome %v", slot, kinds[slot], out)
				}
				res = append(res, rpcResult{slot: slot, out: out})
			} else {
				res = append(res, rpcResult{slot: slot, err: "reply:" + re.Line})
			}
			continue
		case errors.Is(err, ErrProtocol):
			res = append(res, rpcResult{err: "protocol"})
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			res = append(res, rpcResult{err: "eof"})
		default:
			res = append(res, rpcResult{err: err.Error()})
		}
		break loop
	}
	return res
}

// FuzzRPCReader feeds arbitrary bytes to the reply reader as the server's side of a connection with four
// requests in flight (get, put, get, put in slots 0..3). It must never panic or allocate what a header
// declares, only hand out replies to requests in flight, each once, with an outcome fitting the request,
// and say the same whether the bytes arrive at once or in chunks of any size.
func FuzzRPCReader(f *testing.F) {
	seeds := [][]byte{
		rpcReply(firstID(0), nil, object([]byte("hello"))),
		bytes.Join([][]byte{
			rpcReply(firstID(3), nil, map[string]any{}),
			rpcReply(firstID(0), rpcErr("not_found", "not found"), nil),
			rpcReply(firstID(2), nil, object([]byte("a"), []byte("b"))),
			rpcReply(firstID(1), rpcErr("timeout", "need 2 got 1"), nil),
		}, nil),
		rpcReply(firstID(1), "boom", nil),
		rpcReply(firstID(2), nil, map[string]any{"values": []any{}}),
		rpcReply(firstID(0), nil, nil),
		rpcReply(firstID(0)+1, nil, map[string]any{}),
		append(rpcReply(firstID(1), nil, nil), rpcReply(firstID(1), nil, nil)...),
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x94, 1, 0xcd, 4, 0, 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff},
		{0x94, 1, 0xcd, 4, 0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff},
		bytes.Repeat([]byte{0x91}, 40),
		{0xc1},
		{0x94, 1, 0xcd, 4, 0, 0xc0, 0xc7, 2, 5, 'a', 'b'},
	}
	for i, s := range seeds {
		f.Add(s, uint8(i))
	}
	kinds := []OpKind{OpGet, OpSet, OpGet, OpSet}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := readAll(t, bytes.NewReader(stream), kinds)
		split := readAll(t, &chunkReader{bytes.NewReader(stream), 1 + int(chunk%23)}, kinds)
		if !reflect.DeepEqual(whole, split) {
			t.Fatalf("at once: %v\nin chunks of %d: %v", whole, 1+chunk%23, split)
		}
	})
}

// fakeRPC is a minimal in-process msgpack-RPC server with faults: it answers the requests it has read in
// reverse order once no more are buffered (so replies overtake each other), can close each connection after
// closeAfter requests, and can stay silent.
type fakeRPC struct {
	closeAfter int
	silent     bool

	mu   sync.Mutex
	data map[string][]byte
}

func startFakeRPC(t *testing.T, f *fakeRPC) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.data = map[string][]byte{}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	return l.Addr().String()
}

func (f *fakeRPC) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	dec := msgpack.NewDecoder(r) // trusted: the bench's own requests
	var pending [][]byte
	for n := 1; ; n++ {
		var req []any
		if err := dec.Decode(&req); err != nil || len(req) != 4 {
			return
		}
		if f.silent {
			continue
		}
		params, _ := req[3].([]any)
		key := string(params[0].([]byte))
		var reply []byte
		f.mu.Lock()
		switch req[2] {
		case "get":
			if v, ok := f.data[key]; ok {
				reply = rpcReply(req[1], nil, object(v))
			} else {
				reply = rpcReply(req[1], rpcErr("not_found", "not found"), nil)
			}
		case "put":
			f.data[key] = params[1].([]byte)
			reply = rpcReply(req[1], nil, map[string]any{})
		}
		f.mu.Unlock()
		pending = append(pending, reply)
		if r.Buffered() == 0 || n == f.closeAfter {
			slices.Reverse(pending)
			c.Write(bytes.Join(pending, nil))
			pending = pending[:0]
		}
		if n == f.closeAfter {
			return
		}
	}
}

// TestRunRPCWindowFake: the window keeps going when replies overtake each other, over several connections.
func TestRunRPCWindowFake(t *testing.T) {
	addr := startFakeRPC(t, &fakeRPC{})
	cfg := testConfig(addr)
	cfg.Protocol, cfg.Conns, cfg.Pipeline = "msgpack-rpc", 3, 16
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Ops == 0 || rep.Hits == 0 || rep.Misses != 0 || rep.Errors != 0 || rep.Stop != StopDuration {
		t.Fatalf("stop %s counts %+v", rep.Stop, rep.Counts)
	}
}

// TestRunRPCWindowReconnects: a server that drops every connection after 50 requests costs errors (every
// request in flight) and reconnects, and the run carries on; an Ops budget still holds exactly.
func TestRunRPCWindowReconnects(t *testing.T) {
	addr := startFakeRPC(t, &fakeRPC{closeAfter: 50})
	cfg := testConfig(addr)
	// NB: a duration far longer than 3000 operations and their reconnects take, so the ops limit ends the run.
	cfg.Protocol, cfg.Conns, cfg.Pipeline, cfg.Prefill, cfg.Duration, cfg.Ops = "msgpack-rpc", 2, 8, false, time.Minute, 3000
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Reconnects == 0 || rep.Errors == 0 || rep.Ops <= rep.Errors || rep.Hits == 0 {
		t.Fatalf("counts %+v: want reconnects, errors and successful operations", rep.Counts)
	}
	if rep.Ops != 3000 || rep.Stop != StopOps {
		t.Fatalf("ops %d stop %s, want exactly 3000, stopped by ops", rep.Ops, rep.Stop)
	}
}

// TestRunRPCWindowHardCap: against a server that never answers, every request of the window is lost and the
// run is ended by its hard cap (Duration + grace).
func TestRunRPCWindowHardCap(t *testing.T) {
	defer func(g time.Duration) { hardCapGrace = g }(hardCapGrace)
	hardCapGrace = 300 * time.Millisecond
	addr := startFakeRPC(t, &fakeRPC{silent: true})
	cfg := testConfig(addr)
	cfg.Protocol, cfg.Conns, cfg.Pipeline, cfg.Prefill, cfg.Duration = "msgpack-rpc", 3, 4, false, 200*time.Millisecond
	rep, err := Run(boundedCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stop != StopHardCap || rep.Ops != 12 || rep.Errors != 12 {
		t.Fatalf("stop %s counts %+v: want hard-cap with the 4 requests of each connection lost", rep.Stop, rep.Counts)
	}
}
