package service

import (
	"fmt"
	"time"

	"github.com/gokai-kv/gokai/coordinator"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
)

// The request options every service's msgpack-RPC methods share (docs/msgpack-rpc.md): a read's r, pr,
// timeout_ms and notfound_ok, a write's w, pw and timeout_ms. A service parses them with ReadOptions and
// WriteOptions, so its methods take them as KV's do; OptInt and Timeout parse options of its own.

// MaxQuorum bounds r, pr, w and pw (the coordinator checks them against N).
const MaxQuorum = 16

// MaxTimeout bounds timeout_ms.
const MaxTimeout = time.Hour

// OptInt reads the integer option key of opts (0 when absent), in 0..hi; a bad_request error otherwise.
func OptInt(opts map[string]any, key string, hi int64) (int, error) {
	v, ok, err := rpc.Int(opts, key)
	if err != nil || !ok {
		return 0, err
	}
	if v < 0 || v > hi {
		return 0, &rpc.Error{Code: rpc.CodeBadRequest, Message: fmt.Sprintf("option %s=%d out of range 0..%d", key, v, hi)}
	}
	return int(v), nil
}

// Timeout reads timeout_ms (0, the node's default, when absent), at most MaxTimeout.
func Timeout(opts map[string]any) (time.Duration, error) {
	ms, err := OptInt(opts, "timeout_ms", MaxTimeout.Milliseconds())
	return time.Duration(ms) * time.Millisecond, err
}

// ReadOptions reads a read's options: r, pr, timeout_ms, notfound_ok.
func ReadOptions(opts map[string]any) (coordinator.ReadOptions, error) {
	var ro coordinator.ReadOptions
	var err error
	if ro.R, err = OptInt(opts, "r", MaxQuorum); err != nil {
		return ro, err
	}
	if ro.PR, err = OptInt(opts, "pr", MaxQuorum); err != nil {
		return ro, err
	}
	if ro.Timeout, err = Timeout(opts); err != nil {
		return ro, err
	}
	v, ok, err := rpc.Bool(opts, "notfound_ok")
	if err != nil {
		return ro, err
	}
	if ok {
		ro.NotFoundOK = &v
	}
	return ro, nil
}

// WriteOptions reads a write's options: w, pw, timeout_ms.
func WriteOptions(opts map[string]any) (coordinator.WriteOptions, error) {
	var wo coordinator.WriteOptions
	var err error
	if wo.W, err = OptInt(opts, "w", MaxQuorum); err != nil {
		return wo, err
	}
	if wo.PW, err = OptInt(opts, "pw", MaxQuorum); err != nil {
		return wo, err
	}
	wo.Timeout, err = Timeout(opts)
	return wo, err
}
