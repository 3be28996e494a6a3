// Package memcache is gokai's memcache face: the text protocol of memcached's doc/protocol.txt, served over
// gokai's Dynamo-style store.
//
// # What it owns
//
//   - A pure parser (ParseCommand, Command.Parse): one request line in, a Command or a *ProtocolError out. No
//     I/O, no clock. ExpiryAt turns a protocol exptime into an absolute time given "now".
//   - A server (NewServer, Serve, Shutdown): one goroutine per connection, pooled bufio buffers, replies
//     flushed once per pipelined batch, timeouts, a connection limit, memcached's general stats.
//   - The Store interface it needs from the node (store.go), and the mapping of each command onto it.
//
// It does not own replication, versions or conflict resolution (the node behind Store does), the binary or
// meta protocols, UDP, SASL, or eviction.
//
// # Commands over Store
//
// What a write supersedes is explicit (Supersede, store.go): the siblings a read returned (its Context), or
// everything the coordinating replica holds (Blind), or nothing (the zero value). Every command that reads or
// conditions on the current value first calls Store.Get, then writes with Supersede{Context: Entry.Context},
// so it supersedes exactly the siblings it saw and never one it did not see. Only plain set is blind. Values
// whose Expiry has passed are not found (the Store hides them; the server checks again against Config.Now).
//
//	get k...        VALUE <key> <flags> <bytes> + data for the Chosen sibling of each found key; END.
//	gets k...       every live sibling as its own VALUE <key> <flags> <bytes> <cas> item, all with the same
//	                cas (Entry.Cas names the sibling set); the Chosen sibling comes last, so clients that
//	                keep the last item per key see what get returns. END.
//	set             Store.Set(v, Supersede{Blind: true}): a blind write (memcached's last writer wins); it
//	                supersedes what the coordinating replica holds, and concurrent siblings that replica
//	                had not seen survive.
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
//	gat/gats        touch each found key, then reply like get/gets; gats reads the key again so its cas
//	                names the new sibling set.
//	delete          Get; not found -> NOT_FOUND; else Delete with Context -> DELETED.
//	flush_all [d]   disabled unless Config.FlushAllEnabled (CLIENT_ERROR flush_all disabled); else
//	                Store.FlushAll now, or after the delay d (an exptime) on a timer that Shutdown cancels.
//	stats           memcached's general stats this server tracks, then Store.Stats(), then END.
//	                "stats settings" lists the Config; "stats reset" zeroes the counters (RESET);
//	                "stats items|slabs|sizes|conns" answer an empty END; any other argument is ERROR.
//	version         VERSION <Config.Version>. verbosity: OK (ignored). quit: close the connection.
//
// None of this is linearizable across replicas, as in Kai: the read-then-write commands (add, replace,
// append, prepend, cas, incr, decr, touch, delete) are not atomic. Two clients that add the same key, or cas
// with the same unique through different coordinators, may both succeed; their writes then become siblings
// (the store's dotted version vectors keep both) rather than one losing silently. Concurrent incr on one key
// can produce siblings whose values each counted one increment; get shows the newest. Use gets to see
// siblings and cas to resolve them.
//
// # Errors and keeping the stream in sync
//
// ERROR answers an unknown command, or a known one with the wrong number of arguments (as memcached).
// CLIENT_ERROR answers malformed input; SERVER_ERROR a Store failure or an oversized value ("SERVER_ERROR
// object too large for cache", memcached's text, which libmemcached maps to E2BIG). After any of them the
// connection keeps serving, in sync:
//
//   - A storage line whose <bytes> field is readable but which is otherwise bad (key too long or holding a
//     control character, bad flags/exptime/cas, value too large) is answered and its data block read and
//     discarded, as memcached does for a too-large value. For the other cases memcached does not swallow
//     the block and then runs the data as commands; gokai swallows it.
//   - A storage line whose <bytes> field is missing, unparsable, or uncertain (a wrong number of tokens, or
//     an extra one that is not noreply, as a key with a space in it produces) leaves an unknown amount of
//     data on the wire that must not be executed as commands, so the server answers "CLIENT_ERROR bad
//     command line format" and closes the connection (memcached answers ERROR or CLIENT_ERROR and reads on).
//   - A data block not followed by CRLF is answered "CLIENT_ERROR bad data chunk"; the server then discards
//     input through the next newline, which is where a client that sent too many bytes meant the block to
//     end.
//   - A line longer than Config.MaxLineBytes is discarded through its newline and answered
//     "CLIENT_ERROR line too long".
//
// A request the node's memory budget (Config.Memory, shared with msgpack-RPC) has no room for is answered
// with memcached's texts and the connection keeps serving: "SERVER_ERROR out of memory storing object" for
// a data block (reserved before it is read; when refused it is read and dropped, never kept), "SERVER_ERROR
// out of memory reading request" for a long request line (its growth past 16 KiB is reserved as it grows;
// when refused the line is read to its end and dropped), "SERVER_ERROR out of memory writing get response"
// for the values of a get reply (reserved before they are written), which ends that reply.
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
// Keys: 1 to 250 bytes, no control characters (0x00-0x1f, 0x7f); tokens are separated by spaces only, so a
// tab inside a key is a CLIENT_ERROR (memcached itself does not check; gomemcache's client does).
//
// # Concurrency
//
// Each connection is served by one goroutine that owns its buffers and parse state; requests on one
// connection run in order, one at a time. Once a request has started (a partial line, a data block), the
// whole of it must arrive within Config.ReadTimeout of the server's first wait for it, or the connection
// is closed; between requests only IdleTimeout applies. Store methods are called concurrently from many connections.
// Server counters are atomics. Shutdown may be called from any goroutine: it stops the listeners, closes
// connections that are between requests, and waits for the others to finish the request they are executing
// (later pipelined requests already received are dropped unanswered).
//
// # Ownership of buffers
//
// The line being parsed lives in the connection's read buffer; Command slices point into it. Keys passed to
// the Store and data blocks are fresh copies the Store may keep (see Store).
package memcache
