package memcache

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// prefixDelimiter ends a key's prefix for "stats detail" (memcached's default, -D).
const prefixDelimiter = ':'

// maxDetailPrefixes bounds the prefixes "stats detail" counts; keys of further prefixes are counted only in
// the detail_dropped stat. memcached's table has no bound.
const maxDetailPrefixes = 1024

// prefixStats is memcached's "stats detail": per key prefix (the bytes before the first ':'; keys without
// one, or whose prefix holds a space or control character, are not counted) the number of gets, hits, sets and deletes, collected only while turned on ("stats
// detail on"). It is safe for concurrent use.
type prefixStats struct {
	on      atomic.Bool
	mu      sync.Mutex
	m       map[string]*prefixCounts // REQUIRES: mu held
	dropped atomic.Uint64
}

type prefixCounts struct{ get, hit, set, del uint64 }

type detailOp uint8

const (
	detailGet detailOp = iota
	detailSet
	detailDel
)

// record counts op on key if collection is on; hit matters for gets.
func (p *prefixStats) record(key []byte, op detailOp, hit bool) {
	if !p.on.Load() {
		return
	}
	i := bytes.IndexByte(key, prefixDelimiter)
	if i < 0 || !printable(string(key[:i])) {
		return // NB: a binary-protocol key may hold CR or LF, which must not reach a dump line
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]*prefixCounts)
	}
	pc := p.m[string(key[:i])]
	if pc == nil {
		if len(p.m) >= maxDetailPrefixes {
			p.dropped.Add(1)
			return
		}
		pc = new(prefixCounts)
		p.m[string(key[:i])] = pc
	}
	switch op {
	case detailGet:
		pc.get++
		if hit {
			pc.hit++
		}
	case detailSet:
		pc.set++
	case detailDel:
		pc.del++
	}
}

// reset forgets every prefix ("stats reset").
func (p *prefixStats) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m = nil
	p.dropped.Store(0)
}

// prefixLine is one prefix's counts, copied out of the table.
type prefixLine struct {
	name string
	prefixCounts
}

// snapshot copies the counts out, sorted by prefix, so that a dump is written without holding the lock.
func (p *prefixStats) snapshot() []prefixLine {
	p.mu.Lock()
	out := make([]prefixLine, 0, len(p.m))
	for k, pc := range p.m {
		out = append(out, prefixLine{k, *pc})
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b prefixLine) int { return strings.Compare(a.name, b.name) })
	return out
}

// appendLine appends memcached's dump line for l: "PREFIX <prefix> get <n> hit <n> set <n> del <n>\r\n".
func (l prefixLine) appendLine(dst []byte) []byte {
	dst = append(dst, "PREFIX "...)
	dst = append(dst, l.name...)
	dst = append(dst, " get "...)
	dst = strconv.AppendUint(dst, l.get, 10)
	dst = append(dst, " hit "...)
	dst = strconv.AppendUint(dst, l.hit, 10)
	dst = append(dst, " set "...)
	dst = strconv.AppendUint(dst, l.set, 10)
	dst = append(dst, " del "...)
	dst = strconv.AppendUint(dst, l.del, 10)
	return append(dst, crlf...)
}

// dumpLen is the length of the dump of lines (END included).
func dumpLen(lines []prefixLine) int {
	n := len(replyEnd)
	var scratch [128]byte
	for _, l := range lines {
		n += len(l.appendLine(scratch[:0]))
	}
	return n
}

// appendDump appends memcached's dump: one line per prefix, in byte order of the prefixes, then "END\r\n".
func (p *prefixStats) appendDump(dst []byte) []byte {
	for _, l := range p.snapshot() {
		dst = l.appendLine(dst)
	}
	return append(dst, replyEnd...)
}
