package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestCLIAAEStatus: `gokai aae status` shows every partition's hash trees and exchange state.
func TestCLIAAEStatus(t *testing.T) {
	addr := startCLINode(t)
	t.Setenv("GOKAI_ADDR", addr)
	if out, errs, code := runCLI(t, "put", "k", "v"); code != 0 {
		t.Fatalf("put: %d %q %s", code, out, errs)
	}
	var st aaeStatusReply
	eventually.True(t, 10*time.Second, "every partition's trees built", func() bool {
		out, errs, code := runCLI(t, "aae", "status", "--json")
		if code != 0 {
			t.Fatalf("aae status --json: %d %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("aae status --json: %v\n%s", err, out)
		}
		built := 0
		for _, r := range st.Partitions {
			if r.Tree == "built" {
				built++
			}
		}
		return built == 16
	})
	var items int64
	for _, r := range st.Partitions {
		items += r.Items
	}
	if st.Mode != "on" || len(st.Partitions) != 16 || items != 3 {
		t.Fatalf("aae status: mode %q, %d partitions, %d items (want on, 16, the key's 3 replicas)", st.Mode, len(st.Partitions), items)
	}
	out, errs, code := runCLI(t, "aae", "status")
	if code != 0 || !regexpMatch(`(?m)^anti-entropy on, exchange period 10m0s: \d+ exchanges, \d+ keys repaired, \d+ running$`, out) ||
		!regexpMatch(`(?m)^SERVICE +PARTITION +TREE +ITEMS +EXCHANGES +LAST EXCHANGE +REPAIRED +NEXT EXCHANGE +LAST RESULT$`, out) ||
		!regexpMatch(`(?m)^kv +0 +built +\d+ +\d+ `, out) {
		t.Fatalf("aae status: %d %s\n%s", code, errs, out)
	}
	out, _, _ = runCLI(t, "status", "--json")
	var stats struct {
		Stats map[string]any `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gokai_aae_exchanges", "gokai_aae_keys_repaired", "gokai_aae_repair_errors", "gokai_aae_tree_rebuilds"} {
		if _, ok := stats.Stats[name]; !ok {
			t.Errorf("stats lack %s", name)
		}
	}
	for _, args := range [][]string{{"aae"}, {"aae", "bogus"}, {"aae", "status", "extra"}} {
		if _, _, code := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", args, code, exitUsage)
		}
	}
}
