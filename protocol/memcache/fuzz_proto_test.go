package memcache

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

var metaSeeds = []string{
	"mn", "mg a", "mg a s v t c f k h l u q Oabc", "mg a N30 R10 T5 v", "mg Zm9v b k v", "mg a P/x Lp",
	"ms a 2", "ms a 2 T10 F5 C7 MA I q k c O1", "ms a 2 ME", "ms a 2 MZ", "ms a", "ms a -1", "ms a 1048577",
	"md a q C5 I T30 k O2", "ma a N0 J13 D30 MD v t c", "ma a M+", "me a", "me Zm9v b", "mg a v v",
	"mg a Nx", "mg " + strings.Repeat("a", 251), "mg a " + strings.Repeat("s ", 20), "mx a", "mg !!! b",
	"ms a 2 O" + strings.Repeat("o", 40), "mg a\x01", "ma a Jx", "md a Cx", "mg", "m",
}

// FuzzParseMeta checks the meta parser on arbitrary lines: it never panics, its errors say what to
// answer and discard only an ms data block of the length it read, and what it accepts is within every
// limit.
func FuzzParseMeta(f *testing.F) {
	for _, s := range metaSeeds {
		f.Add([]byte(s))
	}
	var m, reused MetaCommand
	var buf, buf2 [MaxKeyLength]byte
	f.Fuzz(func(t *testing.T, line []byte) {
		if !IsMetaLine(line) {
			return
		}
		pe := m.Parse(line, buf[:], DefaultMaxValueBytes)
		if pe2 := reused.Parse(line, buf2[:], DefaultMaxValueBytes); describeMeta(&m, pe) != describeMeta(&reused, pe2) {
			t.Fatalf("reused MetaCommand differs: %s vs %s", describeMeta(&m, pe), describeMeta(&reused, pe2))
		}
		if pe != nil {
			if pe.Kind < ReplyError || pe.Kind > ReplyServerError || pe.Err == nil || pe.Close ||
				strings.ContainsAny(pe.Msg, "\r\n") {
				t.Fatalf("bad ProtocolError %+v", pe)
			}
			if pe.Swallow != 0 && (m.Code != metaSet || pe.Swallow != int64(m.DataLen)+2) {
				t.Fatalf("swallow %d for %q (len %d)", pe.Swallow, m.Code, m.DataLen)
			}
			return
		}
		if m.Code == metaNoop {
			return
		}
		if len(m.Key) == 0 || len(m.Key) > MaxKeyLength || (!m.Base64 && !LegalKey(m.Key)) {
			t.Fatalf("key %q accepted", m.Key)
		}
		if m.NFlags > maxMetaFlags || len(m.Opaque) > metaMaxOpaque {
			t.Fatalf("%d flags, opaque %q", m.NFlags, m.Opaque)
		}
		if (m.Code == metaSet) != (m.DataLen >= 0) || m.DataLen > DefaultMaxValueBytes {
			t.Fatalf("data length %d for %q", m.DataLen, m.Code)
		}
		seen := map[byte]bool{}
		for _, fl := range m.FlagList() {
			if seen[fl.Flag] {
				t.Fatalf("flag %q twice", fl.Flag)
			}
			seen[fl.Flag] = true
		}
	})
}

// FuzzBinaryHeader checks checkBinRequest on arbitrary headers: a request it serves has extras, key and
// value within the limits its handler assumes; a rejected one discards exactly its body.
func FuzzBinaryHeader(f *testing.F) {
	for _, r := range []binReq{
		{op: binGet, key: "k"}, {op: binSetQ, key: "k", ext: storeExt(1, 2), value: "v"},
		{op: binIncrement, key: "k", ext: arithExt(1, 2, 3)}, {op: binStat, key: "settings"},
		{op: binFlush, ext: u32(5)}, {op: binSASLAuth, key: "PLAIN", value: "\x00u\x00p"}, {op: 0x77, value: "x"},
		{op: binGATKQ, key: "k", ext: u32(1)}, {op: binAppend, key: "k", value: "v"},
	} {
		f.Add(r.bytes()[:binHeaderLen], false, true)
		f.Add(r.bytes()[:binHeaderLen], true, false)
	}
	f.Fuzz(func(t *testing.T, hdr []byte, sasl, authed bool) {
		if len(hdr) < binHeaderLen {
			return
		}
		h := parseBinHeader(hdr)
		const maxValue = 1 << 20
		v := checkBinRequest(h, maxValue, sasl, authed)
		switch v.Action {
		case binServe:
			if h.Magic != binReqMagic || h.KeyLen > MaxKeyLength || h.ExtLen > binMaxExtLen ||
				int(h.KeyLen)+int(h.ExtLen) > int(h.BodyLen) {
				t.Fatalf("served %+v", h)
			}
			switch v.Op {
			case binSet, binAdd, binReplace, binAppend, binPrepend:
				if h.valueLen() > maxValue || h.KeyLen == 0 {
					t.Fatalf("storage %+v", h)
				}
			case binSASLAuth, binSASLStep:
				if !sasl || h.valueLen() > maxSASLData {
					t.Fatalf("sasl %+v", h)
				}
			default:
				if h.valueLen() != 0 {
					t.Fatalf("value with %+v", h)
				}
			}
			if sasl && !authed && v.Op != binVersion && v.Op != binSASLList && v.Op != binSASLAuth && v.Op != binSASLStep {
				t.Fatalf("unauthenticated %+v served", h)
			}
		case binReject:
			if v.Swallow != int(h.BodyLen) || !v.Reply {
				t.Fatalf("reject %+v: %+v", h, v)
			}
		case binClose:
			if v.Reply != (h.Magic == binReqMagic) {
				t.Fatalf("close %+v: %+v", h, v)
			}
		}
	})
}

func TestTokenSplitter(t *testing.T) {
	line := "get a bb " + strings.Repeat("c", 12) + "  dd   " + strings.Repeat("e", 13) + " f"
	want := []string{"get", "a", "bb", strings.Repeat("c", 12), "dd", "<overlong>", "f"}
	// Every way of cutting the line in chunks gives the same tokens.
	for size := 1; size <= len(line); size++ {
		var carry [13]byte
		ts := tokenSplitter{carry: carry[:0], max: 12}
		var got []string
		emit := func(tok []byte, over bool) bool {
			if over {
				got = append(got, "<overlong>")
			} else {
				got = append(got, string(tok))
			}
			return true
		}
		for i := 0; i < len(line); i += size {
			end := min(i+size, len(line))
			ts.feed([]byte(line[i:end]), end == len(line), emit)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("chunks of %d: %q", size, got)
		}
		if cap(ts.carry) != 13 {
			t.Fatalf("carry grew to %d", cap(ts.carry))
		}
	}
	// emit stops the split.
	ts := tokenSplitter{carry: make([]byte, 0, 13), max: 12}
	n := 0
	if ts.feed([]byte("a b c"), true, func([]byte, bool) bool { n++; return n < 2 }) || n != 2 {
		t.Fatalf("stop: %d", n)
	}
	if !isRetrievalStart([]byte("  gets x")) || isRetrievalStart([]byte("getx")) ||
		isRetrievalStart([]byte(strings.Repeat(" ", 101)+"get x")) || isRetrievalStart([]byte("set a")) {
		t.Fatal("isRetrievalStart")
	}
}

func TestItemStates(t *testing.T) {
	st := newItemStates(3 * (itemEntryOverhead + 2))
	k := []byte("k1")
	// Bits belong to a cas: another cas reads as a fresh item.
	st.update(k, 10, func(b *itemBits) { b.fetched, b.lastAccess = true, 100 })
	if b := st.get(k, 10); !b.fetched || b.lastAccess != 100 {
		t.Fatalf("get: %+v", b)
	}
	if b := st.get(k, 11); !b.zero() {
		t.Fatalf("other cas: %+v", b)
	}
	if before := st.update(k, 11, func(b *itemBits) { b.stale = true }); !before.zero() {
		t.Fatalf("before at a new cas: %+v", before)
	}
	st.move(k, 11, 12, func(b *itemBits) { b.tokenSent = true })
	if b := st.get(k, 12); !b.stale || !b.tokenSent || b.fetched {
		t.Fatalf("moved: %+v", b)
	}
	// An entry whose bits become zero is dropped.
	st.update(k, 12, func(b *itemBits) { *b = itemBits{} })
	if n, _ := st.size(); n != 0 {
		t.Fatalf("%d entries", n)
	}
	// Claims: one winner; a reader adopts the created item's cas and sees the token sent.
	if !st.claim(k) || st.claim(k) {
		t.Fatal("claim")
	}
	if b := st.update(k, 20, nil); !b.tokenSent {
		t.Fatalf("adopted: %+v", b)
	}
	st.settle(k, 21, true) // already adopted: nothing changes
	if b := st.get(k, 20); !b.tokenSent {
		t.Fatalf("after settle: %+v", b)
	}
	if !st.claim([]byte("k2")) {
		t.Fatal("claim k2")
	}
	st.settle([]byte("k2"), 0, false)
	if !st.claim([]byte("k2")) {
		t.Fatal("claim after a failed settle")
	}
	// The bound: the least recently used entries go.
	st.reset()
	for i := range 5 {
		st.update([]byte{'a', byte('0' + i)}, 1, func(b *itemBits) { b.fetched = true })
	}
	if n, bytes := st.size(); n != 3 || bytes > 3*(itemEntryOverhead+2) {
		t.Fatalf("%d entries, %d bytes", n, bytes)
	}
	if !st.get([]byte("a4"), 1).fetched || st.get([]byte("a0"), 1).fetched {
		t.Fatal("evicted the wrong entries")
	}
}

func TestPrefixStats(t *testing.T) {
	var p prefixStats
	p.record([]byte("a:1"), detailSet, false) // off: not counted
	p.on.Store(true)
	p.record([]byte("a:1"), detailGet, true)
	p.record([]byte("a:2"), detailGet, false)
	p.record([]byte("b:1"), detailDel, false)
	p.record([]byte("nodelim"), detailSet, false)
	p.record([]byte("x\r\ny:1"), detailSet, false) // a prefix that would break the dump: not counted
	want := "PREFIX a get 2 hit 1 set 0 del 0\r\nPREFIX b get 0 hit 0 set 0 del 1\r\nEND\r\n"
	if got := string(p.appendDump(nil)); got != want {
		t.Fatalf("dump %q", got)
	}
	for i := range maxDetailPrefixes + 5 {
		p.record([]byte("p"+strconv.Itoa(i)+":x"), detailSet, false)
	}
	if p.dropped.Load() == 0 || bytes.Count(p.appendDump(nil), []byte("PREFIX")) > maxDetailPrefixes {
		t.Fatal("prefix bound")
	}
	p.reset()
	if got := string(p.appendDump(nil)); got != "END\r\n" {
		t.Fatalf("after reset %q", got)
	}
}

// TestMarkFetchedIsUpdate: markFetched (the allocation-free read path) does what update with the fetched
// bit does, on random histories of reads, writes (new cas) and marks.
func TestMarkFetchedIsUpdate(t *testing.T) {
	a, b := newItemStates(6*(itemEntryOverhead+2)), newItemStates(6*(itemEntryOverhead+2))
	r := uint64(1)
	next := func(n uint64) uint64 { r = r*6364136223846793005 + 1442695040888963407; return (r >> 33) % n }
	for i := range 5000 {
		key := []byte{'k', byte('0' + next(9))}
		cas, now := next(3)+1, int64(i)
		switch next(4) {
		case 0:
			ba := a.markFetched(key, cas, now)
			bb := b.update(key, cas, func(x *itemBits) { x.fetched, x.lastAccess = true, now })
			if ba != bb {
				t.Fatalf("step %d: markFetched %+v, update %+v", i, ba, bb)
			}
		case 1:
			a.claim(key)
			b.claim(key)
		case 2:
			a.update(key, cas, func(x *itemBits) { x.stale = true })
			b.update(key, cas, func(x *itemBits) { x.stale = true })
		default:
			if a.get(key, cas) != b.get(key, cas) {
				t.Fatalf("step %d: tables differ on %s", i, key)
			}
		}
	}
}
