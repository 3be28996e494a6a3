// Package mpscan is a bounded MessagePack pre-scanner: the guard in front of every decode of bytes that
// came from the network.
//
// General-purpose msgpack decoders trust declared lengths. vmihailenco/msgpack v5.4.1 preallocates what a
// header declares, so the five bytes dd ff ff ff ff (an array32 of 4 billion elements) decoded into any kill
// the process with an unrecoverable out-of-memory; map32 likewise; bin32 allocates what it declares; and a
// few KiB of nested array16 headers allocate about 1 GiB. Scan walks the value's structure first, without
// allocating, and checks every declared length against the bytes present and against Limits, so a decoder
// run on the scanned bytes allocates at most a bounded multiple of their size.
//
// # What it owns
//
//   - Scan: does b begin with one complete msgpack value within Limits, and how long is it.
//   - Scanner: the same check resumed as a stream grows, so framing a message that arrives in many reads
//     costs time linear in its size (Scan from scratch after every read would be quadratic).
//   - Scanner.Skip: the same check again, over bytes the caller drops as they arrive, to find where a
//     message ends without holding it (a server refusing a message it has no memory for).
//
// It does not decode, validate UTF-8 in str, interpret ext types, or check map keys for duplicates or type;
// the decoder run afterwards does that.
//
// # Errors
//
// ErrIncomplete means "read more": b is a proper prefix of a value that could still be valid within the
// Limits. A header whose declared length (or element count, one byte at least per element) cannot fit in
// Limits.MaxBytes is ErrTooLarge at once, without waiting for the bytes. ErrTooDeep, ErrTooManyElems and
// ErrMalformed (the never-used byte 0xc1) are final as well. Work is linear in the bytes present: an array
// declaring billions of elements costs one header check, never a loop over the declared count.
//
// # Concurrency
//
// Scan is a pure function and safe for concurrent use. A Scanner is owned by one goroutine. Neither Scan
// nor Skip allocates.
package mpscan
