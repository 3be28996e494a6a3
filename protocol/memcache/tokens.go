package memcache

// Protocol tokens as named byte slices, so a grep for a reply finds every place that writes it.
var (
	crlf    = []byte("\r\n")
	noreply = []byte("noreply")

	// Reply lines, each with its terminator.
	replyStored      = []byte("STORED\r\n")
	replyNotStored   = []byte("NOT_STORED\r\n")
	replyExists      = []byte("EXISTS\r\n")
	replyNotFound    = []byte("NOT_FOUND\r\n")
	replyDeleted     = []byte("DELETED\r\n")
	replyTouched     = []byte("TOUCHED\r\n")
	replyOK          = []byte("OK\r\n")
	replyEnd         = []byte("END\r\n")
	replyReset       = []byte("RESET\r\n")
	replyError       = []byte("ERROR\r\n")
	replyTooManyConn = []byte("ERROR Too many open connections\r\n") // memcached 1.6's text

	// Reply prefixes, followed by fields and a CRLF.
	prefixValue       = []byte("VALUE ")
	prefixStat        = []byte("STAT ")
	prefixVersion     = []byte("VERSION ")
	prefixClientError = []byte("CLIENT_ERROR ")
	prefixServerError = []byte("SERVER_ERROR ")
)

// Messages that follow CLIENT_ERROR or SERVER_ERROR. Where memcached has a message for the same case the text
// is memcached's, so clients that match on it (libmemcached maps "object too large for cache" to E2BIG) keep
// working.
const (
	msgBadFormat     = "bad command line format"
	msgDeleteUsage   = "bad command line format.  Usage: delete <key> [noreply]"
	msgKeyTooLong    = msgBadFormat // memcached's text for a key over 250 bytes
	msgBadKey        = "key contains a control character"
	msgBadDelta      = "invalid numeric delta argument"
	msgBadExptime    = "invalid exptime argument"
	msgTooLarge      = "object too large for cache"
	msgLineTooLong   = "line too long"
	msgBadDataChunk  = "bad data chunk"
	msgNonNumeric    = "cannot increment or decrement non-numeric value"
	msgFlushDisabled = "flush_all not allowed"
	msgDetailUsage   = "usage: stats detail on|off|dump"
	// Login (Config.Users): memcached's -Y texts.
	msgUnauthenticated = "unauthenticated"
	msgAuthFailed      = "authentication failure"
	msgBadAuthToken    = "bad authentication token format"
	msgBadAuthEnd      = "bad command line termination"
	// memcached's texts for a request it has no memory for.
	msgNoMemStoring = "out of memory storing object"
	msgNoMemReading = "out of memory reading request"
	msgNoMemWriting = "out of memory writing get response"
	// msgStoreFailed answers a Store error that is not a *StoreError: its text stays in the log.
	msgStoreFailed = "store error; the details are in the server's log"
)
