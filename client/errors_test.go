package client

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestErrorIs(t *testing.T) {
	all := []error{ErrNotFound, ErrTimeout, ErrQuorum, ErrOverload, ErrTooLarge, ErrTooManySiblings,
		ErrBadRequest, ErrUnknownMethod, ErrShuttingDown, ErrInternal, ErrDiskFull}
	codes := []string{CodeNotFound, CodeTimeout, CodeQuorumFailed, CodeOverload, CodeTooLarge,
		CodeTooManySiblings, CodeBadRequest, CodeUnknownMethod, CodeShuttingDown, CodeInternal, CodeDiskFull}
	for i, code := range codes {
		err := fmt.Errorf("wrapped: %w", &Error{Code: code, Message: "m"})
		for j, s := range all {
			if got := errors.Is(err, s); got != (i == j) {
				t.Errorf("errors.Is(%s, %v) = %v", code, s, got)
			}
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != code {
			t.Errorf("errors.As(%s): %v", code, e)
		}
	}
	future := &Error{Code: "ring_moved"}
	for _, s := range all {
		if errors.Is(future, s) {
			t.Errorf("unknown code matches %v", s)
		}
	}
	if got := (&Error{Code: CodeNotFound, Message: "not found"}).Error(); got != "gokai: not_found: not found" {
		t.Errorf("Error() = %q", got)
	}
}

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want Error
	}{
		{"quorum", map[string]any{"code": "quorum_failed", "message": "m", "need": 2, "got": 1, "primary": true},
			Error{Code: CodeQuorumFailed, Message: "m", Need: 2, Got: 1, Primary: true}},
		{"too large", map[string]any{"code": "too_large", "message": "big", "limit": 16 << 20, "new_field": []any{1}},
			Error{Code: CodeTooLarge, Message: "big", Limit: 16 << 20}},
		{"bin keys", binKeyMap{"code": "overload", "message": "busy"}, Error{Code: CodeOverload, Message: "busy"}},
		{"no code", map[string]any{"message": "x"}, Error{Code: CodeInternal, Message: "x"}},
		{"plain string (other servers)", "boom", Error{Code: CodeInternal, Message: "boom"}},
		{"bin string", []byte("boom"), Error{Code: CodeInternal, Message: "boom"}},
		{"number", 42, Error{Code: CodeInternal, Message: "42"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := msgpack.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeError(msgpack.NewDecoder(bytes.NewReader(b)))
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("decodeError = %+v, want %+v", *got, tc.want)
			}
		})
	}
	// A field of the wrong type is reported, not panicked on.
	b, _ := msgpack.Marshal(map[string]any{"code": 7})
	if e := decodeError(msgpack.NewDecoder(bytes.NewReader(b))); e.Code != CodeInternal {
		t.Fatalf("bad code type: %+v", e)
	}
}

func TestRefreshHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&opError{op: "dial", err: errUnexpected}, true},
		{fmt.Errorf("%w: %w", ErrUnavailable, &opError{op: "read", err: errUnexpected}), true},
		{&Error{Code: CodeShuttingDown}, true},
		{&Error{Code: CodeQuorumFailed, Primary: true}, true},
		{&Error{Code: CodeQuorumFailed}, false},
		{&Error{Code: CodeNotFound}, false},
		{ErrClosed, false},
	} {
		if got := refreshHint(tc.err); got != tc.want {
			t.Errorf("refreshHint(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Seeds: []string{"127.0.0.1:1"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Seeds = nil }, "Config.Seeds"},
		{func(c *Config) { c.Seeds = []string{""} }, "Config.Seeds[0]"},
		{func(c *Config) { c.PoolSize = -1 }, "Config.PoolSize = -1"},
		{func(c *Config) { c.PoolSize = 5000 }, "Config.PoolSize = 5000"},
		{func(c *Config) { c.DialTimeout = -1 }, "Config.DialTimeout"},
		{func(c *Config) { c.RequestTimeout = -1 }, "Config.RequestTimeout"},
		{func(c *Config) { c.RefreshInterval = -1 }, "Config.RefreshInterval"},
		{func(c *Config) { c.MaxResponseBytes = 10 }, "Config.MaxResponseBytes = 10"},
	} {
		c := ok
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("Validate() = %v, want mention of %q", err, tc.want)
		}
	}
	d := ok.withDefaults()
	if d.PoolSize != 4 || d.RefreshInterval != DefaultRefreshInterval || d.RequestTimeout != DefaultRequestTimeout {
		t.Fatalf("defaults: %+v", d)
	}
}

// binKeyMap encodes as a map whose keys and values are bin (as some msgpack libraries pack strings).
type binKeyMap map[string]string

func (m binKeyMap) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeMapLen(len(m)); err != nil {
		return err
	}
	for k, v := range m {
		if err := e.EncodeBytes([]byte(k)); err != nil {
			return err
		}
		if err := e.EncodeBytes([]byte(v)); err != nil {
			return err
		}
	}
	return nil
}
