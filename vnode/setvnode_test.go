package vnode_test

import (
	"errors"

	"github.com/gokai-kv/gokai/storage"
	"github.com/gokai-kv/gokai/vnode"
)

// setVnode is a behaviour without any handoff hook: a set of strings, one storage key per element. It
// implements only Behaviour and ConcurrentFold, so the framework's defaults decide what happens to the
// commands that reach it during a handoff.
type setVnode struct {
	env vnode.Env
	// afterFold, if set, runs when a fold has visited everything (on the fold's goroutine).
	afterFold func() error
}

// addElem adds Elem to the set; the reply is *elemAdded once it is in storage.
type addElem struct{ Elem string }

type elemAdded struct {
	Elem string
	Err  string
}

// hasElem asks whether Elem is in the set; the reply is *elemHeld.
type hasElem struct{ Elem string }

type elemHeld struct{ Held bool }

var (
	_ vnode.Behaviour      = (*setVnode)(nil)
	_ vnode.ConcurrentFold = (*setVnode)(nil)
)

func (s *setVnode) Init(env vnode.Env) error { s.env = env; return nil }

func (s *setVnode) HandleCommand(cmd any, _ vnode.Sender) vnode.Result {
	switch m := cmd.(type) {
	case *addElem:
		rep := &elemAdded{Elem: m.Elem}
		if err := s.env.Store.Put([]byte(m.Elem), []byte{1}); err != nil {
			rep.Err = err.Error()
		}
		return vnode.Reply(rep)
	case *hasElem:
		_, err := s.env.Store.Get([]byte(m.Elem))
		return vnode.Reply(&elemHeld{Held: err == nil})
	}
	return vnode.NoReply()
}

func (s *setVnode) ConcurrentFoldSafe() {}

func (s *setVnode) HandoffFold(fn func(key, value []byte) error) error {
	if err := s.env.Store.Fold(fn); err != nil {
		return err
	}
	if s.afterFold != nil {
		return s.afterFold()
	}
	return nil
}

func (s *setVnode) EncodeHandoffItem(key, _ []byte) ([]byte, error) {
	return append([]byte(nil), key...), nil
}

func (s *setVnode) HandleHandoffData(data []byte) error {
	if len(data) == 0 {
		return errors.New("setvnode: empty item")
	}
	return s.env.Store.Put(data, []byte{1})
}

func (s *setVnode) IsEmpty() (bool, error) { return s.env.Store.IsEmpty() }

func (s *setVnode) Delete() error { return s.env.Store.Drop() }

func (s *setVnode) Terminate(any) {}

// holds reports whether elem is in partition p of db.
func holds(db storage.Backend, p uint32, elem string) bool {
	_, err := db.Get(p, []byte(elem))
	return err == nil
}
