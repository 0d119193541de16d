package evaluate_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
)

// request meets points 0 and 1 of joins by rubric: 75.
var request = evaluate.Request{
	QuestionID: 42,
	Question:   "How would you report orders per customer?",
	Category:   "sql",
	Rubric:     joins,
	Answer:     "An inner JOIN on customers, then GROUP BY customer.",
}

// remote runs handle as the remote evaluator until the test ends and returns its URL and
// a count of the requests it got.
func remote(t *testing.T, handle http.HandlerFunc) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// stall answers only when the client gives up, or after a long while.
func stall(_ http.ResponseWriter, r *http.Request) {
	// The server notices a client hang up, and cancels r's context, only once the
	// request body has been read.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// testConfig keeps the breaker out of the way unless a test tunes it.
func testConfig(url string) evaluate.Config {
	return evaluate.Config{
		URL:     url,
		Timeout: 5 * time.Second,
		Breaker: breaker.Config{MinRequests: new(uint32(1000)), FailureRatio: 0.5, OpenTimeout: new(200 * time.Millisecond), Window: time.Minute},
	}
}

func newHybrid(t *testing.T, cfg evaluate.Config) (*evaluate.Hybrid, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return evaluate.New(cfg, nil, reg), reg
}

// fallback is ScoreRubric's result for r with the given reason.
func fallback(r evaluate.Request, reason string) evaluate.Result {
	res := evaluate.ScoreRubric(r)
	res.Fallback = reason
	return res
}

func TestHybrid_Evaluate_remote(t *testing.T) {
	t.Parallel()
	type call struct {
		method, contentType string
		body                any
	}
	calls := make(chan call, 1)
	url, _ := remote(t, func(w http.ResponseWriter, r *http.Request) {
		var body any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("decode request: %v", err)
		}
		calls <- call{r.Method, r.Header.Get("Content-Type"), body}
		respond(http.StatusOK, `{"score": 87.456, "met": [2, 0], "feedback": "Solid; mention EXPLAIN.", "model": "x"}`)(w, r)
	})
	h, reg := newHybrid(t, testConfig(url))

	got, err := h.Evaluate(t.Context(), request)
	if err != nil {
		t.Fatalf("Evaluate() = %v", err)
	}
	want := evaluate.Result{
		Score:     87.46,
		Met:       []int{0, 2},
		Missed:    []int{1},
		Evaluator: "remote",
		Feedback:  "Solid; mention EXPLAIN.",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}

	var wantBody any
	if err := json.Unmarshal([]byte(`{
		"question_id": 42,
		"question": "How would you report orders per customer?",
		"category": "sql",
		"rubric": {"points": [
			{"description": "names a join", "weight": 2, "keywords": ["join", "inner join"]},
			{"description": "groups rows", "weight": 1, "keywords": ["group by"]},
			{"description": "uses an index", "weight": 1, "keywords": ["index", "indexes"]}
		]},
		"answer": "An inner JOIN on customers, then GROUP BY customer."
	}`), &wantBody); err != nil {
		t.Fatal(err)
	}
	wantCall := call{http.MethodPost, "application/json", wantBody}
	if diff := cmp.Diff(wantCall, <-calls, cmp.AllowUnexported(call{})); diff != "" {
		t.Errorf("request to remote mismatch (-want +got):\n%s", diff)
	}
	wantMetrics := `
		# HELP pgfleet_evaluator_breaker_state Remote evaluator's circuit breaker state: 0 closed, 1 half-open, 2 open.
		# TYPE pgfleet_evaluator_breaker_state gauge
		pgfleet_evaluator_breaker_state 0
	`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), "pgfleet_evaluator_breaker_state"); err != nil {
		t.Error(err)
	}
	if got := requests(t, reg, "remote", "ok"); got != 1 {
		t.Errorf("requests{remote,ok} = %v, want 1", got)
	}
}

func TestHybrid_Evaluate_remoteFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		handle       http.HandlerFunc
		wantFallback string
	}{
		{name: "status_500", handle: respond(500, `{"score": 90, "met": []}`), wantFallback: "error: status 500"},
		{name: "status_404", handle: respond(404, "not found"), wantFallback: "error: status 404"},
		{name: "status_204", handle: respond(204, ""), wantFallback: "error: status 204"},
		{name: "truncated_json", handle: respond(200, `{"score": 90`), wantFallback: "error: bad JSON"},
		{name: "html", handle: respond(200, "<html>"), wantFallback: "error: bad JSON"},
		{name: "empty_body", handle: respond(200, ""), wantFallback: "error: bad JSON"},
		{name: "fractional_index", handle: respond(200, `{"score": 50, "met": [0.5]}`), wantFallback: "error: bad JSON: wrong type for met"},
		{name: "score_as_string", handle: respond(200, `{"score": "50", "met": [0]}`), wantFallback: "error: bad JSON: wrong type for score"},
		{name: "no_score", handle: respond(200, `{"met": [0]}`), wantFallback: "error: response has no score"},
		{name: "null_score", handle: respond(200, `{"score": null, "met": [0]}`), wantFallback: "error: response has no score"},
		{name: "no_met", handle: respond(200, `{"score": 50}`), wantFallback: "error: response has no met"},
		{name: "score_above_100", handle: respond(200, `{"score": 150, "met": [0]}`), wantFallback: "error: score 150 out of range [0, 100]"},
		{name: "score_below_0", handle: respond(200, `{"score": -0.5, "met": []}`), wantFallback: "error: score -0.5 out of range [0, 100]"},
		{name: "index_past_end", handle: respond(200, `{"score": 50, "met": [0, 3]}`), wantFallback: "error: met index 3 out of range [0, 3)"},
		{name: "negative_index", handle: respond(200, `{"score": 50, "met": [-1]}`), wantFallback: "error: met index -1 out of range [0, 3)"},
		{name: "duplicate_index", handle: respond(200, `{"score": 50, "met": [1, 0, 1]}`), wantFallback: "error: duplicate met index 1"},
		{
			name:         "body_too_large",
			handle:       respond(200, `{"score": 50, "met": [0], "feedback": "`+strings.Repeat("x", 1<<20)+`"}`),
			wantFallback: "error: response over 1 MiB",
		},
		{
			name: "body_cut_short",
			handle: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "100")
				_, _ = io.WriteString(w, `{"score": 50`) // then the server closes the connection
			},
			wantFallback: "error: connection failed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, hits := remote(t, tc.handle)
			h, reg := newHybrid(t, testConfig(url))

			got, err := h.Evaluate(t.Context(), request)
			if err != nil {
				t.Fatalf("Evaluate() = %v", err)
			}
			if diff := cmp.Diff(fallback(request, tc.wantFallback), got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("remote got %d requests, want 1", n)
			}
			if got := requests(t, reg, "rubric", "error"); got != 1 {
				t.Errorf("requests{rubric,error} = %v, want 1", got)
			}
		})
	}
}

func TestHybrid_Evaluate_connectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	h, _ := newHybrid(t, testConfig(url))

	got, err := h.Evaluate(t.Context(), request)
	if err != nil {
		t.Fatalf("Evaluate() = %v", err)
	}
	if diff := cmp.Diff(fallback(request, "error: connection refused"), got); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}
}

func TestHybrid_Evaluate_timeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		handle http.HandlerFunc
	}{
		{name: "no_headers", handle: stall},
		{
			name: "headers_then_no_body",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, `{"score": `)
				w.(http.Flusher).Flush()
				stall(w, r)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, _ := remote(t, tc.handle)
			cfg := testConfig(url)
			cfg.Timeout = 100 * time.Millisecond
			h, reg := newHybrid(t, cfg)

			start := time.Now()
			got, err := h.Evaluate(t.Context(), request)
			elapsed := time.Since(start)
			t.Logf("Evaluate took %v with Timeout %v", elapsed, cfg.Timeout)
			if err != nil {
				t.Fatalf("Evaluate() = %v", err)
			}
			if diff := cmp.Diff(fallback(request, "timeout"), got); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
			if limit := cfg.Timeout + time.Second; elapsed > limit {
				t.Errorf("Evaluate took %v, want under %v", elapsed, limit)
			}
			if got := requests(t, reg, "rubric", "timeout"); got != 1 {
				t.Errorf("requests{rubric,timeout} = %v, want 1", got)
			}
		})
	}
}

func TestHybrid_Evaluate_breaker(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	url, hits := remote(t, func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			respond(http.StatusInternalServerError, "")(w, r)
			return
		}
		respond(http.StatusOK, `{"score": 100, "met": [0, 1, 2], "feedback": "all there"}`)(w, r)
	})
	cfg := testConfig(url)
	cfg.Breaker.MinRequests = new(uint32(3))
	cfg.Breaker.OpenTimeout = new(200 * time.Millisecond)
	h, reg := newHybrid(t, cfg)

	for i := range 3 {
		got, err := h.Evaluate(t.Context(), request)
		if err != nil || got.Fallback != "error: status 500" {
			t.Fatalf("call %d: Evaluate() = %+v, %v, want Fallback %q", i+1, got, err, "error: status 500")
		}
	}
	if got := h.State(); got != "open" {
		t.Fatalf("State() after 3 failures = %q, want open", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP pgfleet_evaluator_breaker_state Remote evaluator's circuit breaker state: 0 closed, 1 half-open, 2 open.
		# TYPE pgfleet_evaluator_breaker_state gauge
		pgfleet_evaluator_breaker_state 2
	`), "pgfleet_evaluator_breaker_state"); err != nil {
		t.Error(err)
	}

	got, err := h.Evaluate(t.Context(), request)
	if err != nil {
		t.Fatalf("Evaluate() while open = %v", err)
	}
	if diff := cmp.Diff(fallback(request, "circuit open"), got); diff != "" {
		t.Errorf("Evaluate() while open mismatch (-want +got):\n%s", diff)
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("remote got %d requests, want 3: none while open", n)
	}
	if got := requests(t, reg, "rubric", "circuit_open"); got != 1 {
		t.Errorf("requests{rubric,circuit_open} = %v, want 1", got)
	}

	healthy.Store(true)
	for deadline := time.Now().Add(5 * time.Second); h.State() == "open"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("State() still open 5s after an OpenTimeout of %v", *cfg.Breaker.OpenTimeout)
		}
	}
	got, err = h.Evaluate(t.Context(), request)
	if err != nil {
		t.Fatalf("Evaluate() after OpenTimeout = %v", err)
	}
	want := evaluate.Result{Score: 100, Met: []int{0, 1, 2}, Missed: []int{}, Evaluator: "remote", Feedback: "all there"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Evaluate() after OpenTimeout mismatch (-want +got):\n%s", diff)
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("remote got %d requests, want 4", n)
	}
	if got := h.State(); got != "closed" {
		t.Errorf("State() after a good probe = %q, want closed", got)
	}
}

func TestHybrid_Evaluate_notConfigured(t *testing.T) {
	t.Parallel()
	h, reg := newHybrid(t, evaluate.Config{})

	got, err := h.Evaluate(t.Context(), request)
	if err != nil {
		t.Fatalf("Evaluate() = %v", err)
	}
	want := evaluate.Result{
		Score:     75,
		Met:       []int{0, 1},
		Missed:    []int{2},
		Evaluator: "rubric",
		Fallback:  "not configured",
		Feedback:  `met 2 of 3 points: "names a join", "groups rows"; missed: "uses an index"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}
	if got := h.State(); got != "disabled" {
		t.Errorf("State() = %q, want disabled", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP pgfleet_evaluator_requests_total Evaluate calls by the evaluator that produced the result (remote, rubric, or none on error) and outcome: ok, not_configured, circuit_open, timeout, error, canceled or invalid_request.
		# TYPE pgfleet_evaluator_requests_total counter
		pgfleet_evaluator_requests_total{evaluator="rubric",outcome="not_configured"} 1
	`)); err != nil {
		t.Error(err) // and no breaker gauge
	}
}

func TestHybrid_Evaluate_callerGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  bool // whether a remote evaluator is configured
		// call calls evaluate with a context that ends; started is closed when the
		// remote evaluator has the request.
		call    func(started <-chan struct{}, evaluate func(context.Context) error) error
		wantErr error
		// wantHits is how many requests the remote evaluator got.
		wantHits int64
	}{
		{
			name:    "canceled_before",
			url:     true,
			call:    func(_ <-chan struct{}, eval func(context.Context) error) error { return eval(canceled()) },
			wantErr: context.Canceled,
		},
		{
			name:    "canceled_before_not_configured",
			call:    func(_ <-chan struct{}, eval func(context.Context) error) error { return eval(canceled()) },
			wantErr: context.Canceled,
		},
		{
			name: "canceled_during_call",
			url:  true,
			call: func(started <-chan struct{}, eval func(context.Context) error) error {
				ctx, cancel := context.WithCancel(context.Background())
				go func() { <-started; cancel() }()
				return eval(ctx)
			},
			wantErr:  context.Canceled,
			wantHits: 1,
		},
		{
			name: "caller_deadline_before_timeout",
			url:  true,
			call: func(_ <-chan struct{}, eval func(context.Context) error) error {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				return eval(ctx)
			},
			wantErr:  context.DeadlineExceeded,
			wantHits: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{})
			var once sync.Once
			url, hits := remote(t, func(w http.ResponseWriter, r *http.Request) {
				once.Do(func() { close(started) })
				stall(w, r)
			})
			cfg := testConfig(url)
			if !tc.url {
				cfg = evaluate.Config{}
			}
			cfg.Breaker.MinRequests = new(uint32(1)) // one counted failure would open it
			h, reg := newHybrid(t, cfg)

			err := tc.call(started, func(ctx context.Context) error {
				got, err := h.Evaluate(ctx, request)
				if diff := cmp.Diff(evaluate.Result{}, got); diff != "" {
					t.Errorf("Evaluate() result mismatch (-want +got):\n%s", diff)
				}
				return err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Evaluate() = %v, want %v", err, tc.wantErr)
			}
			if n := hits.Load(); n != tc.wantHits {
				t.Errorf("remote got %d requests, want %d", n, tc.wantHits)
			}
			if got, want := h.State(), map[bool]string{true: "closed", false: "disabled"}[tc.url]; got != want {
				t.Errorf("State() = %q, want %q: the caller's leaving must not count", got, want)
			}
			if got := requests(t, reg, "none", "canceled"); got != 1 {
				t.Errorf("requests{none,canceled} = %v, want 1", got)
			}
		})
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestHybrid_Evaluate_invalidRubric(t *testing.T) {
	t.Parallel()
	url, hits := remote(t, respond(http.StatusOK, `{"score": 100, "met": []}`))
	h, reg := newHybrid(t, testConfig(url))
	r := request
	r.Rubric = evaluate.Rubric{Points: []evaluate.Point{{Description: "d", Weight: 0, Keywords: []string{"k"}}}}

	got, err := h.Evaluate(t.Context(), r)
	if !errors.Is(err, evaluate.ErrInvalidRubric) {
		t.Errorf("Evaluate() = %+v, %v, want %v", got, err, evaluate.ErrInvalidRubric)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("remote got %d requests, want 0", n)
	}
	if got := requests(t, reg, "none", "invalid_request"); got != 1 {
		t.Errorf("requests{none,invalid_request} = %v, want 1", got)
	}
}

func TestHybrid_Evaluate_concurrent(t *testing.T) {
	t.Parallel()
	url, hits := remote(t, respond(http.StatusOK, `{"score": 50, "met": [1]}`))
	h, reg := newHybrid(t, testConfig(url))

	const n = 32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := h.Evaluate(t.Context(), request)
			if err != nil || got.Evaluator != "remote" {
				t.Errorf("Evaluate() = %+v, %v, want a remote result", got, err)
			}
		})
	}
	wg.Wait()
	if got := hits.Load(); got != n {
		t.Errorf("remote got %d requests, want %d", got, n)
	}
	if got := requests(t, reg, "remote", "ok"); got != n {
		t.Errorf("requests{remote,ok} = %v, want %d", got, n)
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	valid := testConfig("http://evaluator:8080/v1/evaluate")
	with := func(f func(*evaluate.Config)) evaluate.Config {
		cfg := valid
		f(&cfg)
		return cfg
	}
	tests := []struct {
		name    string
		cfg     evaluate.Config
		wantErr bool
	}{
		{name: "valid", cfg: valid},
		{name: "https", cfg: with(func(c *evaluate.Config) { c.URL = "https://evaluator/v1/evaluate" })},
		{name: "not_configured_ignores_the_rest", cfg: evaluate.Config{}},
		{name: "no_scheme", cfg: with(func(c *evaluate.Config) { c.URL = "evaluator:8080" }), wantErr: true},
		{name: "other_scheme", cfg: with(func(c *evaluate.Config) { c.URL = "ftp://evaluator" }), wantErr: true},
		{name: "no_host", cfg: with(func(c *evaluate.Config) { c.URL = "http:///evaluate" }), wantErr: true},
		{name: "unparsable_url", cfg: with(func(c *evaluate.Config) { c.URL = "http://[::1" }), wantErr: true},
		{name: "zero_timeout", cfg: with(func(c *evaluate.Config) { c.Timeout = 0 }), wantErr: true},
		{name: "zero_ratio", cfg: with(func(c *evaluate.Config) { c.Breaker.FailureRatio = 0 }), wantErr: true},
		{name: "ratio_above_1", cfg: with(func(c *evaluate.Config) { c.Breaker.FailureRatio = 1.5 }), wantErr: true},
		{name: "zero_open_timeout", cfg: with(func(c *evaluate.Config) { c.Breaker.OpenTimeout = new(time.Duration(0)) }), wantErr: true},
		{name: "negative_window", cfg: with(func(c *evaluate.Config) { c.Breaker.Window = -time.Second }), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
			if panicked := panics(func() { evaluate.New(tc.cfg, nil, prometheus.NewRegistry()) }); panicked != tc.wantErr {
				t.Errorf("New() panicked: %v, want %v", panicked, tc.wantErr)
			}
		})
	}
}

func TestNew_registersOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig("http://evaluator")
	evaluate.New(cfg, nil, reg)
	if !panics(func() { evaluate.New(cfg, nil, reg) }) {
		t.Error("second New() on the same registry did not panic")
	}
	evaluate.New(cfg, nil, nil) // no registry, nothing to clash with
}

func panics(f func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	f()
	return false
}

// requests returns pgfleet_evaluator_requests_total{evaluator,outcome}, 0 if absent.
func requests(t *testing.T, reg *prometheus.Registry, evaluator, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pgfleet_evaluator_requests_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "evaluator" && l.GetValue() != evaluator) ||
					(l.GetName() == "outcome" && l.GetValue() != outcome) {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
