package client

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// fakeServer is a tiny msgpack-RPC server on 127.0.0.1:0 for transport tests. Each request runs its handler
// on its own goroutine, so replies go out in completion order, not request order.
type fakeServer struct {
	t       *testing.T
	ln      net.Listener
	handler func(fc *fakeConn, method string, params []any) (result any, rpcErr any)

	accepted atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	conns    map[*fakeConn]bool
	wg       sync.WaitGroup
}

type fakeConn struct {
	nc  net.Conn
	wmu sync.Mutex
}

// write sends raw bytes on the connection.
func (fc *fakeConn) write(b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, _ = fc.nc.Write(b)
}

func (fc *fakeConn) reply(id any, rpcErr, result any) {
	b, err := msgpack.Marshal([]any{1, id, rpcErr, result})
	if err != nil {
		panic(err)
	}
	fc.write(b)
}

// noReply is a handler result that sends nothing (the handler replies itself, or never).
type noReplyT struct{}

var noReply = noReplyT{}

func newFakeServer(t *testing.T, h func(fc *fakeConn, method string, params []any) (any, any)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, handler: h, conns: map[*fakeConn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		fc := &fakeConn{nc: nc}
		s.mu.Lock()
		s.conns[fc] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(fc)
	}
}

func (s *fakeServer) serve(fc *fakeConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
		fc.nc.Close()
	}()
	d := msgpack.NewDecoder(bufio.NewReader(fc.nc))
	for {
		v, err := d.DecodeInterface()
		if err != nil {
			return
		}
		msg, ok := v.([]any)
		if !ok || len(msg) != 4 {
			return
		}
		s.requests.Add(1)
		method, _ := msg[2].(string)
		params, _ := msg[3].([]any)
		id := msg[1]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			res, rerr := s.handler(fc, method, params)
			if res == noReply {
				return
			}
			fc.reply(id, rerr, res)
		}()
	}
}

// dropConns closes every open connection (a node restart, seen from the client).
func (s *fakeServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		fc.nc.Close()
	}
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.dropConns()
	s.wg.Wait()
}

// rpcErr builds the node's error map.
func rpcErr(code, msg string, extra ...any) map[string]any {
	m := map[string]any{"code": code, "message": msg}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func asBytes(v any) []byte {
	switch b := v.(type) {
	case []byte:
		return b
	case string:
		return []byte(b)
	}
	return nil
}

var errUnexpected = errors.New("unexpected")
