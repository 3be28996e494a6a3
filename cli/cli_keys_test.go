package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

// TestCLIKeys: `gokai keys` lists every live key once (a deleted one never, a binary one as hex), with a
// prefix, up to --max, counts with --count, and ends its stderr progress line with every partition done.
func TestCLIKeys(t *testing.T) {
	addr := startCLINode(t)
	t.Setenv("GOKAI_ADDR", addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(ctx, client.Config{Seeds: []string{addr}, DisableRouting: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want, users []string
	for i := range 2500 {
		k := fmt.Sprintf("user:%05d", i)
		if i%2 == 1 {
			k = fmt.Sprintf("item:%05d", i)
		}
		if _, err := c.Put(ctx, []byte(k), []byte("v"), nil, &client.WriteOptions{Blind: true}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 3 {
			if err := c.Delete(ctx, []byte(k), nil, nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, k)
		if strings.HasPrefix(k, "user:") {
			users = append(users, k)
		}
	}
	if _, err := c.Put(ctx, []byte("bin\x00\xff"), []byte("v"), nil, &client.WriteOptions{Blind: true}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "0x62696e00ff")
	slices.Sort(want)
	lines := func(s string) []string {
		out := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		slices.Sort(out)
		return out
	}

	out, errs, code := runCLI(t, "keys")
	if code != 0 || !slices.Equal(lines(out), want) {
		t.Fatalf("keys: code %d, %d lines, want %d; stderr %q", code, len(lines(out)), len(want), errs)
	}
	if !regexpMatch(fmt.Sprintf(`\rkeys: %d, partitions: 16/16\n$`, len(want)), errs) {
		t.Fatalf("keys: progress %q", errs)
	}
	if out, errs, code := runCLI(t, "keys", "--prefix", "user:"); code != 0 || !slices.Equal(lines(out), users) {
		t.Fatalf("keys --prefix: code %d, %d lines, want %d; %s", code, len(lines(out)), len(users), errs)
	}
	out, _, code = runCLI(t, "keys", "--max", "1500")
	if got := lines(out); code != 0 || len(got) != 1500 || len(slices.Compact(got)) != 1500 {
		t.Fatalf("keys --max 1500: code %d, %d lines", code, len(got))
	}
	if out, errs, code := runCLI(t, "keys", "--count"); code != 0 || out != fmt.Sprintf("%d\n", len(want)) {
		t.Fatalf("keys --count: %d %q %s", code, out, errs)
	}
	if out, _, code := runCLI(t, "keys", "--count", "--prefix", "user:", "--json"); code != 0 || out != fmt.Sprintf("{\"count\":%d}\n", len(users)) {
		t.Fatalf("keys --count --json: %d %q", code, out)
	}
	out, _, _ = runCLI(t, "keys", "--prefix", "bin", "--json")
	var line struct {
		Key    *string `json:"key"`
		KeyHex string  `json:"key_hex"`
	}
	if err := json.Unmarshal([]byte(out), &line); err != nil || line.Key != nil || line.KeyHex != "62696e00ff" {
		t.Fatalf("keys --json: %v %q", err, out)
	}
	if _, _, code := runCLI(t, "keys", "extra"); code != exitUsage {
		t.Fatalf("keys extra: code %d", code)
	}
}
