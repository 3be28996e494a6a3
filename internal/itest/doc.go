// Package itest holds gokai's end-to-end tests: they build the real gokai binary, run it as a separate
// process on 127.0.0.1 (ports chosen by the OS), and drive it with third-party clients (python3-pymemcache,
// libmemcached-tools) and raw sockets. Every process and temp dir a test starts is cleaned up by the test.
//
// Tests skip (with the reason) when a third-party client is not installed; `.ci/run` installs them. The
// disk-full test mounts a small tmpfs for the node's data dir (and unmounts it): it needs root and skips,
// saying so, without. The flood tests measure the node's resident memory in /proc/PID/status.
package itest
