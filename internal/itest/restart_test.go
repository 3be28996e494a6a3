package itest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// loadUntilSignal runs writers that set keys until the node stops answering, recording every write the
// node acknowledged with STORED. It sends sig to the node after warmup acknowledged writes.
func loadUntilSignal(t *testing.T, p *proc, sig syscall.Signal, warmup int) map[string]string {
	t.Helper()
	var (
		mu     sync.Mutex
		acked  = map[string]string{}
		wg     sync.WaitGroup
		signal sync.Once
	)
	const writers, perWriter = 4, 5000
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", p.mcAddr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for i := 0; i < perWriter; i++ {
				k, v := fmt.Sprintf("w%d-k%d", w, i%700), fmt.Sprintf("val-%d-%d", w, i)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := fmt.Fprintf(c, "set %s 0 0 %d\r\n%s\r\n", k, len(v), v); err != nil {
					return
				}
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if line != "STORED\r\n" {
					continue
				}
				mu.Lock()
				acked[k] = v
				n := len(acked)
				mu.Unlock()
				if n >= warmup {
					signal.Do(func() {
						if err := p.cmd.Process.Signal(sig); err != nil {
							t.Errorf("signal: %v", err)
						}
					})
				}
			}
		}(w)
	}
	wg.Wait()
	signal.Do(func() { _ = p.cmd.Process.Signal(sig) })
	<-p.exited
	return acked
}

func checkAcked(t *testing.T, addr string, acked map[string]string) {
	t.Helper()
	m := dialMC(t, addr)
	missing := 0
	for k, v := range acked {
		got := m.do("get "+k+"\r\n", "END")
		want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", k, len(v), v)
		if got != want {
			missing++
			if missing <= 5 {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, len(acked))
	}
}

func TestSIGTERMDrainsAndKeepsAcknowledgedWrites(t *testing.T) {
	p := startNode(t, "")
	acked := loadUntilSignal(t, p, syscall.SIGTERM, 2000)
	if p.exitErr != nil {
		t.Fatalf("graceful stop exited with %v\n%s", p.exitErr, p.logText())
	}
	if !strings.Contains(p.logText(), "gokai stopped") {
		t.Fatalf("no clean stop in log:\n%s", p.logText())
	}
	t.Logf("%d keys acknowledged before and during SIGTERM", len(acked))
	q := startNode(t, p.dataDir)
	checkAcked(t, q.mcAddr, acked)
}

func TestSIGKILLKeepsAcknowledgedWrites(t *testing.T) {
	p := startNode(t, "")
	acked := loadUntilSignal(t, p, syscall.SIGKILL, 2000)
	t.Logf("%d keys acknowledged before SIGKILL", len(acked))
	q := startNode(t, p.dataDir)
	checkAcked(t, q.mcAddr, acked)
}

func TestRestartRefusesDifferentQ(t *testing.T) {
	p := startNode(t, "")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, err := tool(t, gokaiBinary(t), "start", "-data-dir", p.dataDir, "-memcache-listen", "127.0.0.1:0", "-rpc-listen", "127.0.0.1:0",
		"-gossip-listen", "127.0.0.1:0", "-transport-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0", "-q", "128")
	if err == nil || !strings.Contains(out, "q=64") {
		t.Fatalf("start with another q: err=%v\n%s", err, out)
	}
}
