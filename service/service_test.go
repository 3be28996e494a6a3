package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/gokai-kv/gokai/vnode"
)

func TestCheckAll(t *testing.T) {
	vn := func(NodeInfo) (vnode.Factory, error) { return nil, nil }
	ok := func(name string, id uint16) Service { return Service{Name: name, ID: id, Vnode: vn} }
	def := func(s Service) Service { s.Default = true; return s }
	for _, tc := range []struct {
		name string
		svcs []Service
		want string // "" valid, else a substring of the error
	}{
		{"one", []Service{ok("kv", 0)}, ""},
		{"two", []Service{def(ok("kv", 0)), ok("counter", 1)}, ""},
		{"none", nil, "at least one"},
		{"bad name", []Service{ok("Counter", 1)}, "name"},
		{"dotted name", []Service{ok("a.b", 1)}, "name"},
		{"long name", []Service{ok(strings.Repeat("a", 33), 1)}, "name"},
		{"no vnode", []Service{{Name: "x", ID: 1}}, "Vnode"},
		{"same name", []Service{ok("kv", 0), ok("kv", 1)}, "twice"},
		{"same id", []Service{ok("kv", 0), ok("counter", 0)}, "key space 0"},
		{"two defaults", []Service{def(ok("kv", 0)), def(ok("counter", 1))}, "both the default"},
		{"half a rehome", []Service{{Name: "x", ID: 1, Vnode: vn, Rehome: &Rehome{}}}, "Rehome"},
		{"wire code 0", []Service{{Name: "x", ID: 1, Vnode: vn, Wire: []Wire{{Code: 0, New: func() any { return new(int) }}}}}, "code 0"},
		{"settings", []Service{{Name: "x", ID: 1, Vnode: vn, Validate: func() error { return errors.New("x: bad setting") }}}, "bad setting"},
	} {
		err := CheckAll(tc.svcs)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestSupervisorName(t *testing.T) {
	if got := (Service{Name: "kv", ID: 0}).SupervisorName(); got != "vnode-sup" {
		t.Errorf("key space 0: %s", got)
	}
	if got := (Service{Name: "counter", ID: 7}).SupervisorName(); got != "vnode-sup-counter" {
		t.Errorf("counter: %s", got)
	}
}
