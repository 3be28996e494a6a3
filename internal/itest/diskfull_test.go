package itest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// mountTmpfs mounts a tmpfs of sizeMiB on a new directory and unmounts it when the test ends (after the
// cleanups registered later, such as the node's). It skips the test, saying why, when that is not possible.
func mountTmpfs(t *testing.T, sizeMiB int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs for the data dir")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMiB), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// diskValue is the value written under key i: 64 KiB that do not compress, distinct per key, so a read that
// returns another key's value is caught.
func diskValue(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	b := make([]byte, 64<<10)
	for j := 0; j < len(b); j += 8 {
		binary.LittleEndian.PutUint64(b[j:], r.Uint64())
	}
	return b
}

// TestDiskFullIsAStateNotALatch: a node whose data dir is on a 64 MiB tmpfs is written to until the disk
// is full, recording every acknowledged key. While it is full, writes fail with disk_full (msgpack-RPC) and
// "SERVER_ERROR out of space" (memcache), naming no path, and reads work. Once a filler file placed on the
// same tmpfs beforehand is deleted, writes come back by themselves, without a restart, and every
// acknowledged key reads back with its value. /readyz is 503 (storage not writable) while the disk is full
// and 200 once writes came back.
func TestDiskFullIsAStateNotALatch(t *testing.T) {
	mnt := mountTmpfs(t, 64)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startNode(t, filepath.Join(mnt, "data"), "-write-buffer-mib", "1")
	pid := p.cmd.Process.Pid
	c := newRPCClient(t, p.rpcAddr, client.Config{})
	ctx := context.Background()
	blind := &client.WriteOptions{Blind: true}

	// Fill the disk.
	acked := map[int]bool{}
	var fullErr error
	for i := 0; fullErr == nil; i++ {
		if i > 10000 {
			t.Fatal("10000 writes of 64 KiB on a 64 MiB tmpfs and the disk is not full")
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Put(cctx, []byte(fmt.Sprintf("key-%06d", i)), diskValue(i), nil, blind)
		cancel()
		switch {
		case err == nil:
			acked[i] = true
		case errors.Is(err, client.ErrDiskFull):
			fullErr = err
		case errors.Is(err, client.ErrQuorum):
			// NB: the coordinating replica stored it, the others found the disk full: not acknowledged.
		default:
			t.Fatalf("put %d: %v", i, err)
		}
	}
	t.Logf("disk full after %d acknowledged writes: %v", len(acked), fullErr)
	if len(acked) < 50 {
		t.Fatalf("only %d writes before the disk was full", len(acked))
	}

	// Full: writes fail with the right code on both faces, naming no path; reads work.
	check := func(what string, err error) {
		t.Helper()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != client.CodeDiskFull {
			t.Fatalf("%s while the disk is full: %v, want disk_full", what, err)
		}
		if strings.Contains(ce.Message, mnt) || strings.Contains(ce.Message, "/") {
			t.Fatalf("%s: the error names a path: %q", what, ce.Message)
		}
	}
	_, err := c.Put(ctx, []byte("more"), []byte("x"), nil, blind)
	check("put", err)
	check("delete", c.Delete(ctx, []byte("key-000000"), nil, blind))
	m := dialMC(t, p.mcAddr)
	if got := m.do("set more 0 0 1\r\nx\r\n"); got != "SERVER_ERROR out of space\r\n" {
		t.Fatalf("memcache set while the disk is full: %q", got)
	}
	if got := m.do("delete key-000001\r\n"); got != "SERVER_ERROR out of space\r\n" {
		t.Fatalf("memcache delete while the disk is full: %q", got)
	}
	for i := range acked {
		got, err := c.Get(ctx, []byte(fmt.Sprintf("key-%06d", i)), nil)
		if err != nil || len(got.Values) != 1 || !bytes.Equal(got.Values[0].Data, diskValue(i)) {
			t.Fatalf("read of acknowledged key %d while the disk is full: %v", i, err)
		}
	}
	if got := m.do("get key-000002\r\n", "END"); !strings.HasPrefix(got, "VALUE key-000002 0 ") {
		t.Fatalf("memcache get while the disk is full: %.80q", got)
	}
	if st := nodeStats(t, c); st.String("gokai_disk_full") != "1" {
		t.Fatalf("gokai_disk_full = %q while the disk is full", st.String("gokai_disk_full"))
	}
	if code, body := readyz(t, p.httpAddr); code != 503 || !strings.HasPrefix(body, "storage not writable") || strings.Contains(body, "/") {
		t.Fatalf("/readyz while the disk is full: %d %q, want 503 storage not writable (naming no path)", code, body)
	}

	// Free space: writes come back by themselves.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var recovered time.Duration
	for {
		_, err := c.Put(ctx, []byte("after"), []byte("space is back"), nil, blind)
		if err == nil {
			recovered = time.Since(freed)
			break
		}
		if !errors.Is(err, client.ErrDiskFull) {
			t.Fatalf("put after freeing space: %v", err)
		}
		if time.Since(freed) > 30*time.Second {
			t.Fatal("writes still fail 30 s after space was freed")
		}
		time.Sleep(50 * time.Millisecond) // NB: polling interval
	}
	t.Logf("writes resumed %v after space was freed; the node was not restarted (pid %d)", recovered.Round(time.Millisecond), pid)
	if p.cmd.Process.Pid != pid || p.exitErr != nil {
		t.Fatal("the node process changed")
	}
	select {
	case <-p.exited:
		t.Fatalf("the node exited: %v", p.exitErr)
	default:
	}
	if got := m.do("set more 0 0 1\r\nx\r\n"); got != "STORED\r\n" {
		t.Fatalf("memcache set after recovery: %q", got)
	}
	checkAcked := func(c *client.Client, when string) {
		t.Helper()
		for i := range acked {
			got, err := c.Get(ctx, []byte(fmt.Sprintf("key-%06d", i)), nil)
			if err != nil || len(got.Values) != 1 || !bytes.Equal(got.Values[0].Data, diskValue(i)) {
				t.Fatalf("acknowledged key %d %s: %v", i, when, err)
			}
		}
	}
	checkAcked(c, "after recovery")
	// NB: the data dir probe caches its result for a second: poll.
	eventually.NoError(t, 10*time.Second, "/readyz is 200 again", func() error {
		if code, body := readyz(t, p.httpAddr); code != 200 {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	st := nodeStats(t, c)
	if st.String("gokai_disk_full") != "0" || st.String("gokai_disk_full_recoveries") == "0" {
		t.Fatalf("after recovery: gokai_disk_full %q, recoveries %q", st.String("gokai_disk_full"),
			st.String("gokai_disk_full_recoveries"))
	}
	// And on disk: a restarted node finds every acknowledged key.
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v", err)
	}
	q := startNode(t, p.dataDir, "-write-buffer-mib", "1")
	checkAcked(newRPCClient(t, q.rpcAddr, client.Config{}), "after a restart")
}

// readyz asks a node's HTTP listener for /readyz.
func readyz(t *testing.T, httpAddr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return res.StatusCode, string(b)
}

// nodeStats asks a node for its stats.
func nodeStats(t *testing.T, c *client.Client) client.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}
