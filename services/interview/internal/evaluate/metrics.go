package evaluate

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Outcomes, the outcome label of pgfleet_evaluator_requests_total.
const (
	outcomeOK            = "ok"
	outcomeNotConfigured = "not_configured"
	outcomeCircuitOpen   = "circuit_open"
	outcomeTimeout       = "timeout"
	outcomeError         = "error"
	outcomeCanceled      = "canceled"
	outcomeInvalid       = "invalid_request"
)

// evaluatorNone labels requests that returned an error instead of a Result.
const evaluatorNone = "none"

type metrics struct {
	requests *prometheus.CounterVec
	state    prometheus.GaugeFunc // nil without a remote evaluator
}

func newMetrics(state func() gobreaker.State) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgfleet_evaluator_requests_total",
			Help: "Evaluate calls by the evaluator that produced the result (remote, rubric, or none " +
				"on error) and outcome: ok, not_configured, circuit_open, timeout, error, canceled " +
				"or invalid_request.",
		}, []string{"evaluator", "outcome"}),
	}
	if state != nil {
		// Read at scrape time because gobreaker moves from open to half-open lazily.
		m.state = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgfleet_evaluator_breaker_state",
			Help: "Remote evaluator's circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, func() float64 { return float64(state()) })
	}
	return m
}

// register registers all collectors or, on error, none.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.requests}
	if m.state != nil {
		cs = append(cs, m.state)
	}
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

func (m *metrics) count(evaluator, outcome string) {
	m.requests.WithLabelValues(evaluator, outcome).Inc()
}
