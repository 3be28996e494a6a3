package counter

import (
	"context"
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/coordinator"
	"github.com/gokai-kv/gokai/storage"
)

// Client is the counter's client side on one node: increments and reads over the node's coordinators for
// the counter service (coordinator.Write and coordinator.Read with the counter's Protocol). Safe for
// concurrent use; methods block until the answer or ctx.
type Client struct {
	svc *coordinator.Service
}

// NewClient runs the counter's requests on svc, the counter service's coordinators (service.Host).
func NewClient(svc *coordinator.Service) *Client { return &Client{svc: svc} }

// Incr adds by to the counter name. The increment is applied once, by one replica (the coordinating vnode:
// the first of the preference list on this node, else the first reachable), under that vnode's actor id; the state it
// answers with is merged into the other replicas, and Incr returns once W of them (the coordinating one
// included) stored it. An error other than a refusal (ErrBadIncrement, coordinator.ErrBadRequest,
// ErrOverload, ErrShuttingDown) leaves the increment indeterminate: it may have been applied.
func (c *Client) Incr(ctx context.Context, name []byte, by int64, opts coordinator.WriteOptions) error {
	if by > MaxBy || by < -MaxBy {
		return ErrBadIncrement
	}
	_, err := coordinator.Write(ctx, c.svc, Protocol, name, opts, incrOp{by: by})
	return err
}

// Value reads the counter name at R replicas and returns the value of their merged state (0 for a counter
// no one incremented). Replicas that answered with less, late ones included, are repaired with the merge.
func (c *Client) Value(ctx context.Context, name []byte, opts coordinator.ReadOptions) (int64, error) {
	s, err := c.State(ctx, name, opts)
	if err != nil {
		return 0, err
	}
	return s.Value()
}

// State is Value's merged state itself (nil when no replica holds the counter).
func (c *Client) State(ctx context.Context, name []byte, opts coordinator.ReadOptions) (*State, error) {
	return coordinator.Read(ctx, c.svc, Protocol, name, opts, readOp{})
}

// Protocol is the counter's coordinator.Protocol: states merge by pointwise max, a replica without the
// counter answers a nil state, replies are StateReply.
var Protocol coordinator.Protocol[*State] = protocol{}

type protocol struct{}

func (protocol) Missing(s *State) bool    { return s.Empty() }
func (protocol) Equal(a, b *State) bool   { return Equal(a, b) }
func (protocol) Merge(a, b *State) *State { return Merge(a, b) }
func (protocol) Decode(msg any) (coordinator.Reply[*State], bool) {
	m, ok := msg.(*StateReply)
	if !ok {
		return coordinator.Reply[*State]{}, false
	}
	return coordinator.Reply[*State]{Tag: m.Tag, Value: m.State, Err: replyErr(m.Code, m.Err), Write: m.Write}, true
}

// Errors a replica's reply code stands for.
var errReplica = errors.New("counter: replica")

// replyErr is the error a vnode's reply code and text stand for (nil for success). A full disk becomes
// storage.ErrDiskFull and an overflow ErrOutOfRange, so the client faces name them.
func replyErr(code, msg string) error {
	switch code {
	case "":
		return nil
	case CodeDiskFull:
		return fmt.Errorf("%w: %w: %s", errReplica, storage.ErrDiskFull, msg)
	case CodeOutOfRange:
		return fmt.Errorf("%w: %w: %s", errReplica, ErrOutOfRange, msg)
	default:
		return fmt.Errorf("%w: %s", errReplica, msg)
	}
}

// merge is the command both ops send to make a replica hold s: replication of an increment, read repair.
func merge(name []byte, tag uint32, s *State) any {
	return &MergeRequest{V: 1, Tag: tag, Name: name, State: s}
}

// incrOp is an increment's commands.
type incrOp struct{ by int64 }

// Command is the increment, for the coordinating vnode only.
func (o *incrOp) Command(name []byte, tag uint32) any {
	return &IncrRequest{V: 1, Tag: tag, Name: name, By: o.by}
}
func (o *incrOp) Replicate(name []byte, tag uint32, s *State) any { return merge(name, tag, s) }
func (o *incrOp) Reap([]byte, *State) any                         { return nil }

// readOp is a read's commands.
type readOp struct{}

func (o *readOp) Command(name []byte, tag uint32) any {
	return &ReadRequest{V: 1, Tag: tag, Name: name}
}
func (o *readOp) Replicate(name []byte, tag uint32, s *State) any { return merge(name, tag, s) }
func (o *readOp) Reap([]byte, *State) any                         { return nil }
