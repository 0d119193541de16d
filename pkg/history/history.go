// Package history keeps the last minutes of a process's own traffic, read from its own
// Prometheus registry, for the status page's charts: every Interval a Sampler gathers the
// registry and turns the counters' and the latency histogram's growth since the last gather
// into one Sample (calls per second, p99 latency, server error ratio, pool use). It keeps the
// last Size of them, so the page draws them without a Prometheus server.
package history

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Size is how many samples a Sampler keeps: 15 minutes at the default interval of 10 s.
const Size = 90

// Config is the environment's say on sampling.
type Config struct {
	// Interval between samples; Size of them are kept, so 10 s keeps 15 minutes. Tests
	// shorten it to get points sooner.
	Interval time.Duration `env:"HISTORY_INTERVAL, default=10s" help:"time between samples of the status page's charts (calls/s, p99, server errors, pool use); 90 are kept"`
}

// Sample is one interval's figures. Without calls in the interval, P99 and ErrorRatio are 0.
type Sample struct {
	Time           time.Time // end of the interval
	CallsPerSecond float64
	P99            time.Duration
	ErrorRatio     float64 // calls ended by a server error ÷ calls, 0 to 1
	PoolUse        float64 // acquired ÷ max connections at Time, 0 to 1; 0 without a pool
}

// Metrics names what a Sampler reads in the registry.
type Metrics struct {
	Calls       string // counter of finished calls, labelled with their code
	CodeLabel   string
	ServerError func(code string) bool // whether a code counts as a server error
	Latency     string                 // histogram of call latency, seconds
	// PoolAcquired and PoolMax are gauges; left empty (or absent), pool use is 0.
	PoolAcquired, PoolMax string
}

// GRPC reads a pgfleet service's registry: go-grpc-middleware's server metrics and
// pgpool's collector.
var GRPC = Metrics{
	Calls:        "grpc_server_handled_total",
	CodeLabel:    "grpc_code",
	ServerError:  GRPCServerError,
	Latency:      "grpc_server_handling_seconds",
	PoolAcquired: "pgfleet_db_pool_acquired_conns",
	PoolMax:      "pgfleet_db_pool_max_conns",
}

// HTTP reads the gateway's registry.
var HTTP = Metrics{
	Calls:       "pgfleet_gateway_http_requests_total",
	CodeLabel:   "code",
	ServerError: HTTPServerError,
	Latency:     "pgfleet_gateway_http_request_duration_seconds",
}

// GRPCServerError reports whether a grpc_code is one of the fleet's server errors: those
// its error ratios and alerts count.
func GRPCServerError(code string) bool {
	switch code {
	case "Unknown", "Internal", "Unavailable", "DataLoss", "DeadlineExceeded":
		return true
	}
	return false
}

// HTTPServerError reports whether an HTTP status code is 500 or more.
func HTTPServerError(code string) bool {
	n, err := strconv.Atoi(code)
	return err == nil && n >= 500
}

// Sampler samples one registry. Its methods are safe for concurrent use.
type Sampler struct {
	gatherer prometheus.Gatherer
	metrics  Metrics
	interval time.Duration

	mu      sync.Mutex
	last    totals
	hasLast bool
	ring    [Size]Sample
	next    int // where the next sample goes
	count   int // samples in ring, at most Size
}

// New returns a sampler of g; Run samples it.
func New(cfg Config, g prometheus.Gatherer, m Metrics) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	return &Sampler{gatherer: g, metrics: m, interval: cfg.Interval}
}

// Run records a sample every interval until ctx ends; the first Record, at once, only sets
// the baseline. A failed gather is skipped: the next sample covers the longer interval.
func (s *Sampler) Run(ctx context.Context) {
	_ = s.Record(time.Now())
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			_ = s.Record(now)
		}
	}
}

// Record gathers the registry and, but for the first time, adds the sample of the interval
// since the previous Record, at now.
func (s *Sampler) Record(now time.Time) error {
	families, err := s.gatherer.Gather()
	if err != nil { // a partial gather would make false deltas: keep the previous baseline
		return fmt.Errorf("gather: %w", err)
	}
	cur := read(families, s.metrics, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasLast {
		s.ring[s.next] = sample(s.last, cur)
		s.next = (s.next + 1) % Size
		s.count = min(s.count+1, Size)
	}
	s.last, s.hasLast = cur, true
	return nil
}

// Samples returns the samples kept, oldest first.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Sample, 0, s.count)
	for i := range s.count {
		out = append(out, s.ring[(s.next-s.count+i+Size)%Size])
	}
	return out
}

// totals are the registry's cumulative figures at one moment.
type totals struct {
	at           time.Time
	calls, fails float64
	buckets      map[float64]float64 // cumulative count by upper bound, +Inf included
	acquired     float64
	max          float64
}

// read sums every series of the families m names (all methods, all codes).
func read(families []*dto.MetricFamily, m Metrics, at time.Time) totals {
	t := totals{at: at, buckets: map[float64]float64{}}
	for _, f := range families {
		switch f.GetName() {
		case m.Calls:
			for _, c := range f.GetMetric() {
				v := c.GetCounter().GetValue()
				t.calls += v
				if m.ServerError != nil && m.ServerError(label(c, m.CodeLabel)) {
					t.fails += v
				}
			}
		case m.Latency:
			for _, h := range f.GetMetric() {
				for _, b := range h.GetHistogram().GetBucket() {
					t.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
				t.buckets[math.Inf(1)] += float64(h.GetHistogram().GetSampleCount())
			}
		case m.PoolAcquired:
			t.acquired = gauge(f)
		case m.PoolMax:
			t.max = gauge(f)
		}
	}
	return t
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func gauge(f *dto.MetricFamily) float64 {
	var v float64
	for _, m := range f.GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

// sample is the interval from prev to cur.
func sample(prev, cur totals) Sample {
	s := Sample{Time: cur.at}
	if cur.max > 0 {
		s.PoolUse = cur.acquired / cur.max
	}
	calls := cur.calls - prev.calls
	if secs := cur.at.Sub(prev.at).Seconds(); secs > 0 && calls > 0 {
		s.CallsPerSecond = calls / secs
	}
	if calls > 0 {
		s.ErrorRatio = (cur.fails - prev.fails) / calls
	}
	var delta []Bucket
	for le, n := range cur.buckets {
		delta = append(delta, Bucket{UpperBound: le, Count: n - prev.buckets[le]})
	}
	if q := Quantile(0.99, delta); !math.IsNaN(q) {
		s.P99 = time.Duration(q * float64(time.Second))
	}
	return s
}

// Bucket is one bucket of a classic histogram: the count of observations ≤ UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64 // cumulative
}

// Quantile is PromQL's histogram_quantile(q, ...) on one histogram's buckets (the +Inf one
// included, in any order): it finds the bucket that holds the q-quantile's rank and
// interpolates linearly inside it, assuming the first bucket starts at 0 (when its upper
// bound is positive). A rank in the +Inf bucket answers the largest finite bound. NaN when
// there is no +Inf bucket, no observation, or q is outside [0, 1].
//
// Hand-written rather than imported from prometheus/prometheus's promql: its engine would
// come into every service binary for these few lines.
func Quantile(q float64, buckets []Bucket) float64 {
	if q < 0 || q > 1 || math.IsNaN(q) {
		return math.NaN()
	}
	b := slices.Clone(buckets)
	slices.SortFunc(b, func(x, y Bucket) int { return cmp.Compare(x.UpperBound, y.UpperBound) })
	if len(b) < 2 || !math.IsInf(b[len(b)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Counts that fall as the bound grows (series that came and went between two
	// gathers) are raised to their predecessor, as histogram_quantile does.
	for i := 1; i < len(b); i++ {
		b[i].Count = max(b[i].Count, b[i-1].Count)
	}
	total := b[len(b)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	i, _ := slices.BinarySearchFunc(b[:len(b)-1], rank, func(x Bucket, r float64) int { return cmp.Compare(x.Count, r) })
	// BinarySearchFunc finds the first bucket whose count is ≥ rank.
	switch {
	case i == len(b)-1:
		return b[len(b)-2].UpperBound
	case i == 0 && b[0].UpperBound <= 0:
		return b[0].UpperBound
	}
	start, below := 0.0, 0.0
	if i > 0 {
		start, below = b[i-1].UpperBound, b[i-1].Count
	}
	end, in := b[i].UpperBound, b[i].Count-below
	if in <= 0 {
		return end
	}
	return start + (end-start)*(rank-below)/in
}
