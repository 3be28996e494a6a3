package membership

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/ring"
)

// hmacSigner stands in for certificates: every node of the "CA" shares secret, and a signature binds the
// signer's name (the "certificate" is the name).
type hmacSigner struct {
	self   ring.NodeID
	secret []byte
}

func (h hmacSigner) mac(name, enc []byte) []byte {
	m := hmac.New(sha256.New, h.secret)
	m.Write(name)
	m.Write([]byte{0})
	m.Write(enc)
	return m.Sum(nil)
}

func (h hmacSigner) Sign(enc []byte) ([]byte, []byte, error) {
	return h.mac([]byte(h.self), enc), []byte(h.self), nil
}

func (h hmacSigner) Verify(claimant ring.NodeID, enc, sig, cert []byte) error {
	if string(cert) != string(claimant) {
		return errors.New("certificate of another node")
	}
	if !hmac.Equal(sig, h.mac(cert, enc)) {
		return errors.New("bad signature")
	}
	return nil
}

// stranger starts a node of cluster c1 whose state makes itself claimant at a high version, and has it
// push that state to seed (a join without adopt: a push-pull both ways).
func stranger(t *testing.T, seed *Gossip, signer StateSigner) *Gossip {
	t.Helper()
	forged := must(t)(NewClusterState("c1", mem("evil"), 64, 3))
	for forged.Version < 50 {
		forged = must(t)(forged.StageJoin(mem("x" + string(rune('a'+forged.Version%26)))))
		forged = must(t)(forged.ClearStaged())
	}
	cfg := fastConfig(t, "evil", forged)
	cfg.Signer = signer
	g := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.Join(ctx, []string{seed.Addr()}, false)
	return g
}

// TestGossipRefusesAStrangerClaimant: without certificates, a state whose claimant the receiver does not
// know as a member is refused, however new.
func TestGossipRefusesAStrangerClaimant(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	before := nodes[0].State()
	stranger(t, nodes[0], nil)
	waitFor(t, 5*time.Second, "the forged state is refused", func() bool { return nodes[0].RefusedStates() > 0 }, nodes...)
	for _, g := range nodes {
		if s := g.State(); s.Claimant != before.Claimant || s.Version != before.Version {
			t.Fatalf("%s installed %v", g.self, s)
		}
	}
	// A legitimate change still spreads.
	next := must(t)(before.StageJoin(mem("x1")))
	if !nodes[0].Propose(next) {
		t.Fatal("propose refused")
	}
	waitFor(t, 5*time.Second, "converge", func() bool { return converged(nodes, next) }, nodes...)
}

// TestGossipSignedStates: with a signer, states travel signed by their claimant; a joining node adopts
// only a signed state, a stranger's state signed with another secret (or its own name on a state it is not
// entitled to) is refused, and the members converge on the claimant's changes.
func TestGossipSignedStates(t *testing.T) {
	secret := []byte("cluster CA")
	nodes := startCluster(t, 3, func(c *GossipConfig) { c.Signer = hmacSigner{self: c.Self.Name, secret: secret} })
	base := nodes[0].State()
	if base.Claimant != "n0" {
		t.Fatalf("claimant %s", base.Claimant)
	}
	next := must(t)(base.StageJoin(mem("x1")))
	if !nodes[0].Propose(next) {
		t.Fatal("propose refused")
	}
	waitFor(t, 5*time.Second, "converge on the signed change", func() bool { return converged(nodes, next) }, nodes...)
	doc := nodes[2].StateDoc()
	ss, err := decodeSigned(doc)
	if err != nil || len(ss.Sig) == 0 || !bytes.Equal(ss.Cert, []byte("n0")) {
		t.Fatalf("n2 passes on %v (err %v): want n0's signature", ss.Cert, err)
	}

	// A stranger with another secret: refused.
	stranger(t, nodes[1], hmacSigner{self: "evil", secret: []byte("another CA")})
	waitFor(t, 5*time.Second, "the forged state is refused", func() bool { return nodes[1].RefusedStates() > 0 }, nodes...)
	for _, g := range nodes {
		if s := g.State(); s.Claimant != "n0" || s.Version != next.Version {
			t.Fatalf("%s installed %v", g.self, s)
		}
	}

	// A member that makes a change in the claimant's name cannot sign it: refused by the others.
	forged := must(t)(next.StageJoin(mem("x2")))
	if !nodes[1].Propose(forged) {
		t.Fatal("local propose refused")
	}
	waitFor(t, 5*time.Second, "the unsigned state is refused", func() bool {
		return nodes[0].RefusedStates()+nodes[2].RefusedStates() > 0
	}, nodes...)
	if s := nodes[0].State(); s.Claimant != "n0" {
		t.Fatalf("n0 took a state n1 could not sign: %v", s)
	}

	// A joining node with the secret adopts; one whose signer has another secret does not.
	cfg := fastConfig(t, "j1", ownState(t, "j1"))
	cfg.Signer = hmacSigner{self: "j1", secret: []byte("another CA")}
	j := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.Join(ctx, []string{nodes[0].Addr()}, true); !errors.Is(err, ErrNotAdopted) {
		t.Fatalf("join with a foreign signer: %v, want ErrNotAdopted", err)
	}
}
