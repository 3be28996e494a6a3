package membership

import (
	"errors"
	"fmt"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/ring"
	"github.com/vmihailenco/msgpack/v5"
)

// Signed cluster states.
//
// Gossip carries every full state as a signed state: the encoded state, the signature of its claimant and
// the claimant's certificate. In a cluster with certificates (a StateSigner) a node installs a state from
// another node only if its claimant signed it with a certificate the cluster CA issued to that claimant's
// name: a stranger on the gossip port cannot make itself claimant, nor rewrite who owns what. Without
// certificates states travel unsigned and a weaker rule applies: a state's claimant must be a member of the
// state it replaces (no stranger claimant).

// StateSigner signs the states this node proposes as claimant and checks those it receives.
// Implementations must be safe for concurrent use.
type StateSigner interface {
	// Sign returns the signature of enc (an encoded state whose claimant is this node) and the certificate
	// (DER) to check it with.
	Sign(enc []byte) (sig, cert []byte, err error)
	// Verify checks that sig over enc was made with cert, a certificate the cluster CA issued to node
	// claimant.
	Verify(claimant ring.NodeID, enc, sig, cert []byte) error
}

// ErrUnsigned: a state from another node failed the signature or claimant rules.
var ErrUnsigned = errors.New("membership: cluster state refused")

// maxCertBytes bounds a certificate carried with a state; maxSigBytes its signature.
const (
	maxCertBytes = 16 << 10
	maxSigBytes  = 1 << 10
)

// signedLimits bound the msgpack structure of a signed state.
var signedLimits = mpscan.Limits{MaxBytes: MaxStateBytes + maxCertBytes + maxSigBytes + 64, MaxDepth: 1, MaxElems: 8}

// signedState is the wire form of a full state: [wire, state, signature, certificate].
type signedState struct {
	_msgpack struct{} `msgpack:",as_array"`
	Wire     uint8
	State    []byte // MarshalBinary of the state
	Sig      []byte // empty when unsigned
	Cert     []byte
}

// encodeSigned returns the signed form of enc.
func encodeSigned(enc, sig, cert []byte) []byte {
	b, err := msgpack.Marshal(&signedState{Wire: wireVersion, State: enc, Sig: sig, Cert: cert})
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a signed state: %v", err))
	}
	return b
}

// decodeSigned decodes a signed state. It is safe on untrusted input.
func decodeSigned(b []byte) (signedState, error) {
	var s signedState
	n, err := mpscan.Scan(b, signedLimits)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrMalformedState, err)
	}
	if n != len(b) {
		return s, fmt.Errorf("%w: %d trailing bytes", ErrMalformedState, len(b)-n)
	}
	if err := msgpack.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: %w", ErrMalformedState, err)
	}
	switch {
	case s.Wire != wireVersion:
		return s, fmt.Errorf("%w: wire version %d", ErrMalformedState, s.Wire)
	case len(s.State) > MaxStateBytes || len(s.Sig) > maxSigBytes || len(s.Cert) > maxCertBytes:
		return s, fmt.Errorf("%w: oversized part", ErrMalformedState)
	}
	return s, nil
}

// OpenSignedState decodes a signed state (as StateDoc returns it; a bare encoded state is accepted too,
// from data dirs written before states were signed) into its state and signed form.
func OpenSignedState(b []byte) (*ClusterState, []byte, error) {
	if ss, err := decodeSigned(b); err == nil {
		s, err := UnmarshalClusterState(ss.State)
		return s, b, err
	}
	s, err := UnmarshalClusterState(b)
	if err != nil {
		return nil, nil, err
	}
	return s, encodeSigned(b, nil, nil), nil
}

// checkRemote applies the rules for a state that came from another node: with a signer, a valid signature
// by its claimant; without, a claimant that cur knows as a member (or cur's own claimant). adopt (a joining
// node taking its seed's cluster) skips the membership rule, not the signature.
func checkRemote(signer StateSigner, s *ClusterState, ss signedState, cur *ClusterState, adopt bool) error {
	if signer != nil {
		if len(ss.Sig) == 0 {
			return fmt.Errorf("%w: unsigned", ErrUnsigned)
		}
		if err := signer.Verify(s.Claimant, ss.State, ss.Sig, ss.Cert); err != nil {
			return fmt.Errorf("%w: %w", ErrUnsigned, err)
		}
		return nil
	}
	if adopt || s.Claimant == cur.Claimant {
		return nil
	}
	if _, ok := cur.Member(s.Claimant); !ok {
		return fmt.Errorf("%w: claimant %s is not a member of cluster state v%d", ErrUnsigned, s.Claimant, cur.Version)
	}
	return nil
}
