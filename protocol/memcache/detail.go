package memcache

import (
	"bytes"
	"slices"
	"strconv"
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

// appendDump appends memcached's dump: "PREFIX <prefix> get <n> hit <n> set <n> del <n>\r\n" per prefix, in
// byte order of the prefixes, then "END\r\n".
func (p *prefixStats) appendDump(dst []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.m))
	for k := range p.m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		pc := p.m[k]
		dst = append(dst, "PREFIX "...)
		dst = append(dst, k...)
		dst = append(dst, " get "...)
		dst = strconv.AppendUint(dst, pc.get, 10)
		dst = append(dst, " hit "...)
		dst = strconv.AppendUint(dst, pc.hit, 10)
		dst = append(dst, " set "...)
		dst = strconv.AppendUint(dst, pc.set, 10)
		dst = append(dst, " del "...)
		dst = strconv.AppendUint(dst, pc.del, 10)
		dst = append(dst, crlf...)
	}
	return append(dst, replyEnd...)
}
