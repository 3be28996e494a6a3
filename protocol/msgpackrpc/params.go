package msgpackrpc

import (
	"fmt"
	"math"
	"time"
)

// Param helpers. They take the params a Handler receives (decoded as described in the package doc: str as
// string, bin as []byte, maps as map[string]any, integers as the narrowest Go int type) and return an
// *Error with CodeBadRequest naming the parameter when its type is wrong.

// Bytes returns params[i], a bin or str, as bytes. A missing parameter or nil is an error. A bin is returned
// as decoded (not copied); a str is converted.
func Bytes(params []any, i int, name string) ([]byte, error) {
	if i >= len(params) {
		return nil, badRequest("missing parameter %d (%s)", i+1, name)
	}
	b, ok := asBytes(params[i])
	if !ok {
		return nil, badRequest("parameter %s: want bin or str, got %s", name, typeName(params[i]))
	}
	return b, nil
}

// OptBytes is Bytes where a missing parameter or nil means nil.
func OptBytes(params []any, i int, name string) ([]byte, error) {
	if i >= len(params) || params[i] == nil {
		return nil, nil
	}
	return Bytes(params, i, name)
}

// Map returns params[i], a map with str (or bin) keys. A missing parameter or nil means a nil map, which
// reads like an empty one.
func Map(params []any, i int, name string) (map[string]any, error) {
	if i >= len(params) || params[i] == nil {
		return nil, nil
	}
	m, ok := params[i].(map[string]any)
	if !ok {
		return nil, badRequest("parameter %s: want a map, got %s", name, typeName(params[i]))
	}
	return m, nil
}

// Int returns m[key] as an int64, and whether it is present (nil counts as absent). Any msgpack int type
// is accepted; a float, or a uint above MaxInt64, is an error.
func Int(m map[string]any, key string) (int64, bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	switch v := v.(type) {
	case int8:
		return int64(v), true, nil
	case int16:
		return int64(v), true, nil
	case int32:
		return int64(v), true, nil
	case int64:
		return v, true, nil
	case int:
		return int64(v), true, nil
	case uint8:
		return int64(v), true, nil
	case uint16:
		return int64(v), true, nil
	case uint32:
		return int64(v), true, nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, true, badRequest("option %s: %d out of range", key, v)
		}
		return int64(v), true, nil
	case uint:
		if uint64(v) > math.MaxInt64 {
			return 0, true, badRequest("option %s: %d out of range", key, v)
		}
		return int64(v), true, nil
	}
	return 0, true, badRequest("option %s: want an integer, got %s", key, typeName(v))
}

// Bool returns m[key] as a bool, and whether it is present (nil counts as absent).
func Bool(m map[string]any, key string) (bool, bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, true, badRequest("option %s: want a bool, got %s", key, typeName(v))
	}
	return b, true, nil
}

func asBytes(v any) ([]byte, bool) {
	switch v := v.(type) {
	case []byte:
		return v, true
	case string:
		return []byte(v), true
	}
	return nil, false
}

// typeName names the msgpack type a decoded value came from, for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "bool"
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return "int"
	case float32, float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bin"
	case []any:
		return "array"
	case map[string]any:
		return "map"
	case time.Time:
		return "timestamp"
	}
	return fmt.Sprintf("%T", v)
}
