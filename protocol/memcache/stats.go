package memcache

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// counters are the memcached general-purpose statistics the server tracks. They are updated with atomics
// from every connection goroutine.
type counters struct {
	cmdGet, cmdSet, cmdTouch, cmdFlush         atomic.Uint64
	getHits, getMisses, getExpired             atomic.Uint64
	deleteHits, deleteMisses                   atomic.Uint64
	incrHits, incrMisses, decrHits, decrMisses atomic.Uint64
	casHits, casMisses, casBadval              atomic.Uint64
	touchHits, touchMisses                     atomic.Uint64
	storeErrors, protocolErrors, noMemory      atomic.Uint64
	storeTooLarge                              atomic.Uint64
	authCmds, authErrors                       atomic.Uint64
	bytesRead, bytesWritten                    atomic.Uint64
	totalConns, rejectedConns, idleKicks       atomic.Uint64
}

// reset zeroes every counter ("stats reset"); curr_connections is a gauge and stays.
func (c *counters) reset() {
	for _, v := range c.all() {
		v.Store(0)
	}
}

func (c *counters) all() []*atomic.Uint64 {
	return []*atomic.Uint64{&c.cmdGet, &c.cmdSet, &c.cmdTouch, &c.cmdFlush, &c.getHits, &c.getMisses,
		&c.getExpired, &c.deleteHits, &c.deleteMisses, &c.incrHits, &c.incrMisses, &c.decrHits, &c.decrMisses,
		&c.casHits, &c.casMisses, &c.casBadval, &c.touchHits, &c.touchMisses, &c.storeErrors,
		&c.protocolErrors, &c.noMemory, &c.storeTooLarge, &c.authCmds, &c.authErrors, &c.bytesRead,
		&c.bytesWritten, &c.totalConns, &c.rejectedConns, &c.idleKicks}
}

// resetStats is "stats reset": the counters and the "stats detail" prefixes.
func (s *Server) resetStats() {
	s.stats.reset()
	s.detail.reset()
}

// generalStats returns the lines of a bare "stats", memcached's names first, then the Store's.
func (s *Server) generalStats() []Stat {
	now := s.cfg.Now()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	st := &s.stats
	out := []Stat{
		{"pid", strconv.Itoa(s.pid)},
		{"uptime", i(int64(now.Sub(s.started) / time.Second))},
		{"time", i(now.Unix())},
		{"version", s.cfg.Version},
		{"pointer_size", strconv.Itoa(strconv.IntSize)},
		{"max_connections", strconv.Itoa(s.cfg.MaxConns)},
		{"curr_connections", i(s.curr.Load())},
		{"total_connections", u(st.totalConns.Load())},
		{"rejected_connections", u(st.rejectedConns.Load())},
		{"idle_kicks", u(st.idleKicks.Load())},
		{"threads", strconv.Itoa(runtime.GOMAXPROCS(0))},
		{"cmd_get", u(st.cmdGet.Load())},
		{"cmd_set", u(st.cmdSet.Load())},
		{"cmd_flush", u(st.cmdFlush.Load())},
		{"cmd_touch", u(st.cmdTouch.Load())},
		{"get_hits", u(st.getHits.Load())},
		{"get_misses", u(st.getMisses.Load())},
		{"get_expired", u(st.getExpired.Load())},
		{"delete_misses", u(st.deleteMisses.Load())},
		{"delete_hits", u(st.deleteHits.Load())},
		{"incr_misses", u(st.incrMisses.Load())},
		{"incr_hits", u(st.incrHits.Load())},
		{"decr_misses", u(st.decrMisses.Load())},
		{"decr_hits", u(st.decrHits.Load())},
		{"cas_misses", u(st.casMisses.Load())},
		{"cas_hits", u(st.casHits.Load())},
		{"cas_badval", u(st.casBadval.Load())},
		{"touch_hits", u(st.touchHits.Load())},
		{"touch_misses", u(st.touchMisses.Load())},
		{"store_errors", u(st.storeErrors.Load())},
		{"protocol_errors", u(st.protocolErrors.Load())},
		{"out_of_memory_errors", u(st.noMemory.Load())},
		{"store_too_large", u(st.storeTooLarge.Load())},
		{"auth_cmds", u(st.authCmds.Load())},
		{"auth_errors", u(st.authErrors.Load())},
		{"detail_dropped", u(s.detail.dropped.Load())},
		{"bytes_read", u(st.bytesRead.Load())},
		{"bytes_written", u(st.bytesWritten.Load())},
	}
	return append(out, s.store.Stats()...)
}

// settingsStats returns the lines of "stats settings" (memcached's names where they exist).
func (s *Server) settingsStats() []Stat {
	b := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(max(d, 0)/time.Second), 10) }
	return []Stat{
		{"maxconns", strconv.Itoa(s.cfg.MaxConns)},
		{"item_size_max", strconv.Itoa(s.cfg.MaxValueBytes)},
		{"max_line_bytes", strconv.Itoa(s.cfg.MaxLineBytes)},
		{"idle_timeout", secs(s.cfg.IdleTimeout)},
		{"read_timeout", secs(s.cfg.ReadTimeout)},
		{"write_timeout", secs(s.cfg.WriteTimeout)},
		{"flush_enabled", b(s.cfg.FlushAllEnabled)},
		{"cas_enabled", "yes"},
		{"evictions", "off"},
		{"auth_enabled_sasl", b(s.cfg.Users != nil)},
		{"auth_enabled_ascii", b(s.cfg.Users != nil)},
		{"binding_protocol", bindingProtocol(s.cfg.Protocols)},
		{"domain_socket", "NULL"},
		{"detail_enabled", b(s.detail.on.Load())},
		{"item_state_max_bytes", strconv.Itoa(defaultItemStateBytes)},
	}
}

// bindingProtocol is memcached's name for a Config.Protocols value.
func bindingProtocol(p string) string {
	if p == "auto" {
		return "auto-negotiate"
	}
	return p
}

// appendStatName appends a stat name made one token: CR and LF become spaces, spaces underscores; an empty
// name is "_".
func appendStatName(dst []byte, name string) []byte {
	name = oneLine(name)
	if name == "" {
		name = "_"
	}
	return append(dst, strings.ReplaceAll(name, " ", "_")...)
}

// appendStat appends "STAT <name> <value>\r\n", making both safe for one line: spaces in the name become
// underscores, CR and LF anywhere become spaces.
func appendStat(dst []byte, st Stat) []byte {
	dst = append(dst, prefixStat...)
	dst = appendStatName(dst, st.Name)
	dst = append(dst, ' ')
	dst = append(dst, oneLine(st.Value)...)
	return append(dst, crlf...)
}
