package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/protocol/memcache"
	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
	"github.com/gokai-kv/gokai/storage"
)

// TestClientErrorsLeakNoPaths: every error a client can be sent, on either face, is made of the request's
// own terms; the storage failures behind them, which quote the data directory, stay in the log.
func TestClientErrorsLeakNoPaths(t *testing.T) {
	const dir = "/srv/gokai-data/leveldb"
	pathErr := &fs.PathError{Op: "write", Path: dir + "/000042.log", Err: syscall.ENOSPC}
	ioErr := &fs.PathError{Op: "read", Path: dir + "/000007.ldb", Err: syscall.EIO}
	// What a coordinator returns when its coordinating replica's disk is full: the vnode's reply code
	// crosses as a string, and the coordinator turns it back into the sentinel.
	diskFull := fmt.Errorf("coordinator: replica: %w: storage: put partition 3: %w", storage.ErrDiskFull, pathErr)
	for _, tc := range []struct {
		name     string
		err      error
		code     string
		mcReply  string
		inClient string // a substring the client must see
	}{
		{"disk full", diskFull, rpc.CodeDiskFull, "SERVER_ERROR out of space\r\n", "disk is full"},
		{"storage error of a replica", fmt.Errorf("coordinator: replica: storage: get partition 3: %v", ioErr),
			rpc.CodeInternal, "SERVER_ERROR " + MsgInternal + "\r\n", "internal"},
		{"quorum with replica errors", &coordinator.QuorumError{Op: "put", Need: 2, Got: 1,
			Errs: []string{"storage: put partition 3: " + pathErr.Error()}},
			rpc.CodeQuorumFailed, "SERVER_ERROR coordinator: put quorum failed: need 2 replies, got 1\r\n", "need 2"},
		{"timeout", &coordinator.QuorumError{Op: "get", Need: 2, Got: 0, Timeout: true, Errs: []string{ioErr.Error()}},
			rpc.CodeTimeout, "SERVER_ERROR coordinator: get timed out: need 2 replies, got 0\r\n", "timed out"},
		{"overload", coordinator.ErrOverload, rpc.CodeOverload,
			"SERVER_ERROR overload: too many requests in flight, retry later\r\n", "retry later"},
		{"shutting down", fmt.Errorf("x: %w", coordinator.ErrShuttingDown), rpc.CodeShuttingDown,
			"SERVER_ERROR " + MsgShuttingDown + "\r\n", "shutting down"},
		{"context", fmt.Errorf("put: %w", context.DeadlineExceeded), rpc.CodeTimeout,
			"SERVER_ERROR " + MsgTimeout + "\r\n", "deadline"},
		{"bad request", fmt.Errorf("%w: r 5 > n 3", coordinator.ErrBadRequest), rpc.CodeBadRequest,
			"SERVER_ERROR coordinator: bad request: r 5 > n 3\r\n", "r 5 > n 3"},
		{"anything else", fmt.Errorf("open %s/LOCK: %w", dir, syscall.EACCES), rpc.CodeInternal,
			"SERVER_ERROR " + MsgInternal + "\r\n", "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var re *rpc.Error
			if !errors.As(RPCError(tc.err), &re) || re.Code != tc.code {
				t.Fatalf("RPCError = %+v, want code %s", re, tc.code)
			}
			if strings.Contains(re.Message, "/") || !strings.Contains(re.Message, tc.inClient) {
				t.Fatalf("RPCError message %q: want %q and no path", re.Message, tc.inClient)
			}
			for k, v := range re.Fields {
				if strings.Contains(fmt.Sprint(v), "/") {
					t.Fatalf("field %s = %v", k, v)
				}
			}
			if !errors.Is(re, tc.err) {
				t.Fatal("the cause is not kept for the log")
			}
			got := string(memcache.ReplyFor(MemcacheError(tc.err)))
			if got != tc.mcReply {
				t.Fatalf("memcache reply %q, want %q", got, tc.mcReply)
			}
		})
	}
}

// TestRPCErrorKeepsAServicesOwnAnswer: a method's *rpc.Error reaches the client as the method made it.
func TestRPCErrorKeepsAServicesOwnAnswer(t *testing.T) {
	own := &rpc.Error{Code: rpc.CodeNotFound, Message: "no such counter"}
	var re *rpc.Error
	if !errors.As(RPCError(fmt.Errorf("wrapped: %w", own)), &re) || re != own {
		t.Fatalf("RPCError = %v, want the method's own error", re)
	}
	if RPCError(nil) != nil || MemcacheError(nil) != nil {
		t.Fatal("nil is an error")
	}
}
