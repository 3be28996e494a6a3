package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gokai-kv/gokai/internal/pki"
	"github.com/gokai-kv/gokai/storage"
)

// The operators' HTTP listener (http-listen): Prometheus metrics, health checks for load balancers and
// orchestrators, and the status page. It is the tree's second child, right after the client sockets are
// bound, so /healthz answers and /readyz says why the node is not ready while the rest of the tree starts;
// it is stopped last but one.
//
//	/healthz   200 "ok" while the process serves HTTP at all (liveness)
//	/readyz    200 "ready", or 503 with the reason: starting, stopping, storage not writable
//	/metrics   Prometheus text format (docs/metrics.md)
//	/          the status page (status.go)
//
// With certs-dir the listener speaks TLS with the node certificate, and every path but the two health
// checks needs a client certificate the cluster CA signed (an operator's or a node's), as the operator
// methods of msgpack-RPC do; health checks stay open so that a load balancer needs no certificate.

// web is the HTTP listener's state.
type web struct {
	ln   net.Listener
	srv  *http.Server
	addr atomic.Pointer[string] // the bound address; nil before bind

	// started is set once the tree started (Node.Start returned), stopping once Node.Stop began: handlers
	// read the node's parts only in between (the atomic orders them after the tree's start).
	started, stopping atomic.Bool

	metrics *nodeMetrics
	samples samples // the status page's chart

	// probe caches the data dir writability probe (probeEvery).
	probeMu   sync.Mutex
	probeAt   time.Time
	probeErr  error
	probeTest func(dir string) error // tests replace it; nil: probeDir
}

// probeEvery is how often /readyz writes a file into the data dir to check it is writable.
const probeEvery = time.Second

// HTTPAddr is the bound address of the HTTP listener ("" when disabled or not bound yet). Safe from any
// goroutine at any time, during Start too.
func (n *Node) HTTPAddr() string {
	if n.web == nil {
		return ""
	}
	if a := n.web.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// startHTTP binds the HTTP listener and prepares its server (runHTTP serves).
func (n *Node) startHTTP(context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	n.web.ln = n.httpTLS(ln)
	addr := ln.Addr().String()
	n.web.addr.Store(&addr)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", n.serveReady)
	n.statusRoutes(mux)
	mux.Handle("GET /metrics", n.operatorOnly(promhttp.HandlerFor(n.web.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{n}, ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 4,
		Timeout: 10 * time.Second})))
	n.web.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		// Failed handshakes and broken connections are a client's business: debug level.
		ErrorLog: slog.NewLogLogger(n.logger.With("component", "http").Handler(), slog.LevelDebug)}
	n.logger.Info("http listening", "addr", addr, "tls", n.pki != nil)
	return nil
}

// runHTTP serves until the listener is closed by stopHTTP; the first run also starts the status page's
// sampler (it ends with ctx).
func (n *Node) runHTTP(ctx context.Context) error {
	n.web.samples.once.Do(func() { go n.sampleLoop(ctx) })
	return serveLoop(ctx, "http", &n.web.ln, n.httpTLS, func(l net.Listener) error {
		err := n.web.srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			<-ctx.Done()
		}
		return err
	})
}

func (n *Node) stopHTTP(ctx context.Context) error {
	if n.web.srv == nil {
		return n.web.ln.Close()
	}
	return n.web.srv.Shutdown(ctx)
}

// httpTLS serves ln over TLS with the node certificate when the node has certificates; client
// certificates are verified if given (operatorOnly requires one).
func (n *Node) httpTLS(ln net.Listener) net.Listener {
	if n.pki == nil {
		return ln
	}
	cfg := n.pki.ServerConfig(false)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return tls.NewListener(ln, cfg)
}

// operatorOnly lets a request through when it comes from an operator: with certificates, a TLS client
// whose certificate the cluster CA signed (an operator's or a node's); without, anyone who reaches the
// listener (loopback unless -insecure).
func (n *Node) operatorOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.pki != nil && !isOperatorTLS(r.TLS) {
			http.Error(w, "forbidden: a client certificate of the cluster CA is required", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isOperatorTLS reports whether a TLS connection's client proved an operator's or a node's certificate of
// the cluster CA.
func isOperatorTLS(cs *tls.ConnectionState) bool {
	if cs == nil {
		return false
	}
	if _, err := pki.PeerIdentity(cs.VerifiedChains, pki.KindClient); err == nil {
		return true
	}
	_, err := pki.PeerIdentity(cs.VerifiedChains, pki.KindNode)
	return err == nil
}

// serveReady answers /readyz.
func (n *Node) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ok, reason := readiness(n.readyInput())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ready")
}

// readyInput gathers what readiness decides from.
func (n *Node) readyInput() readyIn {
	in := readyIn{started: n.web.started.Load(), stopping: n.web.stopping.Load()}
	if !in.started || in.stopping {
		return in
	}
	in.stateLoaded = n.cl != nil && n.cl.gossip != nil && n.state() != nil
	for _, rt := range n.svcs {
		if rt.vnodes == nil || rt.coords == nil {
			in.servicesDown = append(in.servicesDown, rt.spec.Name)
		}
	}
	if db, ok := n.backend.(*storage.LevelDB); ok {
		in.diskFull = db.DiskFull()
		in.dirErr = n.probeDataDir()
	}
	return in
}

// probeDataDir reports whether a file can be created in the data dir (at most once per probeEvery; the
// last result in between).
func (n *Node) probeDataDir() error {
	n.web.probeMu.Lock()
	defer n.web.probeMu.Unlock()
	now := n.now()
	if !n.web.probeAt.IsZero() && now.Sub(n.web.probeAt) < probeEvery && now.After(n.web.probeAt) {
		return n.web.probeErr
	}
	probe := n.web.probeTest
	if probe == nil {
		probe = probeDir
	}
	n.web.probeAt, n.web.probeErr = now, probe(n.cfg.DataDir)
	return n.web.probeErr
}

// probeDir creates, syncs and removes a small file in dir.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write([]byte("gokai readyz probe\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// readyIn is what a node's readiness is decided from.
type readyIn struct {
	started, stopping bool     // the tree started; Stop began
	stateLoaded       bool     // the cluster state is loaded and gossip runs
	servicesDown      []string // services without vnodes or coordinators
	diskFull          bool     // storage refuses writes for want of space
	dirErr            error    // the data dir probe failed
}

// readiness decides /readyz: ready, or the first reason why not.
func readiness(in readyIn) (bool, string) {
	switch {
	case in.stopping:
		return false, "stopping"
	case !in.started:
		return false, "starting"
	case !in.stateLoaded:
		return false, "cluster state not loaded"
	case len(in.servicesDown) > 0:
		return false, fmt.Sprintf("services not started: %v", in.servicesDown)
	case in.diskFull:
		return false, "storage not writable: disk full"
	case in.dirErr != nil:
		cause := in.dirErr
		if u := errors.Unwrap(cause); u != nil {
			cause = u // NB: an *os.PathError's cause: the reason without the machine's path
		}
		return false, fmt.Sprintf("storage not writable: %v", cause)
	}
	return true, "ready"
}

// slogPrinter lets promhttp report encoding errors through the node's logger.
type slogPrinter struct{ n *Node }

func (p slogPrinter) Println(v ...any) { p.n.logger.Warn("metrics: " + fmt.Sprint(v...)) }
