package evaluate

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/pgfleet/pgfleet/pkg/client"
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

// Codes of pgfleet_client_call_duration_seconds{peer="evaluator"} when no HTTP status came
// back; otherwise the code is the status, e.g. "200".
const (
	codeTimeout    = "timeout"          // the call's deadline or the HTTP client's timeout
	codeCanceled   = "canceled"         // the caller gave up
	codeConnection = "connection_error" // DNS, refused, reset: no answer
)

// callMethod is the method label of the remote evaluator's one endpoint.
const callMethod = "evaluate"

type metrics struct {
	requests *prometheus.CounterVec
	state    prometheus.GaugeFunc     // nil without a remote evaluator
	calls    *prometheus.HistogramVec // nil without a remote evaluator
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
		m.calls = client.NewCallDuration("evaluator")
	}
	return m
}

// register registers all collectors or, on error, none.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.requests}
	if m.state != nil {
		cs = append(cs, m.state, m.calls)
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

// observeCall records one HTTP call to the remote evaluator: code is its status, or "" when
// none came back and err says why.
func (m *metrics) observeCall(ctx context.Context, start time.Time, code string, err error) {
	if code == "" {
		switch {
		case errors.Is(err, context.Canceled) || (ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)):
			code = codeCanceled
		case errors.Is(err, errTimeout):
			code = codeTimeout
		default:
			code = codeConnection
		}
	}
	m.calls.WithLabelValues(callMethod, code).Observe(time.Since(start).Seconds())
}
