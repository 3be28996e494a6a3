package client

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
)

// decodeGeneric decodes what an encoder wrote, the slow generic way, for comparison.
func decodeGeneric(t *testing.T, b []byte) any {
	t.Helper()
	if _, err := mpscan.Scan(b, mpscan.Limits{}); err != nil {
		t.Fatalf("encoded bytes do not scan: %v", err)
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	v, err := d.DecodeInterfaceLoose()
	if err != nil {
		t.Fatal(err)
	}
	return normalize(v)
}

// normalize turns every integer into int64, recursively.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint())
	}
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

func TestEncodeOpts(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  func(e *msgpack.Encoder) error
		want map[string]any
	}{
		{"read nil", func(e *msgpack.Encoder) error { return encodeReadOpts(e, nil) }, map[string]any{}},
		{"read zero", func(e *msgpack.Encoder) error { return encodeReadOpts(e, &ReadOptions{}) }, map[string]any{}},
		{"read all", func(e *msgpack.Encoder) error {
			no := false
			return encodeReadOpts(e, &ReadOptions{R: 1, PR: 2, Timeout: 1500 * time.Microsecond, NotFoundOK: &no})
		}, map[string]any{"r": int64(1), "pr": int64(2), "timeout_ms": int64(2), "notfound_ok": false}},
		{"read negative passes through", func(e *msgpack.Encoder) error { return encodeReadOpts(e, &ReadOptions{R: -1}) },
			map[string]any{"r": int64(-1)}},
		{"write all", func(e *msgpack.Encoder) error {
			return encodeWriteOpts(e, &WriteOptions{W: 3, PW: 1, Timeout: time.Second, ReturnBody: true, Flags: 9, Expiry: 1700000000}, true)
		}, map[string]any{"w": int64(3), "pw": int64(1), "timeout_ms": int64(1000), "return_body": true, "flags": int64(9), "expiry": int64(1700000000)}},
		{"delete drops put fields", func(e *msgpack.Encoder) error {
			return encodeWriteOpts(e, &WriteOptions{W: 1, ReturnBody: true, Flags: 9}, false)
		}, map[string]any{"w": int64(1)}},
		{"blind put", func(e *msgpack.Encoder) error {
			return encodeWriteOpts(e, &WriteOptions{Blind: true, Flags: 2}, true)
		}, map[string]any{"blind": true, "flags": int64(2)}},
		{"blind delete", func(e *msgpack.Encoder) error {
			return encodeWriteOpts(e, &WriteOptions{Blind: true, W: 2}, false)
		}, map[string]any{"blind": true, "w": int64(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.enc(msgpack.NewEncoder(&buf)); err != nil {
				t.Fatal(err)
			}
			got := decodeGeneric(t, buf.Bytes())
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestEncodeRequest(t *testing.T) {
	e := getEncoder()
	defer putEncoder(e)
	err := encodeRequest(e, 77, "put", func(enc *msgpack.Encoder) error {
		if err := enc.EncodeArrayLen(4); err != nil {
			return err
		}
		_ = enc.EncodeBytes([]byte("k"))
		_ = enc.EncodeBytes([]byte{})
		_ = encodeBin(enc, nil)
		return encodeWriteOpts(enc, nil, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeGeneric(t, e.buf.Bytes())
	want := []any{int64(0), int64(77), "put", []any{[]byte("k"), []byte{}, nil, map[string]any{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

func TestDecodeResults(t *testing.T) {
	dec := func(v any) *msgpack.Decoder {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return msgpack.NewDecoder(bytes.NewReader(b))
	}
	obj, err := decodeObject(dec(map[string]any{
		"values":   []any{[]byte("a"), "b", []byte{}},
		"metadata": []any{map[string]any{"flags": 1, "expiry": 2, "last_modified": 3}, map[string]any{}, map[string]any{"x": 1}},
		"context":  []byte{9, 9},
		"extra":    map[string]any{"ignored": true},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Object{Values: []Value{{Data: []byte("a"), Flags: 1, Expiry: 2, LastModified: 3}, {Data: []byte("b")}, {Data: []byte{}}}, Context: []byte{9, 9}}
	if !reflect.DeepEqual(obj, want) {
		t.Fatalf("object %+v, want %+v", obj, want)
	}
	if o, err := decodeObject(dec(map[string]any{})); err != nil || len(o.Values) != 0 {
		t.Fatalf("empty object: %+v %v", o, err)
	}
	if _, err := decodeObject(dec(map[string]any{"values": []any{[]byte("a")}, "metadata": []any{}})); err == nil {
		t.Fatal("values/metadata length mismatch: want an error")
	}
	if _, err := decodeObject(dec([]any{1})); err == nil {
		t.Fatal("array for an object: want an error")
	}

	ri, err := decodeRing(dec(map[string]any{"q": 2, "version": uint64(1) << 40, "n": 3, "owners": []any{"a", "b"}}))
	if err != nil || !reflect.DeepEqual(ri, &RingInfo{Q: 2, Version: 1 << 40, N: 3, Owners: []string{"a", "b"}}) {
		t.Fatalf("ring %+v %v", ri, err)
	}
	ms, err := decodeMembers(dec([]any{map[string]any{"name": "a", "status": "up", "rpc_addr": "h:1", "memcache_addr": "h:2", "partitions": 64}}))
	if err != nil || !reflect.DeepEqual(ms, []Member{{Name: "a", Status: "up", RPCAddr: "h:1", MemcacheAddr: "h:2", Partitions: 64}}) {
		t.Fatalf("members %+v %v", ms, err)
	}
	pl, err := decodePreflist(dec([]any{map[string]any{"partition": 5, "node": "a", "primary": true}}))
	if err != nil || !reflect.DeepEqual(pl, []PrefEntry{{Partition: 5, Node: "a", Primary: true}}) {
		t.Fatalf("preflist %+v %v", pl, err)
	}
	v, err := decodeVersion(dec(map[string]any{"version": "0.1.0", "protocol": 1}))
	if err != nil || v != (VersionInfo{Version: "0.1.0", Protocol: 1}) {
		t.Fatalf("version %+v %v", v, err)
	}
	st, err := decodeStats(dec(map[string]any{"a": 1, "b": -5, "c": "node1", "d": uint64(1) << 63, "e": 1.5, "f": int64(1) << 40}))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := st.Int("a"); !ok || n != 1 {
		t.Fatalf("stats a: %v", st)
	}
	if n, _ := st.Int("b"); n != -5 {
		t.Fatalf("stats b: %v", st)
	}
	if n, _ := st.Int("f"); n != 1<<40 {
		t.Fatalf("stats f: %v", st)
	}
	if st.String("c") != "node1" || st.String("d") != "9223372036854775808" || st.String("e") != "1.5" || st.String("zz") != "" {
		t.Fatalf("stats strings: %v", st)
	}
}
