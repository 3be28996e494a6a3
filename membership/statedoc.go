package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/gokai-kv/gokai/internal/mpscan"
	"github.com/gokai-kv/gokai/ring"
	"github.com/vmihailenco/msgpack/v5"
)

// stateDocFormat is the encoding format of stateDoc. Bump it on any change
// an older decoder would misread; adding a map field does not need one
// (unknown fields are ignored).
const stateDocFormat = 1

// MaxStateBytes bounds the size of an encoded cluster state
// UnmarshalClusterState accepts. A 64-partition state of a few nodes is
// under 1 KiB; the largest ring (MaxPartitions) with every partition moving
// is about 1 MiB.
const MaxStateBytes = 4 << 20

// stateLimits bound the msgpack structure of a state document before it is
// decoded: a map of arrays of maps or tuples.
var stateLimits = mpscan.Limits{MaxBytes: MaxStateBytes, MaxDepth: 4, MaxElems: 1 << 20}

// stateDoc is the wire form of a ClusterState. Owners and transfers name
// members by their index in Members, which holds every owner and every
// transfer's endpoints.
type stateDoc struct {
	Format    uint16        `msgpack:"format"`            // stateDocFormat
	Version   uint64        `msgpack:"version"`           // also the ring's version
	Cluster   string        `msgpack:"cluster"`           // cluster id
	Claimant  string        `msgpack:"claimant"`          // a member name
	N         int           `msgpack:"n"`                 // replica count
	Members   []memberDoc   `msgpack:"members"`           // sorted by name
	Owners    []uint32      `msgpack:"owners"`            // member index per partition; len = Q
	Staged    []changeDoc   `msgpack:"staged"`            // in staging order
	Transfers []transferDoc `msgpack:"transfers"`         // pending moves of the last commit
	Flushes   []flushDoc    `msgpack:"flushes,omitempty"` // by service name; absent when none
}

type memberDoc struct {
	Name      string `msgpack:"name"`
	Status    string `msgpack:"status"` // MemberStatus
	RPC       string `msgpack:"rpc"`
	Transport string `msgpack:"transport"`
	Memcache  string `msgpack:"memcache"`
}

type changeDoc struct {
	_msgpack struct{} `msgpack:",as_array"`
	Kind     string   // ChangeKind
	Node     string
}

type transferDoc struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Partition uint32
	From, To  uint32 // member indexes
	State     string // TransferState
}

type flushDoc struct {
	_msgpack struct{} `msgpack:",as_array"`
	Service  string
	Epoch    int64
	Pending  int64
}

var _ encoding.BinaryMarshaler = (*ClusterState)(nil)

// MarshalBinary encodes the state as a msgpack map with the keys format,
// version, cluster, claimant, n, members, owners, staged, transfers, and
// flushes when a service has a flush epoch.
// UnmarshalClusterState reverses it. It fails only for a state that does
// not Validate.
func (s *ClusterState) MarshalBinary() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	index := make(map[ring.NodeID]uint32, len(s.Members))
	doc := stateDoc{
		Format:   stateDocFormat,
		Version:  s.Version,
		Cluster:  s.Cluster,
		Claimant: string(s.Claimant),
		N:        s.N,
		Members:  make([]memberDoc, len(s.Members)),
		Owners:   make([]uint32, s.Ring.Q()),
	}
	for i, m := range s.Members {
		index[m.Name] = uint32(i)
		doc.Members[i] = memberDoc{Name: string(m.Name), Status: string(m.Status),
			RPC: m.RPCAddr, Transport: m.TransportAddr, Memcache: m.MemcacheAddr}
	}
	for p, o := range s.Ring.Owners() {
		doc.Owners[p] = index[o]
	}
	for _, c := range s.Staged {
		doc.Staged = append(doc.Staged, changeDoc{Kind: string(c.Kind), Node: string(c.Node)})
	}
	for _, t := range s.Transfers {
		doc.Transfers = append(doc.Transfers, transferDoc{Partition: uint32(t.Partition),
			From: index[t.From], To: index[t.To], State: string(t.State)})
	}
	for _, name := range slices.Sorted(maps.Keys(s.Flushes)) {
		f := s.Flushes[name]
		doc.Flushes = append(doc.Flushes, flushDoc{Service: name, Epoch: f.Epoch, Pending: f.Pending})
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true) // owners and indexes are small: 1 byte each, not 5
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalClusterState decodes and validates a state made by
// MarshalBinary. It is safe on untrusted input: the size and the msgpack
// structure are checked (mpscan) before anything is decoded, and every
// error wraps ErrMalformedState.
func UnmarshalClusterState(b []byte) (*ClusterState, error) {
	if len(b) > MaxStateBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrMalformedState, len(b), MaxStateBytes)
	}
	// NB: msgpack preallocates from declared lengths; check them first.
	n, err := mpscan.Scan(b, stateLimits)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedState, err)
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedState, len(b)-n)
	}
	var doc stateDoc
	if err := msgpack.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedState, err)
	}
	s, err := doc.state()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedState, err)
	}
	return s, nil
}

// state builds and validates the ClusterState of a decoded document.
func (doc *stateDoc) state() (*ClusterState, error) {
	if doc.Format != stateDocFormat {
		return nil, fmt.Errorf("format %d (want %d)", doc.Format, stateDocFormat)
	}
	if len(doc.Members) == 0 || len(doc.Members) > MaxMembers {
		return nil, fmt.Errorf("%d members (want 1..%d)", len(doc.Members), MaxMembers)
	}
	member := func(i uint32) (ring.NodeID, error) {
		if int64(i) >= int64(len(doc.Members)) {
			return "", fmt.Errorf("member index %d, table has %d", i, len(doc.Members))
		}
		return ring.NodeID(doc.Members[i].Name), nil
	}
	s := &ClusterState{
		Version:  doc.Version,
		Cluster:  doc.Cluster,
		Claimant: ring.NodeID(doc.Claimant),
		N:        doc.N,
		Members:  make([]Member, len(doc.Members)),
	}
	for i, m := range doc.Members {
		s.Members[i] = Member{Name: ring.NodeID(m.Name), Status: MemberStatus(m.Status),
			RPCAddr: m.RPC, TransportAddr: m.Transport, MemcacheAddr: m.Memcache}
	}
	if err := ring.CheckQ(len(doc.Owners)); err != nil {
		return nil, err
	}
	owners := make([]ring.NodeID, len(doc.Owners))
	for p, x := range doc.Owners {
		o, err := member(x)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		owners[p] = o
	}
	for _, c := range doc.Staged {
		s.Staged = append(s.Staged, Change{Kind: ChangeKind(c.Kind), Node: ring.NodeID(c.Node)})
	}
	if len(doc.Transfers) > len(doc.Owners) {
		return nil, fmt.Errorf("%d transfers for %d partitions", len(doc.Transfers), len(doc.Owners))
	}
	for _, t := range doc.Transfers {
		from, err := member(t.From)
		if err != nil {
			return nil, fmt.Errorf("transfer of partition %d: %w", t.Partition, err)
		}
		to, err := member(t.To)
		if err != nil {
			return nil, fmt.Errorf("transfer of partition %d: %w", t.Partition, err)
		}
		if t.Partition >= uint32(len(doc.Owners)) {
			return nil, fmt.Errorf("transfer of partition %d, q=%d", t.Partition, len(doc.Owners))
		}
		s.Transfers = append(s.Transfers, PendingTransfer{Partition: int(t.Partition), From: from, To: to,
			State: TransferState(t.State)})
	}
	if len(doc.Flushes) > MaxFlushes {
		return nil, fmt.Errorf("flush epochs of %d services (max %d)", len(doc.Flushes), MaxFlushes)
	}
	for _, f := range doc.Flushes {
		if s.Flushes == nil {
			s.Flushes = make(map[string]Flush, len(doc.Flushes))
		}
		if _, dup := s.Flushes[f.Service]; dup {
			return nil, fmt.Errorf("flush of %q listed twice", f.Service)
		}
		s.Flushes[f.Service] = Flush{Epoch: f.Epoch, Pending: f.Pending}
	}
	r, err := ring.NewFromOwners(owners, doc.Version)
	if err != nil {
		return nil, err
	}
	s.Ring = r
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// stateHashDomain prefixes the hashed bytes so that the hash of a state can
// never equal the hash of some other gokai structure by construction.
const stateHashDomain = "gokai/cluster-state/1\x00"

// Hash returns a 64-bit content hash of the state (the first 8 bytes of a
// SHA-256 over a canonical, length-prefixed serialisation of every field),
// the tie-break of Newer. It does not depend on the msgpack encoder, so
// nodes running different builds agree on it. REQUIRES: s.Ring != nil. Changing it changes which
// of two concurrent states wins: append-only.
func (s *ClusterState) Hash() uint64 {
	buf := make([]byte, 0, 256+8*len(s.Members)+2*s.Ring.Q()+16*len(s.Transfers))
	buf = append(buf, stateHashDomain...)
	u := func(v uint64) { buf = binary.AppendUvarint(buf, v) }
	str := func(x string) { u(uint64(len(x))); buf = append(buf, x...) }
	u(s.Version)
	str(s.Cluster)
	str(string(s.Claimant))
	u(uint64(s.N))
	u(uint64(len(s.Members)))
	index := make(map[ring.NodeID]uint64, len(s.Members))
	for i, m := range s.Members {
		index[m.Name] = uint64(i)
		str(string(m.Name))
		str(string(m.Status))
		str(m.RPCAddr)
		str(m.TransportAddr)
		str(m.MemcacheAddr)
	}
	u(uint64(s.Ring.Q()))
	for p := range s.Ring.Q() {
		o := s.Ring.Owner(p)
		x, ok := index[o]
		if !ok { // not a valid state; still keep distinct contents apart
			u(0)
			str(string(o))
			continue
		}
		u(x + 1)
	}
	u(uint64(len(s.Staged)))
	for _, c := range s.Staged {
		str(string(c.Kind))
		str(string(c.Node))
	}
	u(uint64(len(s.Transfers)))
	for _, t := range s.Transfers {
		u(uint64(t.Partition))
		str(string(t.From))
		str(string(t.To))
		str(string(t.State))
	}
	// NB: appended, and only when set, so a state without flushes hashes as it did before they existed.
	if len(s.Flushes) > 0 {
		u(uint64(len(s.Flushes)))
		for _, name := range slices.Sorted(maps.Keys(s.Flushes)) {
			f := s.Flushes[name]
			str(name)
			u(uint64(f.Epoch))
			u(uint64(f.Pending))
		}
	}
	sum := sha256.Sum256(buf)
	return binary.BigEndian.Uint64(sum[:8])
}
