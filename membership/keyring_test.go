package membership

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/internal/eventually"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestGossipEncryptionAndKeyRotation: an encrypted, labelled cluster refuses a node with another key or
// another label, and rotates its key (install, use, remove on every node) without anyone losing sight of
// anyone.
func TestGossipEncryptionAndKeyRotation(t *testing.T) {
	nodes := startCluster(t, 3, func(c *GossipConfig) { c.Keys, c.Label = [][]byte{key(1)}, "gokai:test" })

	for _, c := range []struct {
		name  string
		tweak func(*GossipConfig)
	}{
		{"another key", func(c *GossipConfig) { c.Keys, c.Label = [][]byte{key(9)}, "gokai:test" }},
		{"another label", func(c *GossipConfig) { c.Keys, c.Label = [][]byte{key(1)}, "gokai:other" }},
		{"no encryption", func(c *GossipConfig) { c.Label = "gokai:test" }},
	} {
		cfg := fastConfig(t, "x-"+c.name[:3], ownState(t, "x"))
		cfg.TCPTimeout = time.Second
		c.tweak(&cfg)
		x := startNode(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := x.Join(ctx, []string{nodes[0].Addr()}, true)
		cancel()
		if err == nil {
			t.Fatalf("a node with %s joined", c.name)
		}
	}

	// Rotation: each step on every node, checking after each that everyone still sees everyone.
	steps := []struct {
		name string
		f    func(g *Gossip) error
	}{
		{"install", func(g *Gossip) error { return g.InstallKey(key(2)) }},
		{"use", func(g *Gossip) error { return g.UseKey(key(2)) }},
		{"remove", func(g *Gossip) error { return g.RemoveKey(key(1)) }},
	}
	for _, st := range steps {
		for _, g := range nodes {
			if err := st.f(g); err != nil {
				t.Fatalf("%s on %s: %v", st.name, g.self, err)
			}
		}
		// Several probe rounds with the new keys: a node that cannot decrypt another is suspected and
		// declared dead within them.
		next := must(t)(nodes[0].State().StageJoin(mem("after-" + st.name)))
		if !nodes[0].Propose(next) {
			t.Fatal("propose refused")
		}
		waitFor(t, 5*time.Second, "the state spreads after "+st.name, func() bool { return converged(nodes, next) }, nodes...)
		if !seesAll(nodes) {
			t.Fatalf("after %s a node lost sight of another", st.name)
		}
	}
	primary, all, err := nodes[1].Keys()
	if err != nil || !bytes.Equal(primary, key(2)) || len(all) != 1 {
		t.Fatalf("keys after rotation: primary %x, %d keys, %v", primary, len(all), err)
	}
	if err := nodes[1].RemoveKey(key(2)); err == nil {
		t.Fatal("removed the primary key")
	}

	// The keys are really used: a claimant that encrypts with a key nobody else has is not heard...
	if err := nodes[0].InstallKey(key(3)); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].UseKey(key(3)); err != nil {
		t.Fatal(err)
	}
	lonely := must(t)(nodes[0].State().StageJoin(mem("lonely")))
	if !nodes[0].Propose(lonely) {
		t.Fatal("propose refused")
	}
	// A negative: watch for a second (several announce rounds of 250 ms, and pulls) that it never arrives.
	if eventually.Within(time.Second, func() bool {
		return nodes[1].State().Version == lonely.Version || nodes[2].State().Version == lonely.Version
	}) {
		t.Fatal("a state encrypted with a key the others lack reached them")
	}
	// ...until the others install it.
	for _, g := range nodes[1:] {
		if err := g.InstallKey(key(3)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the state spreads once every node has the key", func() bool { return converged(nodes, lonely) }, nodes...)
}
