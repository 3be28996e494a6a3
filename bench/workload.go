package bench

import (
	"math/rand/v2"
	"strconv"
)

// OpKind is what an operation does. Append-only: the values appear in reports.
type OpKind uint8

const (
	OpGet OpKind = iota
	OpSet
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpSet:
		return "set"
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one operation of the workload: a kind and a key index in [0, Keys).
type Op struct {
	Kind OpKind
	Key  uint64
}

// Workload is the pure operation generator: a seeded random stream of gets and sets over a key space. Two
// Workloads with the same config and stream produce the same operations. Not safe for concurrent use.
type Workload struct {
	r        *rand.Rand
	zipf     *rand.Zipf // nil for uniform
	keys     uint64
	getRatio float64
}

// NewWorkload returns the generator for stream number stream (one per worker) of cfg.Seed. cfg must be valid.
func NewWorkload(cfg Config, stream uint64) *Workload {
	r := rand.New(rand.NewPCG(cfg.Seed, stream))
	w := &Workload{r: r, keys: uint64(cfg.Keys), getRatio: cfg.GetRatio}
	if cfg.Dist == "zipfian" {
		w.zipf = rand.NewZipf(r, cfg.ZipfS, 1, w.keys-1) // key k has weight (1+k)^-s: key 0 is the hottest
	}
	return w
}

// Next returns the next operation. It does not allocate.
func (w *Workload) Next() Op {
	kind := OpSet
	if w.r.Float64() < w.getRatio {
		kind = OpGet
	}
	var k uint64
	if w.zipf != nil {
		k = w.zipf.Uint64()
	} else {
		k = w.r.Uint64N(w.keys)
	}
	return Op{Kind: kind, Key: k}
}

// AppendKey appends the name of key index i to dst: prefix followed by i in decimal.
func AppendKey(dst []byte, prefix string, i uint64) []byte {
	return strconv.AppendUint(append(dst, prefix...), i, 10)
}

// fillValue fills b with a fixed printable pattern (values are never compared; a pattern beats zeros for
// servers that compress).
func fillValue(b []byte) []byte {
	const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
	return b
}
