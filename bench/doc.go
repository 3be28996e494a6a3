// Package bench is gokai's load generator and benchmark harness: it drives a server with a configured mix of
// reads and writes over many connections and reports throughput and latency quantiles.
//
// It owns: the benchmark configuration (Config), the workload generator (Workload: which key, read or write,
// from a seeded random stream), a log-linear latency histogram (Histogram, mergeable, no allocation per
// record), the protocol clients it speaks (Client: memcache's text protocol, its binary protocol and its
// meta commands, and gokai's msgpack-RPC get and blind put, raw over the connection with every reply framed
// and bounded by internal/mpscan before it is decoded), the runner (Run) and its report (Report: a table for people, JSON for machines), and the comparison
// of several reports (ParseSummary, BuildTable: medians over rounds and ratios against a baseline target, the
// table `gokai bench table` and scripts/bench.sh print).
//
// It does not own: any server, the gokai client library, or what a result means for a release.
//
// Two load models:
//
//   - Closed loop (Rate 0): every connection keeps Pipeline requests in flight. memcache (all three of its
//     protocols) answers in order:
//     the worker sends a batch of Pipeline requests and the next batch as soon as the previous replies
//     arrived; latency is measured from the batch's send to each reply. msgpack-RPC matches replies by msgid:
//     the worker keeps a sliding window, sending a new request into each slot as soon as its reply arrives
//     (in any order), so exactly Pipeline requests stay in flight; latency runs from each request's send.
//     Requests a worker sends at once (a batch, the first window) are written before any reply is read:
//     keep Pipeline × value size below what the socket buffers hold.
//   - Open loop (Rate > 0): every connection owns a fixed schedule of intended send times (Rate/Conns ops/s,
//     connections phase-shifted). A request that cannot be sent on time because the connection is still
//     waiting for earlier replies is sent late, and its latency is measured from its intended send time, so
//     a stalled server shows up in the quantiles instead of being hidden (no coordinated omission). Open loop
//     sends batches for every protocol; a msgpack-RPC reply that overtakes an older one is timed when the
//     older one arrives.
//
// A run stops when Duration has passed or Ops operations were issued, whichever comes first; requests in
// flight then finish. A hard cap of Duration+5s closes connections that are still waiting.
//
// Errors: an unexpected reply or an I/O error counts one error per affected operation. A reply that leaves the
// connection in step (SERVER_ERROR, NOT_STORED, ..., a msgpack-RPC error other than a get's not_found, which
// is a miss) keeps the connection; anything else closes it and the worker reconnects with backoff, giving up
// after a few consecutive failed dials.
//
// Concurrency: Run owns one goroutine per connection (a worker); a worker owns its connection, Client,
// Workload and histograms and shares only an atomic operation counter. Results are merged after the workers
// stopped. Histogram, Workload and Client are not safe for concurrent use.
package bench
