package client

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzReplies feeds arbitrary bytes, as a node's side of a connection, through the client's framing and
// reply decoding: it must never panic or allocate beyond the scanned bytes, whatever the headers declare.
func FuzzReplies(f *testing.F) {
	seed := func(v ...any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(1, 1, nil, map[string]any{"values": []any{[]byte("v")}, "metadata": []any{map[string]any{"flags": 1}}, "context": []byte{1}}))
	f.Add(seed(1, 1, map[string]any{"code": "timeout", "need": 2, "got": 1}, nil))
	f.Add(seed(1, 1, "plain error", nil))
	f.Add(seed(2, "event", []any{}))
	f.Add(seed(1, 1, nil, map[string]any{"values": []any{1}, "metadata": "x"}))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x94, 0x01, 0x01, 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &conn{addr: "fuzz", pending: map[uint32]*call{}}
		var br bytes.Reader
		dec := msgpack.NewDecoder(&br)
		sc := mpscan.NewScanner(mpscan.Limits{MaxBytes: 1 << 16})
		for len(b) > 0 {
			ca := &call{done: make(chan struct{}), decode: func(d *msgpack.Decoder) error {
				_, err := decodeObject(d)
				return err
			}}
			c.pending[1] = ca
			n, err := sc.Scan(b)
			if err != nil {
				if !errors.Is(err, mpscan.ErrIncomplete) {
					sc.Reset()
				}
				return
			}
			if err := c.dispatch(b[:n], &br, dec); err != nil {
				return
			}
			b = b[n:]
		}
	})
}
