package retry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

type metrics struct {
	operations *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	errors     *prometheus.CounterVec
	backoff    prometheus.Histogram
	state      prometheus.GaugeFunc
	rejections prometheus.Counter
}

func newMetrics(state func() gobreaker.State) *metrics {
	return &metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgfleet_retry_operations_total",
			Help: "RunTx and Do calls by outcome: success, permanent, exhausted or circuit_open.",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgfleet_retry_attempts_total",
			Help: "Attempts by result class: ok, retryable, ambiguous or permanent.",
		}, []string{"class"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgfleet_retry_errors_total",
			Help: "Failed attempts by SQLSTATE (network: connection failure without one; canceled; other).",
		}, []string{"sqlstate"}),
		backoff: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgfleet_retry_backoff_seconds",
			Help:    "Delays slept before retrying.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12), // 1ms .. ~2s
		}),
		// Read at scrape time because gobreaker moves from open to half-open lazily.
		state: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgfleet_retry_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, func() float64 { return float64(state()) }),
		rejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgfleet_retry_breaker_rejections_total",
			Help: "Attempts refused by the open circuit breaker.",
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.operations, m.attempts, m.errors, m.backoff, m.state, m.rejections)
}
