package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestMemoryOneDBVsPerPartition measures what one goleveldb DB per partition
// would cost against gokai's one DB per node (the numbers quoted in doc.go):
//
//	GOKAI_MEASURE=1 go test -run TestMemoryOneDBVsPerPartition -v ./storage/
//
// Each configuration runs in a fresh child process (this test binary), so
// that RSS starts from the same baseline. A child opens the DBs with the
// default config, records heap, RSS, goroutines and open files, then writes
// the same data to both layouts (fillMiB per partition, 4 KiB values spread
// round-robin over the partitions) and records again.
func TestMemoryOneDBVsPerPartition(t *testing.T) {
	if os.Getenv("GOKAI_MEASURE") != "1" {
		t.Skip("set GOKAI_MEASURE=1 to measure (about 10 s, writes ~130 MB to a temp dir)")
	}
	const partitions, fillMiB = 64, 2
	run := func(dbs int) measurement {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestMeasureChild$", "-test.v")
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("GOKAI_MEASURE_CHILD=%d,%d,%d,%s", dbs, partitions, fillMiB, t.TempDir()))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child (%d DBs): %v\n%s", dbs, err, out)
		}
		for line := range strings.Lines(string(out)) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "MEASURE "); ok {
				var m measurement
				if err := json.Unmarshal([]byte(rest), &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
		t.Fatalf("child (%d DBs) printed no MEASURE line:\n%s", dbs, out)
		return measurement{}
	}
	per, one := run(partitions), run(1)
	t.Logf("%d partitions, defaults (4 MiB write buffer, 8 MiB block cache), %s, %d CPUs", partitions, runtime.Version(), runtime.NumCPU())
	t.Logf("%-30s %14s %14s %10s %8s", "layout / phase", "heap in use Δ", "RSS Δ", "goroutines", "fds")
	for _, r := range []struct {
		name string
		m    measurement
	}{{fmt.Sprintf("%d DBs", partitions), per}, {"1 DB (prefixed keys)", one}} {
		t.Logf("%-30s %11.1f MiB %11.1f MiB %10d %8d", r.name+" / open", mib(r.m.Open.HeapInuse-r.m.Base.HeapInuse), mib(r.m.Open.RSS-r.m.Base.RSS), r.m.Open.Goroutines-r.m.Base.Goroutines, r.m.Open.FDs-r.m.Base.FDs)
		t.Logf("%-30s %11.1f MiB %11.1f MiB %10d %8d", r.name+" / filled", mib(r.m.Filled.HeapInuse-r.m.Base.HeapInuse), mib(r.m.Filled.RSS-r.m.Base.RSS), r.m.Filled.Goroutines-r.m.Base.Goroutines, r.m.Filled.FDs-r.m.Base.FDs)
	}
}

type sample struct {
	HeapInuse, RSS  int64 // bytes
	Goroutines, FDs int
}

type measurement struct{ Base, Open, Filled sample }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestMeasureChild is the child half of TestMemoryOneDBVsPerPartition.
func TestMeasureChild(t *testing.T) {
	spec := os.Getenv("GOKAI_MEASURE_CHILD")
	if spec == "" {
		t.Skip("run by TestMemoryOneDBVsPerPartition")
	}
	f := strings.SplitN(spec, ",", 4)
	dbs, _ := strconv.Atoi(f[0])
	partitions, _ := strconv.Atoi(f[1])
	fillMiB, _ := strconv.Atoi(f[2])
	dir := f[3]

	var m measurement
	m.Base = takeSample(t)
	backends := make([]*LevelDB, dbs)
	for i := range backends {
		l, err := OpenLevelDB(DefaultLevelDBConfig(filepath.Join(dir, fmt.Sprint(i))))
		if err != nil {
			t.Fatal(err)
		}
		backends[i] = l
	}
	m.Open = takeSample(t)

	value := bytes.Repeat([]byte{'v'}, 4096)
	perPartition := fillMiB << 20 / len(value)
	var key []byte
	for i := range perPartition {
		for p := range partitions {
			key = fmt.Appendf(key[:0], "key-%08d", i)
			if err := backends[p%dbs].Put(uint32(p), key, value); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.Filled = takeSample(t)

	for _, l := range backends {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := json.Marshal(m)
	fmt.Printf("MEASURE %s\n", out)
}

func takeSample(t *testing.T) sample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{HeapInuse: int64(ms.HeapInuse), Goroutines: runtime.NumGoroutine()}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.FDs = len(ents)
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Logf("no RSS: %v", err)
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			s.RSS = kb << 10
		}
	}
	return s
}
