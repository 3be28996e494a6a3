package faults

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// op builds a history entry for the table tests: outcome and whether the write was sent.
func op(kind Kind, node, key, elem string, o Outcome, sent bool) Op {
	return Op{Client: "c", Node: node, Kind: kind, Key: key, Elem: elem, Outcome: o, Sent: sent, Answered: o == OK,
		Invoke: t0, Complete: t0}
}

func get(source, key string, values ...string) FinalRead {
	f := FinalRead{Source: source, Key: key}
	for _, v := range values {
		f.Values = append(f.Values, []byte(v))
	}
	return f
}

func refs(rs []ElemRef) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Key+"/"+r.Elem)
	}
	return out
}

func TestCheckSets(t *testing.T) {
	tests := []struct {
		name       string
		ops        []Op
		finals     []FinalRead
		lost       []string
		unexpected []string
		stale      []string // source key missing
		acked      int
		indetIn    int
	}{
		{
			name: "all acknowledged present in siblings",
			ops: []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true), op(RPCReadModifyWrite, "n2", "k", "b", OK, true),
				op(RPCReadModifyWrite, "n3", "k", "c", OK, true)},
			finals: []FinalRead{get("get@n1", "k", "a b", "b c"), get("get@n2", "k", "a b c")},
			acked:  3,
		},
		{
			name:   "an acknowledged element in no read is lost",
			ops:    []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true), op(RPCReadModifyWrite, "n2", "k", "b", OK, true)},
			finals: []FinalRead{get("get@n1", "k", "a"), get("get@n2", "k", "a")},
			lost:   []string{"k/b"},
			acked:  2,
		},
		{
			name:   "a key never found loses everything acknowledged",
			ops:    []Op{op(MemcacheCas, "n1", "k", "a", OK, true)},
			finals: []FinalRead{get("get@n1", "k")},
			lost:   []string{"k/a"},
			acked:  1,
		},
		{
			name: "indeterminate and failed elements may be absent; present indeterminate ones are counted",
			ops: []Op{op(RPCReadModifyWrite, "n1", "k", "a", Indeterminate, true), op(RPCReadModifyWrite, "n1", "k", "b", Indeterminate, true),
				op(RPCReadModifyWrite, "n1", "k", "c", Fail, false)},
			finals:  []FinalRead{get("get@n1", "k", "a")},
			indetIn: 1,
		},
		{
			name:       "an element never written is unexpected",
			ops:        []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true)},
			finals:     []FinalRead{get("get@n1", "k", "a zz")},
			unexpected: []string{"k/zz"},
			acked:      1,
		},
		{
			name:       "an element whose write was never sent is unexpected",
			ops:        []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true), op(MemcacheCas, "n1", "k", "b", Fail, false)},
			finals:     []FinalRead{get("get@n1", "k", "a b")},
			unexpected: []string{"k/b"},
			acked:      1,
		},
		{
			name:       "an element whose write the server refused is unexpected",
			ops:        []Op{op(MemcacheCas, "n1", "k", "a", OK, true), op(MemcacheCas, "n2", "k", "b", Fail, true)},
			finals:     []FinalRead{get("get@n1", "k", "a b")},
			unexpected: []string{"k/b"},
			acked:      1,
		},
		{
			name:   "a node whose read misses an acknowledged element is stale, not lost",
			ops:    []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true), op(RPCReadModifyWrite, "n1", "k", "b", OK, true)},
			finals: []FinalRead{get("get@n1", "k", "a b"), get("get@n2", "k", "a"), get("replica n3/p1", "k")},
			stale:  []string{"get@n2 k 1", "replica n3/p1 k 2"},
			acked:  2,
		},
		{
			name:   "a failed read counts for nothing",
			ops:    []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true)},
			finals: []FinalRead{{Source: "get@n2", Key: "k", Err: "timeout"}},
			lost:   []string{"k/a"},
			acked:  1,
		},
		{
			name: "add race: every STORED value must be a sibling",
			ops: []Op{op(MemcacheAdd, "n1", "r1", "x1", OK, true), op(MemcacheAdd, "n2", "r1", "y1", OK, true),
				op(MemcacheAdd, "n1", "r2", "x2", OK, true), op(MemcacheAdd, "n2", "r2", "y2", Fail, true)},
			finals: []FinalRead{get("get@n1", "r1", "y1"), get("get@n1", "r2", "x2")},
			lost:   []string{"r1/x1"},
			acked:  3,
		},
		{
			name:   "blind sets and unknown keys are ignored",
			ops:    []Op{op(MemcacheSet, "n1", "s", "v1", OK, true), op(RPCReadModifyWrite, "n1", "k", "a", OK, true)},
			finals: []FinalRead{get("get@n1", "s", "v9"), get("get@n1", "k", "a"), get("get@n1", "other", "q")},
			acked:  1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckSets(tc.ops, tc.finals)
			if got := refs(r.Lost); !reflect.DeepEqual(got, tc.lost) {
				t.Errorf("lost %v, want %v", got, tc.lost)
			}
			if got := refs(r.Unexpected); !reflect.DeepEqual(got, tc.unexpected) {
				t.Errorf("unexpected %v, want %v", got, tc.unexpected)
			}
			var stale []string
			for _, s := range r.Stale {
				stale = append(stale, fmt.Sprintf("%s %s %d", s.Source, s.Key, s.Missing))
			}
			if !reflect.DeepEqual(stale, tc.stale) {
				t.Errorf("stale %v, want %v", stale, tc.stale)
			}
			if r.Acked != tc.acked || r.IndeterminatePresent != tc.indetIn {
				t.Errorf("acked %d, indeterminate present %d; want %d, %d", r.Acked, r.IndeterminatePresent, tc.acked, tc.indetIn)
			}
		})
	}
}

func TestCheckSetsBlindWrites(t *testing.T) {
	a := op(RPCReadModifyWrite, "n1", "k", "a", OK, true)
	a.Blind = true
	b := op(RPCReadModifyWrite, "n2", "k", "b", OK, true)
	r := CheckSets([]Op{a, b}, []FinalRead{get("get@n1", "k", "b")})
	if r.BlindWrites["k"] != 1 || !strings.Contains(r.LostByKey(), "1 lost on 1 keys, 1 of those keys had context-less writes (k: 1 lost, 1 context-less writes)") {
		t.Fatalf("blind writes %v, lost by key %q", r.BlindWrites, r.LostByKey())
	}
}

func TestDifferingKeys(t *testing.T) {
	rep := func(key, node string, ctx string, values ...string) ReplicaRead {
		r := ReplicaRead{Key: key, Node: node, Found: len(values) > 0, Context: []byte(ctx)}
		for _, v := range values {
			r.Values = append(r.Values, []byte(v))
		}
		return r
	}
	tests := []struct {
		name  string
		reads []ReplicaRead
		want  []string
	}{
		{"identical, siblings in another order", []ReplicaRead{rep("k", "n1", "c1", "a", "b"), rep("k", "n2", "c1", "b", "a"), rep("k", "n3", "c1", "a", "b")}, nil},
		{"one replica misses a sibling", []ReplicaRead{rep("k", "n1", "c1", "a", "b"), rep("k", "n2", "c1", "a")}, []string{"k"}},
		{"same values, other context", []ReplicaRead{rep("k", "n1", "c1", "a"), rep("k", "n2", "c2", "a")}, []string{"k"}},
		{"one replica not found", []ReplicaRead{rep("k", "n1", "c1", "a"), rep("k", "n2", "")}, []string{"k"}},
		{"all not found", []ReplicaRead{rep("k", "n1", ""), rep("k", "n2", "")}, nil},
		{"a failed read differs", []ReplicaRead{rep("k", "n1", "c1", "a"), {Key: "k", Node: "n2", Err: "timeout"}}, []string{"k"}},
		{"duplicate values are a multiset", []ReplicaRead{rep("k", "n1", "c", "a", "a"), rep("k", "n2", "c", "a", "b")}, []string{"k"}},
		{"keys apart", []ReplicaRead{rep("a", "n1", "c", "x"), rep("b", "n1", "c", "y"), rep("b", "n2", "c", "z"), rep("a", "n2", "c", "x")}, []string{"b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DifferingKeys(tc.reads); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DifferingKeys = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAvailability(t *testing.T) {
	at := func(o Op, sec int, answered bool) Op {
		o.Invoke = t0.Add(time.Duration(sec) * time.Second)
		o.Answered = answered
		return o
	}
	ops := []Op{
		at(op(RPCReadModifyWrite, "n1", "k", "1", OK, true), 1, true),             // before the window
		at(op(RPCReadModifyWrite, "n1", "k", "2", OK, true), 5, true),             // A
		at(op(MemcacheCas, "n2", "k", "3", Fail, false), 6, true),                 // A: cas EXISTS, answered
		at(op(RPCReadModifyWrite, "n2", "k", "4", Indeterminate, true), 7, false), // A
		at(op(RPCReadModifyWrite, "n3", "k", "5", Fail, false), 8, false),         // B
		at(op(RPCReadModifyWrite, "n3", "k", "6", OK, true), 9, true),             // B
		at(op(RPCReadModifyWrite, "n3", "k", "7", OK, true), 10, true),            // at the end: excluded
		at(op(RPCReadModifyWrite, "n4", "k", "8", OK, true), 6, true),             // no side
	}
	got := Availability(ops, []Side{{"A", []string{"n1", "n2"}}, {"B", []string{"n3"}}, {"C", []string{"n9"}}},
		t0.Add(5*time.Second), t0.Add(10*time.Second))
	want := []Avail{{Side: "A", Ops: 3, OK: 1, Fail: 1, Indet: 1, Answered: 2}, {Side: "B", Ops: 2, OK: 1, Fail: 1, Answered: 1}, {Side: "C"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Availability = %+v, want %+v", got, want)
	}
	if r := got[0].Ratio(); r < 0.66 || r > 0.67 {
		t.Fatalf("ratio %v, want 2/3", r)
	}
	if got[2].Ratio() != 1 || got[2].Ops != 0 {
		t.Fatalf("empty side: %+v", got[2])
	}
}

func TestCountByKind(t *testing.T) {
	ops := []Op{op(RPCReadModifyWrite, "n1", "k", "a", OK, true), op(MemcacheSet, "n1", "s", "v", Indeterminate, true),
		op(RPCReadModifyWrite, "n1", "k", "b", Fail, false), op(RPCReadModifyWrite, "n1", "k", "c", Indeterminate, true)}
	want := []Counts{{Kind: RPCReadModifyWrite, Ops: 3, OK: 1, Fail: 1, Indeterminate: 1}, {Kind: MemcacheSet, Ops: 1, Indeterminate: 1}}
	if got := CountByKind(ops); !reflect.DeepEqual(got, want) {
		t.Fatalf("CountByKind = %+v, want %+v", got, want)
	}
}

func TestClassifyRPCWrite(t *testing.T) {
	tests := []struct {
		err      error
		want     Outcome
		answered bool
	}{
		{nil, OK, true},
		{&client.Error{Code: client.CodeTimeout}, Indeterminate, false},
		{&client.Error{Code: client.CodeQuorumFailed, Need: 2, Got: 1}, Indeterminate, false},
		{&client.Error{Code: client.CodeInternal}, Indeterminate, false},
		{&client.Error{Code: client.CodeShuttingDown}, Indeterminate, false},
		{&client.Error{Code: client.CodeOverload}, Fail, false},
		{&client.Error{Code: client.CodeBadRequest}, Fail, false},
		{fmt.Errorf("%w: %w", client.ErrUnavailable, &DialError{Addr: "a", Err: errors.New("refused")}), Fail, false},
		{fmt.Errorf("%w: read: broken pipe", client.ErrUnavailable), Indeterminate, false},
		{context.DeadlineExceeded, Indeterminate, false},
	}
	for _, tc := range tests {
		o, a := ClassifyRPCWrite(tc.err)
		if o != tc.want || a != tc.answered {
			t.Errorf("ClassifyRPCWrite(%v) = %v, %v; want %v, %v", tc.err, o, a, tc.want, tc.answered)
		}
	}
}

func TestClassifyMemcacheStore(t *testing.T) {
	tests := []struct {
		reply    string
		err      error
		want     Outcome
		answered bool
	}{
		{"STORED", nil, OK, true},
		{"EXISTS", nil, Fail, true},
		{"NOT_FOUND", nil, Fail, true},
		{"NOT_STORED", nil, Fail, true},
		{"CLIENT_ERROR bad data chunk", nil, Fail, false},
		{"ERROR", nil, Fail, false},
		{"SERVER_ERROR coordinator: quorum failed", nil, Indeterminate, false},
		{"", errors.New("i/o timeout"), Indeterminate, false},
		{"", &DialError{Addr: "a", Err: errors.New("refused")}, Fail, false},
	}
	for _, tc := range tests {
		o, a := ClassifyMemcacheStore(tc.reply, tc.err)
		if o != tc.want || a != tc.answered {
			t.Errorf("ClassifyMemcacheStore(%q, %v) = %v, %v; want %v, %v", tc.reply, tc.err, o, a, tc.want, tc.answered)
		}
	}
}

func TestSetEncoding(t *testing.T) {
	v := EncodeSet([]string{"c", "a", "b", "a"})
	if string(v) != "a b c" {
		t.Fatalf("EncodeSet = %q", v)
	}
	if got := UnionValues([][]byte{[]byte("a c"), []byte("b c"), nil, []byte("")}); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("UnionValues = %v", got)
	}
	if got := DecodeSet(nil); len(got) != 0 {
		t.Fatalf("DecodeSet(nil) = %v", got)
	}
}

func TestPartitionPeers(t *testing.T) {
	tests := []struct {
		groups [][]int
		want   map[int][]int
	}{
		{[][]int{{1, 2}, {3}}, map[int][]int{1: {3}, 2: {3}, 3: {1, 2}}},
		{[][]int{{1}, {2}, {3}}, map[int][]int{1: {2, 3}, 2: {1, 3}, 3: {1, 2}}},
		{[][]int{{1, 2, 4}, {3}}, map[int][]int{1: {3}, 2: {3}, 3: {1, 2, 4}, 4: {3}}},
		{[][]int{{1, 2}}, map[int][]int{1: nil, 2: nil}},
	}
	for _, tc := range tests {
		if got := PartitionPeers(tc.groups); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PartitionPeers(%v) = %v, want %v", tc.groups, got, tc.want)
		}
	}
}

func TestFaultRules(t *testing.T) {
	got := faultRules("10.200.7.254", []string{"10.200.7.1", "10.200.7.2"})
	for _, want := range []string{
		"add table inet gokai_faults\ndelete table inet gokai_faults\n",
		"type filter hook input priority filter; policy accept;",
		"ip saddr 10.200.7.254 accept\n\t\tip saddr { 10.200.7.1, 10.200.7.2 } drop",
		"ip daddr 10.200.7.254 accept\n\t\tip daddr { 10.200.7.1, 10.200.7.2 } drop",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if heal := faultRules("", nil); heal != "add table inet gokai_faults\ndelete table inet gokai_faults\n" {
		t.Errorf("heal rules %q", heal)
	}
}
