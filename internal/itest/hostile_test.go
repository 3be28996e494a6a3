package itest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gokai-kv/gokai/client"
)

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// sendAndClose writes b on a new connection, reads whatever comes back for a moment, and closes.
func sendAndClose(addr string, b []byte) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = c.Write(b)
	_, _ = io.Copy(io.Discard, c)
}

func hostileRPCInputs() [][]byte {
	nested := bytes.Repeat([]byte{0xdc, 0xff, 0xff}, 10000) // 10k nested array16 headers of 65535 each
	inputs := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},                                        // array32 of 4 billion
		{0xdf, 0xff, 0xff, 0xff, 0xff},                                        // map32 of 4 billion
		{0xc6, 0xff, 0xff, 0xff, 0xff},                                        // bin32 of 4 GiB
		{0xdb, 0xff, 0xff, 0xff, 0xff},                                        // str32 of 4 GiB
		{0x94, 0x00, 0x01, 0xa3, 'p', 'u', 't', 0xdd, 0xff, 0xff, 0xff, 0xff}, // request whose params declare 4 billion
		nested,
		{0x94, 0x01, 0x01, 0xc0, 0xc0}, // a response sent by a client
		{0x93, 0x00, 0x01, 0xa4},       // wrong arity, truncated
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		g := make([]byte, 1+r.IntN(512))
		for j := range g {
			g[j] = byte(r.UintN(256))
		}
		inputs = append(inputs, g)
	}
	return inputs
}

// TestHostileInputsLeaveTheNodeServing attacks both faces of a real node with hostile and truncated input
// while a well-behaved client keeps working, then checks the node still serves and its memory stayed bounded.
func TestHostileInputsLeaveTheNodeServing(t *testing.T) {
	p := startNode(t, "")
	pid := p.cmd.Process.Pid
	c := newRPCClient(t, p.rpcAddr, client.Config{})
	ctx := context.Background()
	// The well-behaved client overwrites one key over and over without reading it first: blind writes, as
	// it asks (without Blind each put would add a sibling, until max-siblings refused them).
	blind := &client.WriteOptions{Blind: true}
	if _, err := c.Put(ctx, []byte("steady"), []byte("v0"), nil, blind); err != nil {
		t.Fatal(err)
	}
	rssBefore := rssKiB(t, pid)

	// A well-behaved client runs throughout; every one of its calls must succeed.
	var good atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var goodErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.Put(cctx, []byte("steady"), []byte(fmt.Sprintf("v%d", i)), nil, blind)
			if err == nil {
				_, err = c.Get(cctx, []byte("steady"), nil)
			}
			cancel()
			if err != nil {
				goodErr.Store(err)
				return
			}
			good.Add(1)
		}
	}()

	// Every hostile input, several times over, on concurrent connections.
	inputs := hostileRPCInputs()
	valid, err := msgpack.Marshal([]any{0, 7, "put", []any{[]byte("key"), []byte("value"), nil, map[string]any{"w": 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(valid); i++ { // a valid request truncated at every offset
		inputs = append(inputs, valid[:i])
	}
	mcInputs := [][]byte{
		[]byte("set k 0 0 4294967295\r\n"),
		[]byte("set k 0 0 2000000\r\n" + strings.Repeat("x", 4096)),
		[]byte(strings.Repeat("get ", 100000) + "\r\n"),
		[]byte("get " + strings.Repeat("k", 300) + "\r\n"),
		[]byte("\x80\x01\x00\x03key\x00\x00"), // binary protocol
		[]byte("cas k 0 0 1 notanumber\r\nx\r\n"),
		bytes.Repeat([]byte{0}, 70000),
	}
	sem := make(chan struct{}, 32)
	var attacks sync.WaitGroup
	for round := 0; round < 3; round++ {
		for _, in := range inputs {
			attacks.Add(1)
			sem <- struct{}{}
			go func(b []byte) { defer attacks.Done(); defer func() { <-sem }(); sendAndClose(p.rpcAddr, b) }(in)
		}
		for _, in := range mcInputs {
			attacks.Add(1)
			sem <- struct{}{}
			go func(b []byte) { defer attacks.Done(); defer func() { <-sem }(); sendAndClose(p.mcAddr, b) }(in)
		}
	}
	attacks.Wait()
	close(stop)
	wg.Wait()
	if err, _ := goodErr.Load().(error); err != nil {
		t.Fatalf("the well-behaved client failed during the attack: %v", err)
	}
	if good.Load() == 0 {
		t.Fatal("the well-behaved client made no progress")
	}
	// Still serving on both faces.
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the attack: %v", err)
	}
	m := dialMC(t, p.mcAddr)
	if got := m.do("set after 0 0 2\r\nok\r\n"); got != "STORED\r\n" {
		t.Fatalf("memcache after the attack: %q", got)
	}
	rssAfter := rssKiB(t, pid)
	t.Logf("%d hostile connections; well-behaved calls %d; RSS %d KiB before, %d KiB after", 3*(len(inputs)+len(mcInputs)), good.Load(), rssBefore, rssAfter)
	if rssAfter > rssBefore+256*1024 {
		t.Fatalf("RSS grew from %d KiB to %d KiB", rssBefore, rssAfter)
	}
}
