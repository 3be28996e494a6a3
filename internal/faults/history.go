package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gokai-kv/gokai/client"
)

// Outcome is what a client knows about one operation once it completed.
type Outcome uint8

const (
	// OK: the server acknowledged the operation.
	OK Outcome = iota + 1
	// Fail: the operation certainly did not write anything (a refused connection, a read that failed
	// before the write was sent, a cas answered EXISTS, an add answered NOT_STORED, ...).
	Fail
	// Indeterminate: the write may or may not have been applied (a timeout, a quorum failure, a broken
	// connection after the request was sent, a server error). With Dynamo most write errors are this:
	// the coordinating replica may have stored the value before the quorum failed.
	Indeterminate
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Fail:
		return "fail"
	case Indeterminate:
		return "indeterminate"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText makes histories readable as JSON.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Kind names a workload's operation.
type Kind string

// The workloads' operations.
const (
	// RPCReadModifyWrite: msgpack-RPC get, union of the siblings plus one new element, put with the
	// context of the get (no context after not_found).
	RPCReadModifyWrite Kind = "rpc-rmw"
	// MemcacheCas: memcache gets, union plus one new element, cas with the unique; add on a miss.
	MemcacheCas Kind = "mc-cas"
	// MemcacheAdd: memcache add of a fresh key (two clients race through two nodes).
	MemcacheAdd Kind = "mc-add"
	// MemcacheSet: memcache blind set (last writer wins by the documented semantics); only availability
	// is measured.
	MemcacheSet Kind = "mc-set"
)

// Op is one client operation of a history.
type Op struct {
	Client   string    `json:"client"`
	Node     string    `json:"node"` // the node it was sent to
	Kind     Kind      `json:"kind"`
	Key      string    `json:"key"`
	Elem     string    `json:"elem"` // the element (or value) this operation adds
	Invoke   time.Time `json:"invoke"`
	Complete time.Time `json:"complete"`
	Outcome  Outcome   `json:"outcome"`
	// Answered: the server gave a definite answer: OK, or a refusal by a working cluster (cas EXISTS or
	// NOT_FOUND, add NOT_STORED). Availability counts answered operations.
	Answered bool `json:"answered"`
	// Sent: the write carrying Elem went out, so Elem may be in the store unless Outcome is Fail. An
	// element whose write was never sent, or was refused, must never appear.
	Sent bool `json:"sent"`
	// Blind: the write carried no causal context (after a miss: not_found, or memcache add).
	Blind bool   `json:"blind,omitempty"`
	Err   string `json:"err,omitempty"`
}

// History collects operations from many goroutines.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations recorded so far, in completion order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// WriteJSON writes the history as JSON lines.
func (h *History) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, op := range h.Ops() {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return nil
}

// --- classification ----------------------------------------------------------------------------------

// ClassifyRPCWrite is the outcome of a msgpack-RPC put (or delete) that returned err. Only errors that
// guarantee nothing was written are Fail: the connection was never made (a *DialError), or the node
// refused the request before a coordinator started (overload, bad_request, too_large, unknown_method).
// Everything else, timeouts and quorum failures included, is Indeterminate.
func ClassifyRPCWrite(err error) (Outcome, bool) {
	if err == nil {
		return OK, true
	}
	var de *DialError
	if errors.As(err, &de) {
		return Fail, false
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case client.CodeOverload, client.CodeBadRequest, client.CodeTooLarge, client.CodeUnknownMethod:
			return Fail, false
		}
	}
	return Indeterminate, false
}

// ClassifyMemcacheStore is the outcome of a memcache storage command (cas, add, set) from its reply line
// (without CRLF), or from a transport error when err is not nil (a *DialError is Fail, anything else after
// the request may have been written Indeterminate).
func ClassifyMemcacheStore(reply string, err error) (Outcome, bool) {
	if err != nil {
		var de *DialError
		if errors.As(err, &de) {
			return Fail, false
		}
		return Indeterminate, false
	}
	switch {
	case reply == "STORED":
		return OK, true
	case reply == "EXISTS", reply == "NOT_FOUND", reply == "NOT_STORED":
		// The command read the key and refused before writing: a definite answer from a working server.
		return Fail, true
	case strings.HasPrefix(reply, "CLIENT_ERROR"), reply == "ERROR":
		return Fail, false
	}
	// SERVER_ERROR: the read before the write or the write itself failed; we cannot tell which.
	return Indeterminate, false
}

// --- set values ----------------------------------------------------------------------------------------

// EncodeSet is the value that holds a set of elements: sorted, separated by single spaces.
func EncodeSet(elems []string) []byte {
	s := slices.Clone(elems)
	sort.Strings(s)
	s = slices.Compact(s)
	return []byte(strings.Join(s, " "))
}

// DecodeSet is the set of elements in a value written by EncodeSet (or a single-element value).
func DecodeSet(v []byte) []string { return strings.Fields(string(v)) }

// UnionValues is the union of the sets in several sibling values, sorted.
func UnionValues(values [][]byte) []string {
	var out []string
	for _, v := range values {
		out = append(out, DecodeSet(v)...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}
