package evaluate_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

	body := scrape(t, serveMetrics(t, reg))
	for _, want := range []string{
		`pgfleet_client_call_duration_seconds_count{code="200",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="503",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="connection_error",method="evaluate",peer="evaluator"} 1`,
		`pgfleet_client_call_duration_seconds_bucket{code="200",method="evaluate",peer="evaluator",le="0.0001"} `,
		`pgfleet_client_call_duration_seconds_bucket{code="200",method="evaluate",peer="evaluator",le="10"} 1`,
	} {
		if !hasLinePrefix(body, want) {
			t.Errorf("scrape lacks a line starting %q; got:\n%s", want, body)
		}
	}
}

func hasLinePrefix(body, prefix string) bool {
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func serveMetrics(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(g, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis) //nolint:errcheck // ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })
	return "http://" + lis.Addr().String() + "/metrics"
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a local scrape, bounded by the test's deadline
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return string(b)
}
