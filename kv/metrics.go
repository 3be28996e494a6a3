package kv

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// KV's own Prometheus series (docs/metrics.md), registered on the node's registry by Start
// (service.Host.Metrics); the request counts and latencies are the coordinators' (op get, put, delete).
type kvMetrics struct {
	readSiblings prometheus.Observer // live siblings per successful read that found the key
	getBytes     prometheus.Observer // encoded size of the object a read returned
	putBytes     prometheus.Observer // encoded size of the object a write left
}

func newKVMetrics(reg prometheus.Registerer) (*kvMetrics, error) {
	siblings := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gokai_kv_read_siblings",
		Help:    "Live siblings in the answer of each read that found the key (1: no conflict).",
		Buckets: []float64{1, 2, 3, 4, 6, 10, 20, 50, 100}})
	size := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gokai_kv_object_size_bytes",
		Help:    "Encoded size of the objects reads returned and writes left (all siblings, clock included), by op.",
		Buckets: prometheus.ExponentialBuckets(64, 4, 10)}, []string{"op"})
	for _, c := range []prometheus.Collector{siblings, size} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return &kvMetrics{readSiblings: siblings, getBytes: size.WithLabelValues("get"), putBytes: size.WithLabelValues("put")}, nil
}
