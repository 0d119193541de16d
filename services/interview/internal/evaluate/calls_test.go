package evaluate_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/metricstest"
)

// TestHybrid_callDuration: calls to a real remote evaluator, answered 200, then 503, then
// refused once it has closed, are read from a real scrape of pgfleet_client_call_duration_seconds
// by status or error class, in the fleet's buckets.
func TestHybrid_callDuration(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			respond(http.StatusOK, `{"score": 50, "met": [0]}`)(w, r)
			return
		}
		respond(http.StatusServiceUnavailable, `{}`)(w, r)
	}))
	h, reg := newHybrid(t, testConfig(srv.URL))
	for i := range 3 {
		if i == 2 {
			srv.Close() // nothing listens there any more
		}
		if _, err := h.Evaluate(t.Context(), request); err != nil {
			t.Fatalf("Evaluate %d: %v", i, err)
		}
	}

	body := metricstest.Scrape(t, metricstest.Serve(t, reg))
	for _, want := range []string{
		`pgfleet_client_call_duration_seconds_count{code="200",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="503",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="connection_error",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_bucket{code="200",method="evaluate",peer="evaluator",le="0.0001"} `,
		`pgfleet_client_call_duration_seconds_bucket{code="200",method="evaluate",peer="evaluator",le="10"} 1`,
	} {
		metricstest.WantLine(t, body, want)
	}
}
