package client

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// toyStore is a fake node's data: siblings per key with a version counter as the causal context. A put
// whose context is the key's current version, or a blind one, supersedes every sibling; any other put adds
// a sibling (what the real node does for two puts with the same context, or without one).
type toyStore struct {
	mu   sync.Mutex
	keys map[string]*toyEntry
	ver  uint64
}

type toyEntry struct {
	vals []Value
	ver  uint64
}

func newToyStore() *toyStore { return &toyStore{keys: map[string]*toyEntry{}} }

func ctxBytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (s *toyStore) body(e *toyEntry) map[string]any {
	vals := make([]any, len(e.vals))
	meta := make([]any, len(e.vals))
	for i, v := range e.vals {
		vals[i] = v.Data
		meta[i] = map[string]any{"flags": v.Flags, "expiry": v.Expiry, "last_modified": v.LastModified}
	}
	return map[string]any{"values": vals, "metadata": meta, "context": ctxBytes(e.ver)}
}

func optMap(params []any, i int) map[string]any {
	if i < len(params) {
		if m, ok := params[i].(map[string]any); ok {
			return m
		}
	}
	return map[string]any{}
}

// handle serves get/put/delete; ok is false for other methods.
func (s *toyStore) handle(method string, params []any) (res, rerr any, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "get":
		e := s.keys[string(asBytes(params[0]))]
		if e == nil || len(e.vals) == 0 {
			return nil, rpcErr(CodeNotFound, "not found"), true
		}
		return s.body(e), nil, true
	case "put":
		key := string(asBytes(params[0]))
		e := s.keys[key]
		if e == nil {
			e = &toyEntry{}
			s.keys[key] = e
		}
		opts := optMap(params, 3)
		v := Value{Data: asBytes(params[1]), LastModified: time.Now().UnixNano()}
		if f, ok := opts["flags"]; ok {
			v.Flags = uint32(toInt(f))
		}
		blind, _ := opts["blind"].(bool)
		if ctx := asBytes(params[2]); blind || ctx != nil && binary.BigEndian.Uint64(ctx) == e.ver {
			e.vals = []Value{v}
		} else {
			e.vals = append(e.vals, v)
		}
		s.ver++
		e.ver = s.ver
		if rb, _ := opts["return_body"].(bool); rb {
			return s.body(e), nil, true
		}
		return map[string]any{}, nil, true
	case "delete":
		delete(s.keys, string(asBytes(params[0])))
		return true, nil, true
	}
	return nil, nil, false
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return -1
}

// singleNode serves a toy store plus ring/members for a one-node cluster named name at the server's address.
func singleNode(t *testing.T, name string) (*fakeServer, *toyStore) {
	store := newToyStore()
	var s *fakeServer
	s = newFakeServer(t, func(fc *fakeConn, method string, params []any) (any, any) {
		if res, rerr, ok := store.handle(method, params); ok {
			return res, rerr
		}
		switch method {
		case "ring":
			owners := make([]any, 8)
			for i := range owners {
				owners[i] = name
			}
			return map[string]any{"q": 8, "version": 1, "n": 3, "owners": owners}, nil
		case "members":
			return []any{map[string]any{"name": name, "status": "up", "rpc_addr": s.addr(), "memcache_addr": "", "partitions": 8}}, nil
		case "ping":
			return "pong", nil
		}
		return nil, rpcErr(CodeUnknownMethod, "no such method "+method)
	})
	return s, store
}
