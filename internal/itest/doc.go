// Package itest holds gokai's end-to-end tests: they build the real gokai binary, run it as a separate
// process on 127.0.0.1 (ports chosen by the OS), and drive it with third-party clients (python3-pymemcache,
// libmemcached-tools and memccapable, Dalli, memjs, pylibmc) and raw sockets. Every process and temp dir a
// test starts is cleaned up by the test.
//
// TestCounterCluster runs another binary of gokai's command line, examples/counter/cmd/gokai-counter (KV and
// the counter service), as a cluster under kill -9 and restart, a join and a leave, and checks every
// counter against the outcomes of its increments; -counter.cycles repeats the kill and restart.
//
// TestMemcachedProtocolSuite runs memcached's own t/ tests against gokai nodes (memcached_t_test.go): it
// fetches Debian's memcached source package with apt-get, so it needs the network (Debian's archive), perl
// and gcc; testdata/memcached-t holds the server shim and the list of skipped files and known differences.
//
// Tests skip (with the reason) when a third-party client is not installed; `.ci/run` installs them. The
// disk-full test mounts a small tmpfs for the node's data dir (and unmounts it): it needs root and skips,
// saying so, without. The flood tests measure the node's resident memory in /proc/PID/status.
package itest
