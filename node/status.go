package node

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gokai-kv/gokai/handoff"
	"github.com/gokai-kv/gokai/ring"
)

// The status page (GET /): one HTML page rendered on the server from the node's state, readable without
// JavaScript; a small script (status.js) re-fetches it every two seconds and swaps the content in place
// (without it, a meta refresh reloads the page). Assets are embedded: the page loads nothing from
// elsewhere. It shows the members (up or down, addresses), the ring as a picture (each partition's owner,
// and the fallback standing in for a down one; partitions in transfer are marked), transfers with progress
// bars, hints pending, the request rate and p99 latency of the last ten minutes (sampled every two
// seconds from the request metrics), and the node's settings.

//go:embed status
var statusFS embed.FS

var statusTmpl = template.Must(template.New("index.html").ParseFS(statusFS, "status/index.html"))

// statusRoutes adds the status page and its assets to mux (operators only, like /metrics).
func (n *Node) statusRoutes(mux *http.ServeMux) {
	mux.Handle("GET /{$}", n.operatorOnly(http.HandlerFunc(n.serveStatus)))
	assets := http.FileServerFS(statusFS)
	for _, f := range []string{"/status/style.css", "/status/status.js"} {
		mux.Handle("GET "+f, n.operatorOnly(assets))
	}
}

func (n *Node) serveStatus(w http.ResponseWriter, r *http.Request) {
	page := n.statusPage()
	var buf bytes.Buffer
	if err := statusTmpl.Execute(&buf, page); err != nil {
		n.logger.Error("status page", "err", err)
		http.Error(w, "status page: internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	_, _ = w.Write(buf.Bytes())
}

// statusPage is what the template renders.
type statusPage struct {
	Node, Version, Cluster, Claimant string
	Ready                            bool
	Reason                           string
	StateVersion                     uint64
	Q, N                             int
	Now                              string
	Members                          []statusMember
	Ring                             template.HTML // the ring's SVG
	Legend                           []legendEntry
	Transfers                        []statusTransfer
	Pending                          []statusPending
	HintsPending                     int
	HintedKeys                       int64
	Chart                            template.HTML // the requests chart's SVG
	RateNow, P99Now                  string
	Settings                         []setting
}

type statusMember struct {
	Name, Status, Membership, RPC, Memcache, Gossip, Transport string
	Up, Self                                                   bool
	Partitions                                                 int
	Class                                                      string // the swatch's CSS class: its ring colour
}

type legendEntry struct{ Name, Class string }

type statusTransfer struct {
	Service, Kind, From, To, State, LastError string
	Partition, Attempts                       int
	Keys, Total                               int64
	Percent                                   int
	Rate                                      string
}

type statusPending struct {
	Partition      int
	From, To, What string
}

type setting struct{ Name, Value string }

// palette colours members in the ring picture, in member order; style.css has the same as classes c0..c15.
var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
	"#9c755f", "#bab0ac", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"}

// statusPage gathers the page's data. Before the node started (or once it is stopping) only the header.
func (n *Node) statusPage() statusPage {
	ready, reason := readiness(n.readyInput())
	p := statusPage{Node: n.cfg.Name, Version: Version, Ready: ready, Reason: reason, Now: n.now().UTC().Format(time.RFC3339),
		Settings: configSettings(n.cfg)}
	if !n.web.started.Load() || n.web.stopping.Load() {
		return p
	}
	st := n.clusterStatus()
	s := n.state()
	p.Cluster, p.Claimant, p.StateVersion, p.Q, p.N = s.Cluster, string(s.Claimant), s.Version, s.Ring.Q(), s.N
	colors := map[ring.NodeID]string{}
	for i, raw := range st["members"].([]any) {
		m := raw.(map[string]any)
		name := m["name"].(string)
		color, class := palette[i%len(palette)], fmt.Sprintf("c%d", i%len(palette))
		colors[ring.NodeID(name)] = color
		str := func(k string) string { v, _ := m[k].(string); return v }
		p.Members = append(p.Members, statusMember{Name: name, Membership: str("status"), RPC: str("rpc_addr"),
			Memcache: str("memcache_addr"), Gossip: str("gossip_addr"), Transport: str("transport_addr"),
			Up: m["alive"].(bool) && !m["suspected"].(bool), Self: name == n.cfg.Name, Partitions: m["partitions"].(int),
			Class: class})
		p.Legend = append(p.Legend, legendEntry{Name: name, Class: class})
	}
	for i := range p.Members {
		p.Members[i].Status = "down"
		if p.Members[i].Up {
			p.Members[i].Status = "up"
		}
	}
	moving := map[int]string{}
	for _, t := range s.Transfers {
		moving[t.Partition] = fmt.Sprintf("%s → %s", t.From, t.To)
		p.Pending = append(p.Pending, statusPending{Partition: t.Partition, From: string(t.From), To: string(t.To), What: string(t.State)})
	}
	p.Ring = template.HTML(ringSVG(ringCells(s.Ring, s.N, n.isUp, moving), colors))
	for _, pr := range n.cl.handoff.Progress() {
		p.Transfers = append(p.Transfers, transferRow(pr))
		if pr.Hinted && pr.State != "done" {
			p.HintsPending++
		}
	}
	p.HintedKeys = n.cl.handoff.HintedKeys()
	samples := n.web.samples.snapshot()
	p.Chart = template.HTML(chartSVG(samples))
	if len(samples) > 0 {
		last := samples[len(samples)-1]
		p.RateNow = fmt.Sprintf("%.0f/s", last.rate)
		p.P99Now = fmtSeconds(last.p99)
	}
	return p
}

func transferRow(pr handoff.Progress) statusTransfer {
	t := statusTransfer{Service: pr.Service, From: string(pr.From), To: string(pr.To), State: string(pr.State),
		LastError: pr.LastError, Partition: pr.Partition, Attempts: pr.Attempts, Keys: pr.Keys, Total: pr.TotalKeys, Kind: "ownership"}
	if pr.Hinted {
		t.Kind = "hinted"
	}
	switch {
	case pr.State == "done":
		t.Percent = 100
	case pr.TotalKeys > 0:
		t.Percent = int(min(100, 100*pr.Keys/pr.TotalKeys))
	}
	if pr.RatePerSec > 0 {
		t.Rate = fmt.Sprintf("%.0f keys/s", pr.RatePerSec)
	}
	return t
}

// configSettings lists the node's settings, by field name.
func configSettings(c Config) []setting {
	v := reflect.ValueOf(c)
	out := make([]setting, 0, v.NumField())
	for i := range v.NumField() {
		out = append(out, setting{Name: v.Type().Field(i).Name, Value: fmt.Sprint(v.Field(i).Interface())})
	}
	return out
}

// ringCell is one partition in the ring picture.
type ringCell struct {
	Partition int
	Owner     ring.NodeID
	OwnerUp   bool
	Fallback  ring.NodeID // who stands in for a down owner ("" when up, or when there is none)
	Moving    string      // "from → to" while the partition is in transfer
}

// ringCells is each partition's owner and, for a down owner, the fallback the preference list gives.
func ringCells(r *ring.Ring, n int, up func(ring.NodeID) bool, moving map[int]string) []ringCell {
	cells := make([]ringCell, r.Q())
	for p := range cells {
		c := ringCell{Partition: p, Owner: r.Owner(p), Moving: moving[p]}
		c.OwnerUp = up(c.Owner)
		if !c.OwnerUp {
			for _, e := range r.PreflistForPartition(p, n, up) {
				if !e.Primary && e.Partition == p {
					c.Fallback = e.Node
					break
				}
			}
		}
		cells[p] = c
	}
	return cells
}

// ringArcsMax bounds the arcs of the ring picture: a larger ring is drawn one arc per run of partitions
// (the run's first partition's owner; marked down or moving if any partition of the run is), so the page
// stays small at Q=65536.
const ringArcsMax = 1024

// ringSVG draws the ring: one arc per partition, clockwise from the top, coloured by owner; a down owner's
// arc is faded with its fallback's colour on the inner band; a partition in transfer has a dark outer mark.
// Every arc has a title (hover) naming partition, owner and fallback.
func ringSVG(cells []ringCell, colors map[ring.NodeID]string) string {
	const size, cx, cy, rOut, rIn, rFall = 320.0, 160.0, 160.0, 150.0, 105.0, 80.0
	total := len(cells)
	cells, run := downsample(cells)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="ring" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="ring of %d partitions">`,
		size, size, size, size, total)
	q := float64(len(cells))
	color := func(n ring.NodeID) string {
		if c, ok := colors[n]; ok {
			return c
		}
		return "#999999"
	}
	for i, c := range cells {
		a0 := 2 * math.Pi * float64(i) / q
		a1 := 2 * math.Pi * float64(i+1) / q
		title := fmt.Sprintf("partition %d: %s", c.Partition, c.Owner)
		if run > 1 {
			title = fmt.Sprintf("partitions %d-%d: %s (first)", c.Partition, c.Partition+run-1, c.Owner)
		}
		class := "arc"
		if !c.OwnerUp {
			class += " down"
			title += " (down)"
			if c.Fallback != "" {
				title += ", fallback " + string(c.Fallback)
			}
		}
		if c.Moving != "" {
			class += " moving"
			title += ", moving " + c.Moving
		}
		fmt.Fprintf(&b, `<path class="%s" data-partition="%d" data-owner="%s" d="%s" fill="%s"><title>%s</title></path>`,
			class, c.Partition, html.EscapeString(string(c.Owner)), arcPath(cx, cy, rIn, rOut, a0, a1), color(c.Owner), html.EscapeString(title))
		if c.Fallback != "" {
			fmt.Fprintf(&b, `<path class="fallback" data-partition="%d" data-fallback="%s" d="%s" fill="%s"><title>%s</title></path>`,
				c.Partition, html.EscapeString(string(c.Fallback)), arcPath(cx, cy, rFall, rIn-4, a0, a1), color(c.Fallback), html.EscapeString(title))
		}
		if c.Moving != "" {
			fmt.Fprintf(&b, `<path class="transfer-mark" d="%s"/>`, arcPath(cx, cy, rOut+2, rOut+8, a0, a1))
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="ring-label">Q=%d</text></svg>`, cx, cy+5, total)
	return b.String()
}

// downsample keeps one cell per run of len(cells)/ringArcsMax partitions (a power of two: Q is), down or
// moving when any of its run is; run is 1 for rings of at most ringArcsMax partitions.
func downsample(cells []ringCell) ([]ringCell, int) {
	if len(cells) <= ringArcsMax {
		return cells, 1
	}
	run := len(cells) / ringArcsMax
	out := make([]ringCell, 0, ringArcsMax)
	for i := 0; i < len(cells); i += run {
		c := cells[i]
		for _, o := range cells[i+1 : i+run] {
			if !o.OwnerUp && c.OwnerUp {
				c.OwnerUp, c.Fallback = false, o.Fallback
			}
			if o.Moving != "" && c.Moving == "" {
				c.Moving = o.Moving
			}
		}
		out = append(out, c)
	}
	return out, run
}

// arcPath is an annular sector between radii r0 < r1 and angles a0 < a1 (0 = top, clockwise).
func arcPath(cx, cy, r0, r1, a0, a1 float64) string {
	pt := func(r, a float64) (float64, float64) { return cx + r*math.Sin(a), cy - r*math.Cos(a) }
	large := 0
	if a1-a0 > math.Pi {
		large = 1
	}
	x0, y0 := pt(r1, a0)
	x1, y1 := pt(r1, a1)
	x2, y2 := pt(r0, a1)
	x3, y3 := pt(r0, a0)
	return fmt.Sprintf("M%.2f %.2f A%.0f %.0f 0 %d 1 %.2f %.2f L%.2f %.2f A%.0f %.0f 0 %d 0 %.2f %.2f Z",
		x0, y0, r1, r1, large, x1, y1, x2, y2, r0, r0, large, x3, y3)
}

// chartSVG draws request rate (requests/s) and p99 latency over the samples, each on its own scale.
func chartSVG(samples []sample) string {
	const w, h, pad = 640.0, 160.0, 30.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="requests per second and p99 latency">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect class="frame" x="%.0f" y="%.0f" width="%.0f" height="%.0f"/>`, pad, 5.0, w-2*pad, h-pad-5)
	if len(samples) < 2 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="empty">collecting samples…</text></svg>`, w/2-60, h/2)
		return b.String()
	}
	var maxRate, maxP99 float64
	for _, s := range samples {
		maxRate, maxP99 = max(maxRate, s.rate), max(maxP99, s.p99)
	}
	maxRate, maxP99 = max(maxRate, 1), max(maxP99, 0.001)
	t0, t1 := samples[0].at, samples[len(samples)-1].at
	span := max(t1.Sub(t0).Seconds(), 1)
	line := func(val func(sample) float64, top float64, class string) {
		var pts []string
		for _, s := range samples {
			x := pad + (w-2*pad)*s.at.Sub(t0).Seconds()/span
			y := (h - pad) - (h-pad-5)*val(s)/top
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>`, class, strings.Join(pts, " "))
	}
	line(func(s sample) float64 { return s.rate }, maxRate, "rate")
	line(func(s sample) float64 { return s.p99 }, maxP99, "p99")
	fmt.Fprintf(&b, `<text x="2" y="14" class="rate-label">%.0f/s</text>`, maxRate)
	fmt.Fprintf(&b, `<text x="%.0f" y="14" class="p99-label" text-anchor="end">%s</text>`, w-2, fmtSeconds(maxP99))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="axis">−%s</text><text x="%.0f" y="%.0f" class="axis" text-anchor="end">now</text>`,
		pad, h-10, t1.Sub(t0).Round(time.Second), w-pad, h-10)
	b.WriteString(`</svg>`)
	return b.String()
}

func fmtSeconds(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.001:
		return fmt.Sprintf("%.1f ms", s*1000)
	}
	return fmt.Sprintf("%.0f µs", s*1e6)
}

// sample is one point of the requests chart.
type sample struct {
	at   time.Time
	rate float64 // requests per second since the previous sample, every service and op
	p99  float64 // seconds, from the latency histograms' increase since the previous sample; 0 without requests
}

// sampleEvery and sampleKeep: the chart covers the last ten minutes.
const (
	sampleEvery = 2 * time.Second
	sampleKeep  = 300
)

// samples is the chart's history: a bounded list of points and the cumulative histogram they are the
// differences of.
type samples struct {
	mu     sync.Mutex
	points []sample // REQUIRES: mu held
	last   cumHist  // REQUIRES: mu held
	once   sync.Once
}

// cumHist is a cumulative latency histogram summed over ops.
type cumHist struct {
	at     time.Time
	count  uint64
	bounds []float64
	counts []uint64 // cumulative per bound
}

func (s *samples) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.points...)
}

// add records the histogram h read at h.at: the point is its difference from the previous reading.
func (s *samples) add(h cumHist) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.last
	s.last = h
	if prev.at.IsZero() || !h.at.After(prev.at) || len(prev.counts) != len(h.counts) {
		return
	}
	dt := h.at.Sub(prev.at).Seconds()
	d := make([]uint64, len(h.counts))
	for i := range d {
		d[i] = h.counts[i] - min(h.counts[i], prev.counts[i])
	}
	dc := h.count - min(h.count, prev.count)
	pt := sample{at: h.at, rate: float64(dc) / dt, p99: bucketQuantile(0.99, h.bounds, d, dc)}
	s.points = append(s.points, pt)
	if len(s.points) > sampleKeep {
		s.points = append(s.points[:0], s.points[len(s.points)-sampleKeep:]...)
	}
}

// bucketQuantile estimates the q-quantile from cumulative bucket counts (upper bounds bounds; total is
// the count including the +Inf bucket) by linear interpolation inside the bucket, as PromQL's
// histogram_quantile does. 0 when there are no observations; the highest bound when the quantile falls
// in +Inf.
func bucketQuantile(q float64, bounds []float64, cum []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, ub := range bounds {
		if float64(cum[i]) >= rank {
			inBucket := cum[i] - below
			if inBucket == 0 {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = ub, cum[i]
	}
	return bounds[len(bounds)-1]
}

// readHist sums the coordinators' latency histograms of every service and op.
func (m *nodeMetrics) readHist(now time.Time) cumHist {
	h := cumHist{at: now, bounds: latencyBuckets, counts: make([]uint64, len(latencyBuckets))}
	m.obsMu.Lock()
	obs := append([]*coordObserver(nil), m.observers...)
	m.obsMu.Unlock()
	for _, o := range obs {
		for _, s := range *o.ops.Load() {
			var d dto.Metric
			if err := s.latency.(prometheus.Metric).Write(&d); err != nil {
				continue
			}
			hist := d.GetHistogram()
			h.count += hist.GetSampleCount()
			for i, bk := range hist.GetBucket() {
				if i < len(h.counts) {
					h.counts[i] += bk.GetCumulativeCount()
				}
			}
		}
	}
	return h
}

// sampleLoop reads the request histograms every sampleEvery until ctx ends (started once, by runHTTP).
func (n *Node) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	n.web.samples.add(n.web.metrics.readHist(n.now()))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.web.samples.add(n.web.metrics.readHist(n.now()))
		}
	}
}
