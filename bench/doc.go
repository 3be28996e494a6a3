// Package bench is gokai's load generator and benchmark harness: it drives a server with a configured mix of
// reads and writes over many connections and reports throughput and latency quantiles.
//
// It owns: the benchmark configuration (Config), the workload generator (Workload: which key, read or write,
// from a seeded random stream), a log-linear latency histogram (Histogram, mergeable, no allocation per
// record), the protocol clients it speaks (Client; memcache text protocol today, msgpack-RPC later), the
// runner (Run) and its report (Report: a table for people, JSON for machines).
//
// It does not own: any server, the gokai client library, or what a result means for a release.
//
// Two load models:
//
//   - Closed loop (Rate 0): every connection keeps Pipeline requests in flight, sends the next batch as soon
//     as the previous replies arrived. Latency is measured from the batch's send to each reply.
//   - Open loop (Rate > 0): every connection owns a fixed schedule of intended send times (Rate/Conns ops/s,
//     connections phase-shifted). A request that cannot be sent on time because the connection is still
//     waiting for earlier replies is sent late, and its latency is measured from its intended send time, so
//     a stalled server shows up in the quantiles instead of being hidden (no coordinated omission).
//
// A run stops when Duration has passed or Ops operations were issued, whichever comes first; requests in
// flight then finish. A hard cap of Duration+5s closes connections that are still waiting.
//
// Errors: an unexpected reply or an I/O error counts one error per affected operation. A reply that leaves the
// connection in step (SERVER_ERROR, NOT_STORED, ...) keeps the connection; anything else closes it and the
// worker reconnects with backoff, giving up after a few consecutive failed dials.
//
// Concurrency: Run owns one goroutine per connection (a worker); a worker owns its connection, Client,
// Workload and histograms and shares only an atomic operation counter. Results are merged after the workers
// stopped. Histogram, Workload and Client are not safe for concurrent use.
package bench
