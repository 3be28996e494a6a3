package kv

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpackHandoffItem is the reference framing of a handoff item: what the msgpack library's encoder
// writes for [key, object] as two byte strings.
func msgpackHandoffItem(t testing.TB, key, value []byte) []byte {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	if err := enc.EncodeArrayLen(2); err != nil {
		t.Fatal(err)
	}
	for _, x := range [][]byte{key, value} {
		if err := enc.EncodeBytes(x); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestEncodeHandoffItemMatchesMsgpack compares the hand-written framing with the msgpack encoder's at
// every bin header boundary, and reads each item back.
func TestEncodeHandoffItemMatchesMsgpack(t *testing.T) {
	sizes := []int{0, 1, 255, 256, 65535, 65536, 70000}
	var vn *Vnode // NB: the framing uses no vnode state
	for _, ks := range sizes {
		for _, vs := range sizes {
			key, value := bytes.Repeat([]byte{'k'}, ks), bytes.Repeat([]byte{'v'}, vs)
			got, err := vn.EncodeHandoffItem(key, value)
			if err != nil {
				t.Fatal(err)
			}
			if want := msgpackHandoffItem(t, key, value); !bytes.Equal(got, want) {
				t.Fatalf("key %d B, value %d B: framed %x..., msgpack %x...", ks, vs, got[:min(8, len(got))], want[:min(8, len(want))])
			}
			if cap(got) != len(got) {
				t.Fatalf("key %d B, value %d B: %d bytes in a buffer of %d", ks, vs, len(got), cap(got))
			}
			k, v, err := DecodeHandoffItem(got)
			if err != nil || !bytes.Equal(k, key) || !bytes.Equal(v, value) {
				t.Fatalf("key %d B, value %d B: decoded %d / %d B, %v", ks, vs, len(k), len(v), err)
			}
		}
	}
}

func BenchmarkEncodeHandoffItem(b *testing.B) {
	var vn *Vnode
	key, value := []byte("key-00012345-042"), bytes.Repeat([]byte{0x5a}, 160)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vn.EncodeHandoffItem(key, value); err != nil {
			b.Fatal(err)
		}
	}
}
