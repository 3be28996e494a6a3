package msgpackrpc

import (
	"bytes"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileInputs are byte strings that kill or balloon a naive vmihailenco decode.
func hostileInputs() map[string][]byte {
	envelope := h("94 00 07 a4 65 63 68 6f 91") // [0, 7, "echo", [ ... ]]
	in := map[string][]byte{
		"array32 4G":             h("dd ff ff ff ff"),
		"map32 4G":               h("df ff ff ff ff"),
		"bin32 4G":               h("c6 ff ff ff ff"),
		"str32 4G":               h("db ff ff ff ff"),
		"ext32 4G":               h("c9 ff ff ff ff 01"),
		"nested array16 x10k":    h(strings.Repeat("dc ff ff", 10000)),
		"nested map16 x10k":      h(strings.Repeat("de ff ff", 10000)),
		"nested fixarray x10k":   h(strings.Repeat("91", 10000)),
		"bin32 16MiB, 1KiB sent": append(h("c6 01 00 00 00"), make([]byte, 1024)...),
		"in envelope: array32":   append(envelope, h("dd ff ff ff ff")...),
		"in envelope: bin32":     append(envelope, h("c6 ff ff ff ff")...),
		"in envelope: nested":    append(envelope, h(strings.Repeat("dc ff ff", 10000))...),
		"in envelope: str16s":    append(envelope, h(strings.Repeat("da ff ff", 10000))...),
	}
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 8 {
		g := make([]byte, 64<<10)
		for j := range g {
			g[j] = byte(r.Uint32())
		}
		in["garbage"+string(rune('a'+i))] = g
	}
	return in
}

// TestHostileInputs: every hostile input gets at most an error response and a closed connection, the heap
// stays small, and the server keeps serving.
func TestHostileInputs(t *testing.T) {
	s, addr := startServer(t, Config{}, newTestHandler())
	var peak uint64
	for name, in := range hostileInputs() {
		c := dial(t, addr)
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.nc.Write(in) // may fail once the server has closed
		c.nc.(*net.TCPConn).CloseWrite()
		// Read what comes back: nothing, or one error response (with msgid 7), then EOF.
		for {
			r, err := c.next()
			if err != nil {
				break
			}
			if r.err == nil {
				t.Fatalf("%s: got a result %+v", name, r)
			}
		}
		c.nc.Close()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	// Many connections each announcing a 16 MiB value and sending 1 KiB: the buffers follow the bytes
	// received, not what the headers announce.
	var conns []*client
	for range 100 {
		c := dial(t, addr)
		c.write(append(h("94 00 07 a4 65 63 68 6f 91 c6 01 00 00 00"), make([]byte, 1024)...))
		conns = append(conns, c)
	}
	waitFor(t, "100 connections", func() bool { return s.Stats().Conns == 100 })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapAlloc)
	for _, c := range conns {
		c.nc.Close()
	}
	ping(t, addr)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap after: %d KiB; peak sampled %d KiB; stats %+v", ms.HeapAlloc>>10, peak>>10, s.Stats())
	if ms.HeapAlloc > 64<<20 || peak > 64<<20 {
		t.Fatalf("heap %d bytes (peak %d), want < 64 MiB", ms.HeapAlloc, peak)
	}
}

// TestGarbageConcurrent: many connections sending random bytes at once while pings keep working.
func TestGarbageConcurrent(t *testing.T) {
	_, addr := startServer(t, Config{}, newTestHandler())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 9))
			for range 20 {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				g := make([]byte, 1+r.IntN(8192))
				for j := range g {
					g[j] = byte(r.Uint32())
				}
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				nc.Write(g)
				nc.(*net.TCPConn).CloseWrite()
				var sink bytes.Buffer
				sink.ReadFrom(nc) // until the server closes
				nc.Close()
			}
		}()
	}
	for range 20 {
		ping(t, addr)
	}
	wg.Wait()
	ping(t, addr)
}
