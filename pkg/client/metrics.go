package client

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// metrics are one peer's collectors. The peer is a constant label, so peers share metric
// names on one registry without sharing collectors, and a name dialled twice fails to register.
type metrics struct {
	calls      *prometheus.CounterVec
	rejections prometheus.Counter
	state      prometheus.GaugeFunc
	duration   *prometheus.HistogramVec // see latency.go
}

func newMetrics(peer string, state func() gobreaker.State) *metrics {
	labels := prometheus.Labels{"peer": peer}
	return &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "pgfleet_client_calls_total",
			Help:        "Unary calls to the peer by the code the caller got, breaker rejections included.",
			ConstLabels: labels,
		}, []string{"code"}),
		rejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "pgfleet_client_breaker_rejections_total",
			Help:        "Calls and streams refused by the open circuit breaker without reaching the peer.",
			ConstLabels: labels,
		}),
		// Read at scrape time because gobreaker moves from open to half-open lazily.
		state: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pgfleet_client_breaker_state",
			Help:        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
			ConstLabels: labels,
		}, func() float64 { return float64(state()) }),
		duration: NewCallDuration(peer),
	}
}

// register registers all collectors or, on error, none.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.calls, m.rejections, m.state, m.duration}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
