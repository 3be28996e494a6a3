package membership

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gokai-kv/gokai/ring"
)

// pendingState returns a 3-node state with a staged join and transfers
// pending (every field in use).
func pendingState(t testing.TB) *ClusterState {
	s := must(t)(NewClusterState("c1", mem("a"), 8, 2))
	s = must(t)(s.StageJoin(mem("b")))
	s = must(t)(s.StageJoin(mem("c")))
	s = must(t)(s.Commit())
	tr := s.Transfers[0]
	s = must(t)(s.CompleteTransfer(tr.Partition, tr.From, tr.To))
	return must(t)(s.StageJoin(mem("d")))
}

// stateFields decodes an encoded state into generic msgpack values.
func stateFields(t testing.TB, s *ClusterState) map[string]any {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// encodeFields encodes generic msgpack values.
func encodeFields(t testing.TB, m map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestClusterStateRoundTrip(t *testing.T) {
	for _, s := range []*ClusterState{newState(t, 1, 1), newState(t, 64, 3), pendingState(t)} {
		checkState(t, s)
	}
	// Sizes: a 64-partition ring of 5 nodes with transfers pending, and the
	// largest ring.
	s := must(t)(NewClusterState("a-cluster-id-0123456789", mem("node-a.example.com"), 64, 3))
	for _, n := range []string{"node-b.example.com", "node-c.example.com", "node-d.example.com", "node-e.example.com"} {
		s = must(t)(s.StageJoin(mem(n)))
	}
	s = must(t)(s.Commit())
	b, _ := s.MarshalBinary()
	t.Logf("q=64, 5 nodes, %d transfers pending: %d bytes", len(s.Transfers), len(b))
	if len(b) > 4096 {
		t.Fatalf("state of %d bytes: the contract says a few KB for 64 partitions", len(b))
	}
	if testing.Short() {
		return
	}
	big := must(t)(NewClusterState("c", mem("a"), ring.MaxPartitions, 3))
	big = must(t)(big.StageJoin(mem("b")))
	big = must(t)(big.Commit())
	checkState(t, big)
	b, _ = big.MarshalBinary()
	t.Logf("q=%d, 2 nodes, %d transfers pending: %d bytes", ring.MaxPartitions, len(big.Transfers), len(b))
}

func TestUnmarshalClusterStateErrors(t *testing.T) {
	good := stateFields(t, pendingState(t))
	with := func(k string, v any) []byte {
		m := stateFields(t, pendingState(t))
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return encodeFields(t, m)
	}
	members := good["members"].([]any)
	member := func(i int, k string, v any) []any {
		out := make([]any, len(members))
		for j, m := range members {
			c := map[string]any{}
			for kk, vv := range m.(map[string]any) {
				c[kk] = vv
			}
			if j == i {
				c[k] = v
			}
			out[j] = c
		}
		return out
	}
	valid, _ := pendingState(t).MarshalBinary()
	transfer := good["transfers"].([]any)[0].([]any) // [partition, from, to, state]
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"array32 of 4G", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"map32 of 4G", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"bin32 of 4G", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}},
		{"deep nesting", bytes.Repeat([]byte{0x91}, 100)},
		{"reserved byte", []byte{0xc1}},
		{"truncated", valid[:len(valid)-1]},
		{"trailing bytes", append(bytes.Clone(valid), 0xc0)},
		{"too large", make([]byte, MaxStateBytes+1)},
		{"not a map", []byte{0x93, 1, 2, 3}},
		{"format 2", with("format", 2)},
		{"no format", with("format", nil)},
		{"version 0", with("version", 0)},
		{"version a string", with("version", "1")},
		{"empty cluster", with("cluster", "")},
		{"n 0", with("n", 0)},
		{"claimant not a member", with("claimant", "zz")},
		{"claimant joining", with("claimant", "d")},
		{"no members", with("members", []any{})},
		{"members unsorted", with("members", []any{members[1], members[0], members[2], members[3]})},
		{"member status unknown", with("members", member(0, "status", "resting"))},
		{"member name empty", with("members", member(0, "name", ""))},
		{"owners not a power of two", with("owners", []any{0, 1, 2})},
		{"owner index out of range", with("owners", []any{0, 1, 2, 9, 0, 1, 2, 0})},
		{"joining member owns", with("owners", []any{3, 3, 3, 3, 3, 3, 3, 3})},
		{"staged change missing", with("staged", nil)},
		{"staged change of a valid member", with("staged", []any{[]any{"join", "a"}})},
		{"staged kind unknown", with("staged", []any{[]any{"rejoin", "d"}})},
		{"transfer partition out of range", with("transfers", []any{[]any{8, transfer[1], transfer[2], "waiting"}})},
		{"transfer member index out of range", with("transfers", []any{[]any{transfer[0], 7, transfer[2], "waiting"}})},
		{"transfer to itself", with("transfers", []any{[]any{transfer[0], transfer[1], transfer[1], "waiting"}})},
		{"transfer state unknown", with("transfers", []any{[]any{transfer[0], transfer[1], transfer[2], "paused"}})},
		{"transfer owner mismatch", with("transfers", []any{[]any{transfer[0], transfer[1], transfer[2], "waiting"}})}, // done
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := UnmarshalClusterState(tc.b)
			if s != nil || !errors.Is(err, ErrMalformedState) {
				t.Fatalf("got %v, %v; want ErrMalformedState", s, err)
			}
		})
	}
	// Unknown fields are ignored (a newer node may add some).
	m := stateFields(t, pendingState(t))
	m["zz-future"] = []any{1, "x"}
	s, err := UnmarshalClusterState(encodeFields(t, m))
	if err != nil || !reflect.DeepEqual(s, pendingState(t)) {
		t.Fatalf("unknown field: %v", err)
	}
}

func FuzzUnmarshalClusterState(f *testing.F) {
	for _, s := range []*ClusterState{newState(f, 1, 1), newState(f, 8, 3), pendingState(f)} {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x91}, 64))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalClusterState(b)
		if err != nil {
			if s != nil || !errors.Is(err, ErrMalformedState) {
				t.Fatalf("error %v with state %v", err, s)
			}
			return
		}
		// Whatever decodes is valid and re-encodes to the same state.
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		b2, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := UnmarshalClusterState(b2)
		if err != nil || !reflect.DeepEqual(s, s2) || s.Hash() != s2.Hash() {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeStateVersion(f *testing.F) {
	f.Add(encodeStateVersion(msgStateVersion, stateVersion{Cluster: "c", Version: 9, Hash: 1 << 63, From: "a"})[1:])
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x95, 0x01, 0xa1, 'c', 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeStateVersion(b)
		if err != nil {
			return
		}
		got, err := decodeStateVersion(encodeStateVersion(msgStateVersion, v)[1:])
		if err != nil || got != v {
			t.Fatalf("round trip: %+v %+v %v", v, got, err)
		}
	})
}
