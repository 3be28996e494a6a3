package memcache

import (
	"bytes"
	"math"
)

// MaxKeyLength is the longest key the text protocol allows, in bytes.
const MaxKeyLength = 250

// DefaultMaxValueBytes is the data block limit ParseCommand applies (memcached's default item size, -I 1m).
const DefaultMaxValueBytes = 1 << 20

// maxDataBlock is the largest <bytes> field memcached reads at all (INT_MAX-2); above it the field counts as
// unparsable.
const maxDataBlock = math.MaxInt32 - 2

// Op is a request command.
type Op uint8

// Ops of the text protocol. OpMeta stands for any meta command (mg, ms, md, ma, mn, me), which
// MetaCommand parses.
const (
	OpInvalid Op = iota
	OpGet
	OpGets
	OpGat
	OpGats
	OpSet
	OpAdd
	OpReplace
	OpAppend
	OpPrepend
	OpCas
	OpDelete
	OpIncr
	OpDecr
	OpTouch
	OpStats
	OpVersion
	OpVerbosity
	OpFlushAll
	OpQuit
	OpMeta
)

var opNames = [...]string{
	OpInvalid:   "invalid",
	OpGet:       "get",
	OpGets:      "gets",
	OpGat:       "gat",
	OpGats:      "gats",
	OpSet:       "set",
	OpAdd:       "add",
	OpReplace:   "replace",
	OpAppend:    "append",
	OpPrepend:   "prepend",
	OpCas:       "cas",
	OpDelete:    "delete",
	OpIncr:      "incr",
	OpDecr:      "decr",
	OpTouch:     "touch",
	OpStats:     "stats",
	OpVersion:   "version",
	OpVerbosity: "verbosity",
	OpFlushAll:  "flush_all",
	OpQuit:      "quit",
	OpMeta:      "meta",
}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "invalid"
}

// IsStorage reports whether a data block follows the command line.
func (o Op) IsStorage() bool { return o >= OpSet && o <= OpCas }

// IsRetrieval reports whether the reply is a list of VALUE items closed by END.
func (o Op) IsRetrieval() bool { return o >= OpGet && o <= OpGats }

// lookupOp maps a command name to its Op; names are case-sensitive (protocol.txt).
func lookupOp(name []byte) Op {
	switch string(name) {
	case "get":
		return OpGet
	case "gets":
		return OpGets
	case "gat":
		return OpGat
	case "gats":
		return OpGats
	case "set":
		return OpSet
	case "add":
		return OpAdd
	case "replace":
		return OpReplace
	case "append":
		return OpAppend
	case "prepend":
		return OpPrepend
	case "cas":
		return OpCas
	case "delete":
		return OpDelete
	case "incr":
		return OpIncr
	case "decr":
		return OpDecr
	case "touch":
		return OpTouch
	case "stats":
		return OpStats
	case "version":
		return OpVersion
	case "verbosity":
		return OpVerbosity
	case "flush_all":
		return OpFlushAll
	case "quit":
		return OpQuit
	}
	return OpInvalid
}

// Command is one parsed request line. Byte slices point into the parsed line and are valid as long as it is.
type Command struct {
	Op Op
	// Keys holds the keys of get/gets/gat/gats (gat and gats may have none) and the one key of storage,
	// delete, incr, decr and touch.
	Keys [][]byte
	// Flags is the opaque client flags field of storage commands.
	Flags uint32
	// Exptime is the raw exptime of storage commands, touch, gat and gats, and the delay of flush_all;
	// ExpiryAt turns it into a time.
	Exptime int64
	// Bytes is the length of the data block (without its CRLF) of storage commands, -1 for other commands.
	Bytes int
	// CasUnique is the <cas unique> of cas.
	CasUnique uint64
	// Delta is the amount of incr and decr.
	Delta uint64
	// Verbosity is the level of verbosity.
	Verbosity uint64
	// Args holds the arguments of stats ("settings", "items", ...).
	Args [][]byte
	// NoReply is set when the command ends in "noreply". It is also set on a rejected line when the last
	// token was "noreply", as memcached does, so the error reply is suppressed too.
	NoReply bool
}

// Key returns the first key, or nil.
func (c *Command) Key() []byte {
	if len(c.Keys) == 0 {
		return nil
	}
	return c.Keys[0]
}

// ParseCommand parses one request line, given without its CRLF, with the DefaultMaxValueBytes limit.
// On error the Command still carries Op and NoReply as far as they could be read, and the error is a
// *ProtocolError. The server uses Command.Parse, which reuses the Command's slices.
func ParseCommand(line []byte) (Command, error) {
	var c Command
	err := c.Parse(line, DefaultMaxValueBytes)
	return c, err
}

// maxFixedTokens is more than any fixed-arity command takes; the rest are counted, not kept.
const maxFixedTokens = 8

// Parse parses one request line (without its CRLF) into c, reusing the storage of c.Keys and c.Args.
// maxValueBytes bounds the data block of storage commands. The returned error, if any, is a *ProtocolError.
//
// Tokens are separated by one or more spaces (only 0x20, as in memcached); a tab is part of a token and
// makes a key or number invalid.
func (c *Command) Parse(line []byte, maxValueBytes int) error {
	keys, args := c.Keys[:0], c.Args[:0]
	*c = Command{Bytes: -1}
	name, i := nextToken(line, 0)
	c.Op = lookupOp(name)
	var err *ProtocolError
	switch {
	case c.Op == OpInvalid:
		err = errUnknown()
		if isHTTPRequestLine(line) {
			err = &ProtocolError{Kind: ReplyNone, Close: true, Err: ErrUnknownCommand}
		}
	case c.Op.IsRetrieval():
		keys, err = c.parseRetrieval(line, i, keys)
	case c.Op == OpStats:
		for {
			var t []byte
			if t, i = nextToken(line, i); t == nil {
				break
			}
			args = append(args, t)
		}
	default:
		var toks [maxFixedTokens][]byte
		n := 0
		for {
			var t []byte
			if t, i = nextToken(line, i); t == nil {
				break
			}
			if n < len(toks) {
				toks[n] = t
			}
			n++
		}
		t := toks[:min(n, len(toks))]
		switch {
		case c.Op.IsStorage():
			keys, err = c.parseStorage(t, n, keys, maxValueBytes)
		default:
			keys, err = c.parseOther(t, n, keys)
		}
	}
	c.Keys, c.Args = keys, args
	if err != nil {
		return err
	}
	return nil
}

// parseRetrieval parses get/gets <key>* and gat/gats <exptime> <key>*.
func (c *Command) parseRetrieval(line []byte, i int, keys [][]byte) ([][]byte, *ProtocolError) {
	if c.Op == OpGat || c.Op == OpGats {
		var t []byte
		if t, i = nextToken(line, i); t == nil {
			return keys, errUnknown()
		}
		exp, ok := parseInt(t)
		if !ok {
			return keys, clientError(ErrBadNumber, msgBadExptime)
		}
		c.Exptime = exp
	}
	var bad *ProtocolError
	for {
		var t []byte
		if t, i = nextToken(line, i); t == nil {
			break
		}
		if bad == nil {
			bad = keyError(t)
		}
		keys = append(keys, t)
	}
	if bad != nil {
		return keys, bad
	}
	if len(keys) == 0 && (c.Op == OpGet || c.Op == OpGets) {
		return keys, errUnknown() // memcached: "get" alone is ERROR; "gat 0" alone is an empty END.
	}
	return keys, nil
}

// parseStorage parses <cmd> <key> <flags> <exptime> <bytes> [noreply] and
// cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]. n counts all tokens after the name.
//
// As in memcached: a wrong number of tokens is ERROR, and an unreadable <bytes> field CLIENT_ERROR; in both
// cases the connection reads on and whatever data follows is read as commands (memcached's behaviour, which
// clients and its tests rely on). Once <bytes> is known every later error swallows the block, so the stream
// stays in sync (memcached does not, and runs the block as commands). A last token other than noreply is
// ignored, as memcached does; the position of <bytes> is then uncertain, so errors do not swallow.
func (c *Command) parseStorage(t [][]byte, n int, keys [][]byte, maxValueBytes int) ([][]byte, *ProtocolError) {
	want := 4
	if c.Op == OpCas {
		want = 5
	}
	if n < want || n > want+1 {
		return keys, errUnknown()
	}
	c.NoReply = n == want+1 && bytes.Equal(t[want], noreply)
	keys = append(keys, t[0])
	size, ok := parseUint(t[3], maxDataBlock)
	if !ok {
		return keys, clientError(ErrBadFormat, msgBadFormat)
	}
	c.Bytes = int(size)
	certain := n == want || c.NoReply
	swallow := func(e *ProtocolError) ([][]byte, *ProtocolError) {
		if certain {
			e.Swallow = int64(size) + 2
		}
		return keys, e
	}
	if e := keyError(t[0]); e != nil {
		return swallow(e)
	}
	flags, ok := parseUint(t[1], math.MaxUint32)
	if !ok {
		return swallow(clientError(ErrBadFormat, msgBadFormat))
	}
	c.Flags = uint32(flags)
	if c.Exptime, ok = parseInt(t[2]); !ok {
		return swallow(clientError(ErrBadFormat, msgBadFormat))
	}
	if c.Op == OpCas {
		if c.CasUnique, ok = parseUint(t[4], math.MaxUint64); !ok {
			return swallow(clientError(ErrBadFormat, msgBadFormat))
		}
	}
	if c.Bytes > maxValueBytes {
		return swallow(&ProtocolError{Kind: ReplyServerError, Msg: msgTooLarge, Err: ErrValueTooLarge})
	}
	return keys, nil
}

// parseOther parses the commands with a fixed number of arguments and no data block.
func (c *Command) parseOther(t [][]byte, n int, keys [][]byte) ([][]byte, *ProtocolError) {
	// lastNoreply reports whether the last of n > min tokens is "noreply".
	lastNoreply := func(min int) bool { return n > min && n <= len(t) && bytes.Equal(t[n-1], noreply) }
	switch c.Op {
	case OpDelete:
		// delete <key> [0] [noreply]; the "0" is the legacy hold time, accepted only as zero.
		if n == 0 || n > 3 {
			return keys, errUnknown()
		}
		c.NoReply = lastNoreply(1)
		keys = append(keys, t[0])
		valid := n == 1 ||
			(n == 2 && (c.NoReply || isZero(t[1]))) ||
			(n == 3 && isZero(t[1]) && c.NoReply)
		if !valid {
			return keys, clientError(ErrBadFormat, msgDeleteUsage)
		}
		return keys, keyError(t[0])
	case OpIncr, OpDecr:
		// incr <key> <value> [noreply]
		if n < 2 || n > 3 {
			return keys, errUnknown()
		}
		c.NoReply = lastNoreply(2)
		keys = append(keys, t[0])
		if n == 3 && !c.NoReply {
			return keys, clientError(ErrBadFormat, msgBadFormat)
		}
		if e := keyError(t[0]); e != nil {
			return keys, e
		}
		var ok bool
		if c.Delta, ok = parseUint(t[1], math.MaxUint64); !ok {
			return keys, clientError(ErrBadNumber, msgBadDelta)
		}
		return keys, nil
	case OpTouch:
		// touch <key> <exptime> [noreply]
		if n < 2 || n > 3 {
			return keys, errUnknown()
		}
		c.NoReply = lastNoreply(2)
		keys = append(keys, t[0])
		if n == 3 && !c.NoReply {
			return keys, clientError(ErrBadFormat, msgBadFormat)
		}
		if e := keyError(t[0]); e != nil {
			return keys, e
		}
		var ok bool
		if c.Exptime, ok = parseInt(t[1]); !ok {
			return keys, clientError(ErrBadNumber, msgBadExptime)
		}
		return keys, nil
	case OpVerbosity:
		// verbosity <level> [noreply]; as in memcached a last "noreply" counts even alone ("verbosity
		// noreply" is a bad level, silently).
		if n < 1 || n > 2 {
			return keys, errUnknown()
		}
		c.NoReply = lastNoreply(0)
		if n == 2 && !c.NoReply {
			return keys, clientError(ErrBadFormat, msgBadFormat)
		}
		var ok bool
		if c.Verbosity, ok = parseUint(t[0], math.MaxUint64); !ok {
			return keys, clientError(ErrBadFormat, msgBadFormat)
		}
		return keys, nil
	case OpFlushAll:
		// flush_all [delay] [noreply]
		c.NoReply = lastNoreply(0)
		rest := n
		if c.NoReply {
			rest--
		}
		if rest > 1 || n > 2 {
			return keys, clientError(ErrBadFormat, msgBadFormat)
		}
		if rest == 1 {
			var ok bool
			if c.Exptime, ok = parseInt(t[0]); !ok {
				return keys, clientError(ErrBadNumber, msgBadExptime)
			}
		}
		return keys, nil
	case OpVersion, OpQuit:
		return keys, nil // memcached ignores arguments of both
	}
	return keys, errUnknown()
}

// isHTTPRequestLine reports whether line's last token starts with "HTTP/": a web client on the memcache
// port, which memcached disconnects without a reply.
func isHTTPRequestLine(line []byte) bool {
	end := len(line)
	for end > 0 && line[end-1] == ' ' {
		end--
	}
	start := bytes.LastIndexByte(line[:end], ' ') + 1
	return bytes.HasPrefix(line[start:end], []byte("HTTP/"))
}

// nextToken returns the token of line that starts at or after i, and the index just after it; nil at the end.
// Only spaces separate tokens; runs of spaces count as one, as in memcached's tokenizer.
func nextToken(line []byte, i int) ([]byte, int) {
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i == len(line) {
		return nil, i
	}
	j := i
	for j < len(line) && line[j] != ' ' {
		j++
	}
	return line[i:j:j], j
}

// LegalKey reports whether key may be used in the text protocol: 1 to 250 bytes, none of them a control
// character (0x00-0x1f, 0x7f) or a space. Bytes above 0x7f (UTF-8) are allowed.
func LegalKey(key []byte) bool { return keyError(key) == nil }

// keyError is the one place key legality is decided.
func keyError(key []byte) *ProtocolError {
	if len(key) == 0 {
		return clientError(ErrBadFormat, msgBadFormat)
	}
	if len(key) > MaxKeyLength {
		return clientError(ErrKeyTooLong, msgKeyTooLong)
	}
	for _, b := range key {
		if b <= ' ' || b == 0x7f {
			return clientError(ErrBadKey, msgBadKey)
		}
	}
	return nil
}

// parseUint parses a decimal number of digits only (no sign, no spaces) that is at most max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, ch := range b {
		d := uint64(ch) - '0'
		if d > 9 {
			return 0, false
		}
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, n <= max
}

// parseInt parses a decimal int64 with an optional leading '-'.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b, math.MaxInt64+1)
	if !ok || (!neg && u > math.MaxInt64) {
		return 0, false
	}
	if neg {
		if u == math.MaxInt64+1 {
			return math.MinInt64, true
		}
		return -int64(u), true
	}
	return int64(u), true
}

func isZero(b []byte) bool { return len(b) == 1 && b[0] == '0' }
