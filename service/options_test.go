package service

import (
	"errors"
	"testing"
	"time"

	rpc "github.com/gokai-kv/gokai/protocol/msgpackrpc"
)

// TestOptions: the shared read and write options parse what clients send and refuse the rest with
// bad_request.
func TestOptions(t *testing.T) {
	ro, err := ReadOptions(map[string]any{"r": int64(2), "pr": uint8(1), "timeout_ms": int64(250), "notfound_ok": false})
	if err != nil || ro.R != 2 || ro.PR != 1 || ro.Timeout != 250*time.Millisecond || ro.NotFoundOK == nil || *ro.NotFoundOK {
		t.Fatalf("read options: %+v %v", ro, err)
	}
	if ro, err := ReadOptions(nil); err != nil || ro.R != 0 || ro.Timeout != 0 || ro.NotFoundOK != nil {
		t.Fatalf("no options: %+v %v", ro, err)
	}
	wo, err := WriteOptions(map[string]any{"w": int64(3), "pw": int64(2), "timeout_ms": int64(3_600_000)})
	if err != nil || wo.W != 3 || wo.PW != 2 || wo.Timeout != time.Hour {
		t.Fatalf("write options: %+v %v", wo, err)
	}
	for _, bad := range []map[string]any{
		{"r": int64(17)}, {"pr": int64(-1)}, {"timeout_ms": int64(3_600_001)}, {"r": "two"}, {"notfound_ok": int64(1)},
	} {
		_, err := ReadOptions(bad)
		var re *rpc.Error
		if !errors.As(err, &re) || re.Code != rpc.CodeBadRequest {
			t.Errorf("read options %v: %v, want bad_request", bad, err)
		}
	}
	for _, bad := range []map[string]any{{"w": int64(99)}, {"pw": 1.5}} {
		_, err := WriteOptions(bad)
		var re *rpc.Error
		if !errors.As(err, &re) || re.Code != rpc.CodeBadRequest {
			t.Errorf("write options %v: %v, want bad_request", bad, err)
		}
	}
}
