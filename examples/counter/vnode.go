package counter

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// Storage layout inside a vnode's partition: one namespace byte, then the rest.
const (
	nsCounter = 'c' // 'c' + counter name -> encoded State
	nsMeta    = 'm' // 'm' + name -> vnode metadata (not handed off)
)

var metaActor = []byte{nsMeta, 'i', 'd'}

// Vnode is the counter's behaviour: one per partition, the counters of its key range in the vnode's storage
// partition. It increments under its own actor id and merges every state it is sent (replication, read
// repair, handoff), so it never needs to know where the other replicas are.
//
// It keeps the framework's defaults for everything it does not implement: during a handoff its commands are
// forwarded to the new owner, which applies them under its own actor id (no HandoffCommander needed: an
// increment forwarded is an increment made there, and no write is lost by the drop).
//
// Not safe for concurrent use: the vnode actor calls it one message at a time.
type Vnode struct {
	env   vnode.Env
	actor string
	key   []byte // scratch: 'c' + name
}

var (
	_ vnode.Behaviour      = (*Vnode)(nil)
	_ vnode.HandoffMerger  = (*Vnode)(nil)
	_ vnode.ConcurrentFold = (*Vnode)(nil)
)

// NewVnode is the vnode.Factory of the counter service.
func NewVnode() vnode.Behaviour { return &Vnode{} }

// Init loads, or mints on first use, the vnode's actor id: node/partition/epoch, the epoch random and stored
// with the partition's data. A vnode that lost its data (a wiped disk, a partition dropped after a handoff)
// mints a new epoch: restarting an old actor's totals from zero would make merges (pointwise max) ignore its
// new increments until they passed the old totals.
func (v *Vnode) Init(env vnode.Env) error {
	v.env = env
	id, err := env.Store.Get(metaActor)
	switch {
	case err == nil:
		v.actor = string(id)
	case errors.Is(err, storage.ErrNotFound):
		var epoch [8]byte
		if _, err := rand.Read(epoch[:]); err != nil {
			return fmt.Errorf("counter: mint actor id: %w", err)
		}
		v.actor = fmt.Sprintf("%s/%d/%s", env.Node, env.Partition, hex.EncodeToString(epoch[:]))
		if len(v.actor) > MaxActorLen {
			return fmt.Errorf("counter: actor id %q over %d bytes (node name too long)", v.actor, MaxActorLen)
		}
		if err := env.Store.Put(metaActor, []byte(v.actor)); err != nil {
			return fmt.Errorf("counter: store actor id: %w", err)
		}
	default:
		return fmt.Errorf("counter: load actor id: %w", err)
	}
	return nil
}

// Actor is the id this vnode increments under.
func (v *Vnode) Actor() string { return v.actor }

func (v *Vnode) counterKey(name []byte) []byte {
	v.key = append(append(v.key[:0], nsCounter), name...)
	return v.key
}

// load reads the stored state of name (nil: none).
func (v *Vnode) load(name []byte) (*State, error) {
	raw, err := v.env.Store.Get(v.counterKey(name))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	s, err := UnmarshalState(raw)
	if err != nil {
		return nil, fmt.Errorf("counter %q: stored state: %w", name, err)
	}
	return s, nil
}

func (v *Vnode) store(name []byte, s *State) error {
	raw, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	return v.env.Store.Put(v.counterKey(name), raw)
}

// merge merges in into the stored state of name; changed reports whether the stored state grew.
func (v *Vnode) merge(name []byte, in *State) (changed bool, err error) {
	cur, err := v.load(name)
	if err != nil {
		return false, err
	}
	m := Merge(cur, in)
	if Equal(m, cur) {
		return false, nil
	}
	return true, v.store(name, m)
}

// HandleCommand serves IncrRequest (apply under this vnode's actor, store, reply with the new state),
// ReadRequest (reply with the stored state), MergeRequest (merge, store if it grew, acknowledge) and the
// node's re-home drop. A reply is sent only after storage took the write.
func (v *Vnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	if name, tag, write, ok := commandName(cmd); ok && (len(name) == 0 || len(name) > MaxNameLen) {
		return vnode.Reply(failed(tag, write, fmt.Errorf("counter: name of %d bytes: want 1..%d", len(name), MaxNameLen)))
	}
	switch c := cmd.(type) {
	case *IncrRequest:
		cur, err := v.load(c.Name)
		if err != nil {
			return vnode.Reply(failed(c.Tag, true, err))
		}
		next, err := cur.Add(v.actor, c.By)
		if err == nil {
			err = v.store(c.Name, next)
		}
		if err != nil {
			return vnode.Reply(failed(c.Tag, true, err))
		}
		return vnode.Reply(&StateReply{V: 1, Tag: c.Tag, State: next, Write: true})
	case *ReadRequest:
		cur, err := v.load(c.Name)
		if err != nil {
			return vnode.Reply(failed(c.Tag, false, err))
		}
		return vnode.Reply(&StateReply{V: 1, Tag: c.Tag, State: cur})
	case *MergeRequest:
		if _, err := v.merge(c.Name, c.State); err != nil {
			return vnode.Reply(failed(c.Tag, true, err))
		}
		return vnode.Reply(&StateReply{V: 1, Tag: c.Tag, Write: true})
	case *dropRequest:
		return vnode.Reply(v.drop(c))
	}
	v.env.Logger.Warn("counter: unexpected command", "type", fmt.Sprintf("%T", cmd))
	return vnode.NoReply()
}

// commandName is the counter a command names, its tag and whether it writes; ok is false for other messages.
func commandName(cmd any) (name []byte, tag uint32, write, ok bool) {
	switch c := cmd.(type) {
	case *IncrRequest:
		return c.Name, c.Tag, true, true
	case *ReadRequest:
		return c.Name, c.Tag, false, true
	case *MergeRequest:
		return c.Name, c.Tag, true, true
	}
	return nil, 0, false, false
}

// failed is the reply to a command that failed with err.
func failed(tag uint32, write bool, err error) *StateReply {
	code := CodeError
	switch {
	case errors.Is(err, storage.ErrDiskFull):
		code = CodeDiskFull
	case errors.Is(err, ErrOutOfRange), errors.Is(err, ErrTooManyActors), errors.Is(err, ErrBadIncrement):
		code = CodeOutOfRange
	}
	return &StateReply{V: 1, Tag: tag, Write: write, Code: code, Err: err.Error()}
}

// dropRequest is the re-home drop (local only: the node sends it to its own vnode): remove names[i] if the
// stored state is still exactly states[i], the bytes the fold read, so nothing merged since is lost.
type dropRequest struct{ names, states [][]byte }

// dropReply says how many counters a dropRequest removed, or why it stopped.
type dropReply struct {
	n   int
	err error
}

func (v *Vnode) drop(d *dropRequest) *dropReply {
	out := &dropReply{}
	for i, name := range d.names {
		k := v.counterKey(name)
		raw, err := v.env.Store.Get(k)
		if err == nil && bytes.Equal(raw, d.states[i]) {
			if err = v.env.Store.Delete(k); err == nil {
				out.n++
			}
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			out.err = err
			break
		}
	}
	return out
}

// ConcurrentFoldSafe: the fold reads a storage snapshot.
func (v *Vnode) ConcurrentFoldSafe() {}

// HandoffFold visits every counter: its name (the key it is routed by) and its encoded state. The vnode's
// metadata (its actor id) is not handed off.
func (v *Vnode) HandoffFold(fn func(key, value []byte) error) error {
	return v.env.Store.Fold(func(k, val []byte) error {
		if len(k) == 0 || k[0] != nsCounter {
			return nil
		}
		return fn(k[1:], val)
	})
}

// EncodeHandoffItem frames one counter: uvarint name length, name, encoded state.
func (v *Vnode) EncodeHandoffItem(key, value []byte) ([]byte, error) {
	out := make([]byte, 0, binary.MaxVarintLen64+len(key)+len(value))
	out = binary.AppendUvarint(out, uint64(len(key)))
	return append(append(out, key...), value...), nil
}

// decodeItem reads what EncodeHandoffItem framed.
func decodeItem(data []byte) (name []byte, s *State, err error) {
	n, w := binary.Uvarint(data)
	if w <= 0 || n == 0 || n > uint64(len(data)-w) {
		return nil, nil, errors.New("counter: malformed handoff item")
	}
	name = data[w : w+int(n)]
	s, err = UnmarshalState(data[w+int(n):])
	if err != nil {
		return nil, nil, fmt.Errorf("counter: handoff item %q: %w", name, err)
	}
	return name, s, nil
}

// HandleHandoffData merges a handed-off counter into the stored one.
func (v *Vnode) HandleHandoffData(data []byte) error {
	_, err := v.MergeHandoffData(data)
	return err
}

// MergeHandoffData merges a handed-off counter and reports whether the stored state grew.
func (v *Vnode) MergeHandoffData(data []byte) (bool, error) {
	name, s, err := decodeItem(data)
	if err != nil {
		return false, err
	}
	return v.merge(name, s)
}

// IsEmpty reports whether the partition holds no counter.
func (v *Vnode) IsEmpty() (bool, error) {
	empty := true
	err := v.HandoffFold(func(_, _ []byte) error {
		empty = false
		return storage.ErrStopFold
	})
	return empty, err
}

// Delete drops the partition's counters and the actor id (a later vnode here mints a new epoch).
func (v *Vnode) Delete() error { return v.env.Store.Drop() }

// Terminate has nothing to release: all state is in storage.
func (v *Vnode) Terminate(any) {}
