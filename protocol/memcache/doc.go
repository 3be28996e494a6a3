// Package memcache is gokai's memcache face: memcached's text protocol, its meta commands and its binary
// protocol (memcached 1.6's doc/protocol.txt and protocol_binary.h), served over gokai's Dynamo-style
// store.
//
// # What it owns
//
//   - Pure parsers, no I/O and no clock: Command.Parse (a text line: a Command or a *ProtocolError),
//     MetaCommand.Parse (a meta line), parseBinHeader and checkBinRequest (a binary header and what its
//     opcode's shape allows), tokenSplitter (a retrieval line that arrives in chunks); ExpiryAt turns a
//     protocol exptime into an absolute time given "now".
//   - The operations (ops.go): one implementation of every command over Store, which the three faces only
//     encode and decode, so what a command reads, supersedes and counts is decided once.
//   - A server (NewServer, Serve, Shutdown): the protocol of a connection is chosen by its first byte (0x80,
//     the binary magic, or text; Config.Protocols restricts it, memcached's -B), one goroutine per
//     connection, pooled bufio buffers, replies flushed once per pipelined batch, timeouts, a connection
//     limit, memcached's general stats and "stats detail".
//   - Logins against a user file (Config.Users, memcached's format): SASL PLAIN on binary connections,
//     memcached's -Y token on text ones.
//   - The per-node table of the item bits memcached keeps beside a value and the meta commands show (hit
//     before, last access, win token, stale): itemstate.go.
//   - The Store interface it needs from the node (store.go).
//
// It does not own replication, versions or conflict resolution (the node behind Store does), UDP, eviction
// or slabs, SASL mechanisms other than PLAIN, or memcached's admin commands (slabs, lru, watch, shutdown).
//
// # Commands over Store
//
// What a write supersedes is explicit (Supersede, store.go): the siblings a read returned (its Context), or
// everything the coordinating replica holds (Blind), or nothing (the zero value). Every command that reads or
// conditions on the current value first calls Store.Get (asking for the context: Read{Context: true}), then
// writes with Supersede{Context: Entry.Context}, so it supersedes exactly the siblings it saw and never one it
// did not see. A read that writes nothing (get, gets, binary GET, mg without T, me) asks for no context, which
// spares the Store its encoding; gets and mg show the cas unique, and a later cas reads again for the context
// and checks the cas unique against it. Only a plain set is blind (text
// set, binary SET without a cas, ms in set mode without C). Values whose Expiry has passed are not found (the
// Store hides them; the server checks again against Config.Now).
//
//	get k...        VALUE <key> <flags> <bytes> + data for the Chosen sibling of each found key; END.
//	gets k...       every live sibling as its own VALUE <key> <flags> <bytes> <cas> item, all with the same
//	                cas (Entry.Cas names the sibling set); the Chosen sibling comes last, so clients that
//	                keep the last item per key see what get returns. END.
//	set             Store.Set(v, Supersede{Blind: true}): a blind write (memcached's last writer wins); it
//	                supersedes what the coordinating replica holds, and concurrent siblings that replica
//	                had not seen survive. A set whose value is over MaxValueBytes answers SERVER_ERROR object
//	                too large for cache and, as memcached does, removes the key's old value (a delete over
//	                what a read finds), so a stale value does not outlive a failed set.
//	add             Get; found -> NOT_STORED; else Set with the Entry's Context: empty when the read found
//	                nothing, so the add supersedes nothing and an add or write racing it becomes its
//	                sibling (both were STORED, both are kept); the tombstones' context when the read found
//	                only deleted or expired siblings, which the add supersedes.
//	replace         Get; not found -> NOT_STORED; else Set with Context.
//	append/prepend  Get; not found -> NOT_STORED; else Chosen's data with the new data after/before it,
//	                keeping Chosen's flags and expiry, Set with Context (this resolves siblings).
//	cas             Get; not found -> NOT_FOUND; Entry.Cas != unique -> EXISTS; else Set with Context ->
//	                STORED: the value supersedes exactly the sibling set the client read with gets.
//	incr/decr       Get; not found -> NOT_FOUND; Chosen's data must be a decimal uint64 (spaces around it
//	                allowed) else CLIENT_ERROR cannot increment or decrement non-numeric value; incr wraps
//	                at 2^64, decr stops at 0; Set with Context (flags and expiry kept); reply the new value.
//	touch           Get; not found -> NOT_FOUND; else Set Chosen with the new expiry and Context -> TOUCHED.
//	gat/gats        touch each found key, then reply like get; gats shows the cas unique of the touch.
//	delete          Get; not found -> NOT_FOUND; else Delete with Context -> DELETED.
//	flush_all [d]   disabled unless Config.FlushAllEnabled (CLIENT_ERROR flush_all not allowed); else
//	                Store.FlushAll(FlushAt(d, now)) at once, with or without a delay d (an exptime): the
//	                Store hides what was written before that time from then on; OK.
//	stats           memcached's general stats this server tracks, then Store.Stats(), then END.
//	                "stats settings" lists the Config; "stats reset" zeroes the counters (RESET); "stats
//	                detail on|off|dump" counts gets, hits, sets and deletes per key prefix (up to ':');
//	                "stats items|slabs|sizes|conns" answer an empty END; any other argument is ERROR.
//	version         VERSION <Config.Version>. verbosity: OK (ignored). quit: close the connection.
//
// Every write returns the cas unique of what it left (Store.Set): binary SET, INCR and the meta c flag hand
// it to the client. The node returns the sibling set's unique only when the written value is the key's only
// value; when the write became a sibling of values its writer never saw it returns a unique no read shows,
// so a cas with it answers EXISTS instead of superseding what its writer did not see.
//
// None of this is linearizable across replicas, as in Kai: the read-then-write commands (add, replace,
// append, prepend, cas, incr, decr, touch, delete) are not atomic. Two clients that add the same key, or cas
// with the same unique through different coordinators, may both succeed; their writes then become siblings
// (the store's dotted version vectors keep both) rather than one losing silently. Concurrent incr on one key
// can produce siblings whose values each counted one increment; get shows the newest. Use gets to see
// siblings and cas to resolve them.
//
// # Meta commands
//
// mg, ms, md, ma, mn and me carry out the same operations, with memcached's flags (protocol.txt): b (the
// key is base64: any bytes), O (opaque, echoed), k (return the key), q (quiet: HD and EN lines are not
// sent, errors always are), c (cas), f (flags), s (size), t (TTL), v (value), T (new TTL), C (compare cas),
// F (set flags), M (mode), N (create on miss), J and D (ma's initial value and delta), I (invalidate), R,
// h, l, u. P and L are accepted and ignored.
//
//	mg        one value, the sibling get shows; its c is the cas unique of the whole sibling set, as gets
//	          shows it, so ms with that C supersedes every sibling (resolving them). Use gets to see the
//	          siblings themselves. T rewrites the value with a new expiry (a touch: the cas changes); t
//	          before T in the request shows the old TTL.
//	ms        mode set (default, S), add (E), append (A), prepend (P), replace (R); C turns set and
//	          replace into a cas and is checked by append and prepend; c returns the new cas (0 when nothing
//	          was stored). With I, a C that does not match still stores the value, marked stale and keeping
//	          the current expiry (memcached takes a unique older than the item's; gokai's uniques are
//	          hashes, not ordered, so any other unique counts as older).
//	md        deletes exactly the siblings read; with I instead rewrites the value (new cas, T's expiry if
//	          given) marked stale, its win token cleared.
//	ma        incr (M I or +, the default) or decr (M D or -) by D (1); N creates a missing key with J (0).
//	mn        MN. me: ME <key> exp= la= cas= fetch= size= siblings= (gokai adds the sibling count and has no
//	          slab class), or EN.
//
// The item bits memcached keeps beside a value, which gokai does not store with its data, live in a table
// of the node that serves the connection (itemstate.go): whether the item was read before (h), when it was
// last read (l; else the seconds since its write), whether a client was handed the right to recache it (W
// for that client, Z for the next ones: mg N on a miss, R with a TTL below its token, the first read of a
// stale item) and whether it was marked stale (X). Each entry names the cas unique it belongs to, so any
// write to the key (through any node) makes it a fresh item again, as a new item is in memcached. The table
// is bounded (4 MiB, least recently used entries dropped: a dropped item reads as fresh) and per node: a
// client reading through another node sees that node's bits, and two clients that race mg N through two
// nodes may both win. On one node exactly one wins. The bits are advisory, as in memcached (an evicted item
// loses its token); data never depends on them.
//
// # Binary protocol
//
// Every opcode of memcached 1.6 and its quiet form: GET, GETK, GAT, GATK, TOUCH, SET, ADD, REPLACE,
// APPEND, PREPEND, DELETE, INCREMENT, DECREMENT (the extras' initial value creates a missing key unless the
// expiration is 0xffffffff), STAT (groups as in text; one response per stat, then an empty one), VERSION,
// NOOP, VERBOSITY, FLUSH (a delay in the extras; refused with an auth error when flush_all is not allowed,
// memcached's status), QUIT, and SASL_LIST_MECHS, SASL_AUTH, SASL_STEP when logins are on. Quiet forms
// answer only errors, and gets only hits. A cas in the request header makes SET, ADD and REPLACE a cas
// (memcached's rule) and is checked by APPEND, PREPEND, DELETE and INCR/DECR; successful writes answer their
// new cas, hits the sibling set's. A hit shows one value, as get does. A Store failure answers status
// 0x86 (temporary failure) with the text the text protocol sends after SERVER_ERROR.
//
// Requests are checked as memcached checks them: a bad magic closes the connection without a reply; lengths
// that do not fit the body, a key over 250 bytes, or an opcode's wrong shape (extras, key, value) answer an
// error and close; an unknown opcode is answered and its body discarded; a value over MaxValueBytes is
// answered (too large) at once and its body discarded as it arrives, never held.
//
// # Logins
//
// With Config.Users, nothing but logging in works before a login: binary connections may send VERSION and
// the SASL commands (anything else: an auth error, and the connection closes, as memcached does); text and
// meta connections must first send memcached's -Y token, "set <any key> <flags> <exptime> <bytes>" with the
// data block "user password" (STORED, or CLIENT_ERROR authentication failure; any other command is
// CLIENT_ERROR unauthenticated). Passwords are compared in constant time.
//
// # Errors and keeping the stream in sync
//
// ERROR answers an unknown command, or a known one with the wrong number of arguments (as memcached: the
// connection keeps reading, and whatever data the client sent after it is read as commands). CLIENT_ERROR
// answers malformed input; SERVER_ERROR a Store failure or an oversized value ("SERVER_ERROR object too large
// for cache", memcached's text, which libmemcached maps to E2BIG). After any of them the connection keeps
// serving:
//
//   - A storage line whose <bytes> field is readable and in its place, but which is otherwise bad (key too
//     long or holding a control character, bad flags/exptime/cas, value too large) is answered and its data
//     block read and discarded, as memcached does for a too-large value. For the other cases memcached
//     does not swallow the block and then runs the data as commands; gokai swallows it.
//   - A storage line whose <bytes> field is unreadable (not a number, negative, over 2^31-3) answers
//     CLIENT_ERROR bad command line format, as memcached does, and reads on: the data the client sends
//     after it is read as commands. So does a bad line whose last token is not "noreply" (memcached ignores
//     that token, which may mean a key with a space in it: where <bytes> is is then uncertain).
//   - A data block not followed by CRLF is answered "CLIENT_ERROR bad data chunk"; the server then discards
//     input through the next newline, which is where a client that sent too many bytes meant the block to
//     end.
//   - A line longer than Config.MaxLineBytes is discarded through its newline and answered
//     "CLIENT_ERROR line too long"; but a retrieval line (get, gets, gat, gats) longer than the read buffer
//     is served key by key as it arrives, as memcached serves it, and needs no line buffer and has no length
//     limit (a bad key in it ends the reply with its error line; the rest of the line is dropped).
//   - A line whose last token starts with "HTTP/" (a web client) closes the connection without a reply.
//
// A request the node's memory budget (Config.Memory, shared with msgpack-RPC) has no room for is answered
// with memcached's texts and the connection keeps serving: "SERVER_ERROR out of memory storing object" for
// a data block, a meta ms block or a binary value (reserved before it is read; when refused it is read and
// dropped, never kept; binary: status 0x82), "SERVER_ERROR out of memory reading request" for a long request
// line (its growth past 16 KiB is reserved as it grows; when refused the line is read to its end and
// dropped), "SERVER_ERROR out of memory writing get response" for the values of a reply (reserved before
// they are written), which ends that reply. Binary headers, extras and keys, meta keys and streamed
// retrieval keys use fixed buffers of each connection.
//
// A Store failure is answered "SERVER_ERROR <msg>" with the Msg of the *StoreError the Store returned (the
// node's: "out of space" when its disk is full, "overload ..." when it sheds load); any other error from a
// Store is answered "SERVER_ERROR store error; ..." and its text, which may name files, goes to the log
// only. Store errors are logged at most once a second per StoreError.Code, with the count suppressed.
//
// noreply suppresses every reply to its command, errors included, as memcached does for parse errors; unlike
// memcached (which still sends SERVER_ERROR for out-of-memory) this includes Store failures, because a client
// that does not read replies would take the line as the reply to its next request. They are counted in the
// store_errors stat and logged. The one exception: when the connection is about to close, the error is sent.
//
// Keys: 1 to 250 bytes; in the text protocol and meta commands without b, no control characters
// (0x00-0x1f, 0x7f); tokens are separated by spaces only, so a tab inside a key is a CLIENT_ERROR (memcached
// itself does not check; gomemcache's client does). Binary keys and base64 meta keys may hold any bytes.
//
// # Concurrency
//
// Each connection is served by one goroutine that owns its buffers and parse state; requests on one
// connection run in order, one at a time. Once a request has started (a partial line, a data block, a
// binary header), the whole of it must arrive within Config.ReadTimeout of the server's first wait for it,
// or the connection is closed; between requests only IdleTimeout applies (idle_kicks counts those closes).
// Store methods are called concurrently from many connections. Server counters are atomics; the item-state
// and stats-detail tables have their own locks. Shutdown may be called from any goroutine: it stops the
// listeners, closes connections that are between requests, and waits for the others to finish the request
// they are executing (later pipelined requests already received are dropped unanswered).
//
// # Ownership of buffers
//
// The line being parsed lives in the connection's read buffer; Command and MetaCommand slices point into it
// (a base64 key into the connection's key buffer). Keys passed to the Store and data blocks are fresh copies
// the Store may keep (see Store).
package memcache
