package history_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/history"
)

// buckets are the fleet's latency buckets (seconds).
var buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func TestQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	tests := []struct {
		name    string
		q       float64
		buckets []history.Bucket
		want    float64
	}{
		{"inside a bucket", 0.99, []history.Bucket{{.001, 50}, {.0025, 90}, {.005, 100}, {inf, 100}}, .0025 + .0025*9/10},
		{"any order", 0.5, []history.Bucket{{inf, 100}, {.005, 100}, {.001, 50}, {.0025, 90}}, .001},
		{"first bucket starts at 0", 0.5, []history.Bucket{{.001, 10}, {.01, 10}, {inf, 10}}, .0005},
		{"rank in +Inf answers the largest finite bound", 0.99, []history.Bucket{{.001, 10}, {.01, 50}, {inf, 100}}, .01},
		{"a falling count is raised", 0.5, []history.Bucket{{.001, 10}, {.01, 5}, {.1, 20}, {inf, 20}}, .001},
		{"no observation", 0.99, []history.Bucket{{.001, 0}, {inf, 0}}, math.NaN()},
		{"no +Inf bucket", 0.99, []history.Bucket{{.001, 1}, {.01, 2}}, math.NaN()},
		{"q out of range", 1.5, []history.Bucket{{.001, 1}, {inf, 1}}, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := history.Quantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12) {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// registry holds metrics named as a service's: go-grpc-middleware's and pgpool's.
type registry struct {
	*prometheus.Registry
	handled            *prometheus.CounterVec
	latency            *prometheus.HistogramVec
	acquired, maxConns prometheus.Gauge
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	r := &registry{
		Registry: prometheus.NewRegistry(),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total", Help: "h"},
			[]string{"grpc_method", "grpc_code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "grpc_server_handling_seconds", Help: "h", Buckets: buckets},
			[]string{"grpc_method"}),
		acquired: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgfleet_db_pool_acquired_conns", Help: "h"}),
		maxConns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgfleet_db_pool_max_conns", Help: "h"}),
	}
	r.MustRegister(r.handled, r.latency, r.acquired, r.maxConns)
	return r
}

// call records n calls of method that took d and ended with code.
func (r *registry) call(n int, method, code string, d time.Duration) {
	for range n {
		r.handled.WithLabelValues(method, code).Inc()
		r.latency.WithLabelValues(method).Observe(d.Seconds())
	}
}

// A sample covers what happened since the previous one: calls made before the baseline
// count in neither rate, ratio nor latency.
func TestSampler(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	reg.call(1000, "GetStock", "Internal", 3*time.Second) // before the baseline
	s := history.New(history.Config{Interval: time.Hour}, reg, history.GRPC)
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	if err := s.Record(t0); err != nil {
		t.Fatal(err)
	}
	if got := s.Samples(); len(got) != 0 {
		t.Fatalf("samples after the baseline = %v, want none", got)
	}

	// 200 calls in 10 s across two methods: 180 fast, 20 between 5 and 10 ms; 4 are server
	// errors (Internal, Unavailable), 6 client errors (NotFound) that are not.
	reg.call(150, "GetStock", "OK", 300*time.Microsecond)  // bucket (.00025, .0005]
	reg.call(20, "ListStocks", "OK", 400*time.Microsecond) // same bucket
	reg.call(6, "GetStock", "NotFound", 200*time.Microsecond)
	reg.call(4, "ListStocks", "OK", 200*time.Microsecond) // (.0001, .00025]: 10 there
	reg.call(16, "ListStocks", "OK", 7*time.Millisecond)  // (.005, .01]
	reg.call(2, "ListStocks", "Internal", 7*time.Millisecond)
	reg.call(2, "ListStocks", "Unavailable", 7*time.Millisecond)
	reg.acquired.Set(3)
	reg.maxConns.Set(20)
	if err := s.Record(t0.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}

	got := s.Samples()
	if len(got) != 1 {
		t.Fatalf("samples = %v, want 1", got)
	}
	// rank 0.99 × 200 = 198 lies in (.005, .01], which holds calls 181 to 200:
	// .005 + .005 × (198 − 180) / 20 = .0095.
	want := history.Sample{Time: t0.Add(10 * time.Second), CallsPerSecond: 20, P99: 9500 * time.Microsecond, ErrorRatio: 0.02, PoolUse: 0.15}
	if g := got[0]; !g.Time.Equal(want.Time) || !near(g.CallsPerSecond, want.CallsPerSecond) ||
		(g.P99-want.P99).Abs() > time.Microsecond || !near(g.ErrorRatio, want.ErrorRatio) || !near(g.PoolUse, want.PoolUse) {
		t.Errorf("sample = %+v, want %+v", g, want)
	}

	// An idle interval: no calls, so no latency and no errors, not NaN.
	reg.acquired.Set(0)
	if err := s.Record(t0.Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	idle := s.Samples()[1]
	if idle.CallsPerSecond != 0 || idle.P99 != 0 || idle.ErrorRatio != 0 || idle.PoolUse != 0 {
		t.Errorf("idle sample = %+v, want zeros", idle)
	}
}

// The sampler keeps the last Size samples, oldest first.
func TestSampler_ring(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t)
	s := history.New(history.Config{}, reg, history.GRPC)
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	const records = history.Size + 7
	for i := range records {
		reg.call(i, "GetStock", "OK", time.Millisecond)
		if err := s.Record(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Samples()
	if len(got) != history.Size {
		t.Fatalf("%d samples, want %d", len(got), history.Size)
	}
	for i, g := range got {
		// Record i (from 1) covers the i calls made just before it, in one second.
		n := records - history.Size + i
		if !g.Time.Equal(t0.Add(time.Duration(n)*time.Second)) || !near(g.CallsPerSecond, float64(n)) {
			t.Errorf("sample %d = %v at %v, want %d calls/s at %v", i, g.CallsPerSecond, g.Time, n, t0.Add(time.Duration(n)*time.Second))
		}
	}
}

// The gateway's figures: HTTP codes 500 and over are server errors.
func TestSampler_http(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_gateway_http_requests_total", Help: "h"},
		[]string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgfleet_gateway_http_request_duration_seconds", Help: "h", Buckets: buckets},
		[]string{"route", "method", "code"})
	reg.MustRegister(requests, duration)
	s := history.New(history.Config{}, reg, history.HTTP)
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	if err := s.Record(t0); err != nil {
		t.Fatal(err)
	}
	for code, n := range map[string]int{"200": 7, "404": 1, "503": 2} {
		for range n {
			requests.WithLabelValues("/v1/stocks", "GET", code).Inc()
			duration.WithLabelValues("/v1/stocks", "GET", code).Observe(0.002)
		}
	}
	if err := s.Record(t0.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	g := s.Samples()[0]
	// All ten in (.001, .0025]: rank 9.9 → .001 + .0015 × 9.9 / 10.
	if !near(g.CallsPerSecond, 2) || !near(g.ErrorRatio, 0.2) || (g.P99-2485*time.Microsecond).Abs() > time.Microsecond || g.PoolUse != 0 {
		t.Errorf("sample = %+v, want 2 calls/s, error ratio 0.2, p99 2.485ms, no pool", g)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
