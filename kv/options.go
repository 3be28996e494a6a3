package kv

import (
	"flag"
	"fmt"
	"time"
)

// Options are KV's settings as `gokai start` takes them: each has a flag of the same name (Bind) and a
// config-file key of the same name. The node's own settings are node.Config.
type Options struct {
	// ObjectCacheMiB is the vnodes' write-through cache of decoded objects, MiB per node (divided among the
	// node's Q vnodes); default 32; 0 off; range 0..1048576.
	ObjectCacheMiB int

	DeleteMode string        // "keep" (default) or "reap"
	ReapDelay  time.Duration // default 3s

	LWW         bool // last-write-wins instead of siblings; default false
	MaxSiblings int  // default 100; 0 = unlimited

	VclockSmall int           // riak small_vclock; default 50
	VclockBig   int           // riak big_vclock; default 50
	VclockYoung time.Duration // riak young_vclock; default 20s
	VclockOld   time.Duration // riak old_vclock; default 24h
}

// DefaultOptions returns the defaults documented on Options.
func DefaultOptions() Options {
	p := DefaultPruneConfig()
	return Options{ObjectCacheMiB: 32, DeleteMode: string(DeleteKeep), ReapDelay: 3 * time.Second, MaxSiblings: 100,
		VclockSmall: p.SmallVClock, VclockBig: p.BigVClock, VclockYoung: p.YoungVClock, VclockOld: p.OldVClock}
}

// Bind registers one flag per field on fs, writing into o (whose values are the flag defaults).
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.IntVar(&o.ObjectCacheMiB, "object-cache-mib", o.ObjectCacheMiB, "vnodes' cache of hot objects, per node (MiB; 0 = off)")
	fs.StringVar(&o.DeleteMode, "delete-mode", o.DeleteMode, "tombstones: keep or reap")
	fs.DurationVar(&o.ReapDelay, "reap-delay", o.ReapDelay, "reap tombstones this long after all replicas stored them")
	fs.BoolVar(&o.LWW, "lww", o.LWW, "last-write-wins instead of siblings")
	fs.IntVar(&o.MaxSiblings, "max-siblings", o.MaxSiblings, "siblings per key (0 = unlimited)")
	fs.IntVar(&o.VclockSmall, "vclock-small", o.VclockSmall, "vclock entries never pruned below this")
	fs.IntVar(&o.VclockBig, "vclock-big", o.VclockBig, "vclock entries always pruned above this")
	fs.DurationVar(&o.VclockYoung, "vclock-young", o.VclockYoung, "vclock entries younger than this are kept")
	fs.DurationVar(&o.VclockOld, "vclock-old", o.VclockOld, "vclock entries older than this are pruned")
}

// Validate reports the first invalid setting.
func (o Options) Validate() error {
	if o.ObjectCacheMiB < 0 || o.ObjectCacheMiB > 1<<20 {
		return fmt.Errorf("config: object-cache-mib %d: want 0..1048576", o.ObjectCacheMiB)
	}
	if err := o.Config(1).Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// Config is the configuration of KV's vnodes and coordinators on a node of q partitions: a member runs a
// vnode for every partition, so the node's object cache is split q ways.
func (o Options) Config(q int) Config {
	return Config{LWW: o.LWW, MaxSiblings: o.MaxSiblings, Prune: PruneConfig{
		SmallVClock: o.VclockSmall, BigVClock: o.VclockBig, YoungVClock: o.VclockYoung, OldVClock: o.VclockOld},
		CacheBytes: o.ObjectCacheMiB << 20 / max(q, 1),
		DeleteMode: DeleteMode(o.DeleteMode), ReapDelay: o.ReapDelay}
}
