package polygon_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/polygon"
	"github.com/pgfleet/pgfleet/services/stock/providerstub"
)

// testKey has characters that query escaping changes, so redaction is tested in both forms.
const testKey = "s3cr3t+KEY/with=chars&more"

// November 2026: 20 weekdays, Monday the 2nd to Friday the 27th.
var (
	nov2  = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	nov28 = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
)

func serve(t *testing.T, opts providerstub.Options) (*providerstub.Handler, string) {
	t.Helper()
	h := providerstub.NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func newSource(t *testing.T, cfg polygon.Config) *polygon.Source {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second // a hang test sets its own, short one
	}
	s, err := polygon.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

type fetched struct {
	bars    []source.Bar
	rejects []source.Reject
	batches int
}

func fetch(ctx context.Context, s *polygon.Source, from, to time.Time, symbols ...string) (fetched, error) {
	var f fetched
	err := s.Fetch(ctx, source.Request{Symbols: symbols, From: from, To: to}, func(b []source.Bar, r []source.Reject) error {
		f.batches++
		f.bars = append(f.bars, b...)
		f.rejects = append(f.rejects, r...)
		return nil
	})
	return f, err
}

// want is what the stand-in serves for symbol over [from, to).
func want(symbol string, from, to time.Time) []source.Bar {
	var bars []source.Bar
	for _, d := range providerstub.Days(from, to) {
		b := providerstub.DailyBar(symbol, d)
		bars = append(bars, source.Bar{Symbol: symbol, Time: d, Open: b.Open, High: b.High, Low: b.Low,
			Close: b.Close, Volume: b.Volume, Ref: symbol + " " + d.Format(time.DateOnly)})
	}
	return bars
}

func TestSource_Name(t *testing.T) {
	t.Parallel()
	if got := newSource(t, polygon.Config{BaseURL: "http://127.0.0.1:1"}).Name(); got != "polygon" {
		t.Errorf("Name() = %q, want polygon", got)
	}
}

func TestNew_badConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  polygon.Config
	}{
		{"no_base_url", polygon.Config{}},
		{"no_scheme", polygon.Config{BaseURL: "api.polygon.io"}},
		{"ftp", polygon.Config{BaseURL: "ftp://api.polygon.io"}},
		{"query", polygon.Config{BaseURL: "https://api.polygon.io?apiKey=" + testKey}},
		{"negative_timeout", polygon.Config{BaseURL: "https://api.polygon.io", Timeout: -time.Second}},
		{"limit_too_large", polygon.Config{BaseURL: "https://api.polygon.io", Limit: 50001}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := polygon.New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = nil error, want one", tt.cfg)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("New error shows the key: %v", err)
			}
		})
	}
}

// TestFetch_pages fetches two tickers over several pages each: every bar is the stand-in's,
// text for text, a batch per page, the key sent on next_url pages too (the stand-in
// requires it).
func TestFetch_pages(t *testing.T) {
	t.Parallel()
	h, url := serve(t, providerstub.Options{Symbols: []string{"AAPL", "MSFT"}, Key: testKey, PageSize: 7})
	s := newSource(t, polygon.Config{BaseURL: url})

	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL", "MSFT")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if diff := cmp.Diff(append(want("AAPL", nov2, nov28), want("MSFT", nov2, nov28)...), got.bars); diff != "" {
		t.Errorf("bars mismatch (-want +got):\n%s", diff)
	}
	if len(got.rejects) != 0 {
		t.Errorf("rejects = %v, want none", got.rejects)
	}
	if got.batches != 6 || h.Requests() != 6 { // 20 bars a ticker: pages of 7, 7, 6
		t.Errorf("batches, requests = %d, %d; want 6, 6", got.batches, h.Requests())
	}
}

// TestFetch_range holds the request's bounds: From <= day < To, a To inside a day covering it.
func TestFetch_range(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}})
	s := newSource(t, polygon.Config{BaseURL: url})
	tests := []struct {
		name     string
		from, to time.Time
		want     []source.Bar
	}{
		{"whole_days", nov2, nov2.AddDate(0, 0, 2), want("AAPL", nov2, nov2.AddDate(0, 0, 2))},
		{"to_inside_a_day", nov2, nov2.Add(36 * time.Hour), want("AAPL", nov2, nov2.AddDate(0, 0, 2))},
		{"from_inside_a_day", nov2.Add(time.Hour), nov2.AddDate(0, 0, 2), want("AAPL", nov2.AddDate(0, 0, 1), nov2.AddDate(0, 0, 2))},
		{"weekend", nov2.AddDate(0, 0, 5), nov2.AddDate(0, 0, 7), nil},
		{"empty", nov2, nov2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := fetch(t.Context(), s, tt.from, tt.to, "AAPL")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if diff := cmp.Diff(tt.want, got.bars); diff != "" {
				t.Errorf("bars mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFetch_rateLimitShort: a 429 asking for a second is waited out inside Fetch.
func TestFetch_rateLimitShort(t *testing.T) {
	t.Parallel()
	h, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, RateLimitFirst: 1, RetryAfter: 1})
	s := newSource(t, polygon.Config{BaseURL: url})
	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if diff := cmp.Diff(want("AAPL", nov2, nov28), got.bars); diff != "" {
		t.Errorf("bars mismatch (-want +got):\n%s", diff)
	}
	if h.Requests() != 2 {
		t.Errorf("requests = %d, want 2 (a 429, then the page)", h.Requests())
	}
}

// TestFetch_rateLimitLong: a 429 asking for longer than ShortRetryAfter ends Fetch with a
// TransientError carrying the wait, for the pipeline to reschedule.
func TestFetch_rateLimitLong(t *testing.T) {
	t.Parallel()
	h, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, RateLimitFirst: 1, RetryAfter: 30})
	s := newSource(t, polygon.Config{BaseURL: url})
	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	ra, ok := source.Transient(err)
	if !ok || ra != 30*time.Second {
		t.Fatalf("Fetch = %v; Transient = %v, %v; want a TransientError with RetryAfter 30s", err, ra, ok)
	}
	if got.batches != 0 || h.Requests() != 1 {
		t.Errorf("batches, requests = %d, %d; want 0, 1", got.batches, h.Requests())
	}
}

// TestFetch_rateLimitExhausted: short 429s are waited out MaxRetries times, then returned.
func TestFetch_rateLimitExhausted(t *testing.T) {
	t.Parallel()
	h, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, RateLimitFirst: 5, RetryAfter: 1})
	s := newSource(t, polygon.Config{BaseURL: url, MaxRetries: 1})
	_, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if ra, ok := source.Transient(err); !ok || ra != time.Second {
		t.Fatalf("Fetch = %v; want a TransientError with RetryAfter 1s", err)
	}
	if h.Requests() != 2 {
		t.Errorf("requests = %d, want 2", h.Requests())
	}
}

// TestFetch_serverErrorMidway: a 500 on page 3 is transient, after pages 1 and 2 were
// emitted; the next Fetch (the pipeline's retry) delivers everything.
func TestFetch_serverErrorMidway(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, PageSize: 7,
		Faults: map[int]providerstub.Fault{3: providerstub.ServerError}})
	s := newSource(t, polygon.Config{BaseURL: url})

	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if _, ok := source.Transient(err); !ok || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("Fetch = %v, want a TransientError naming HTTP 500", err)
	}
	if diff := cmp.Diff(want("AAPL", nov2, nov28)[:14], got.bars); diff != "" {
		t.Errorf("bars before the failure mismatch (-want +got):\n%s", diff)
	}

	got, err = fetch(t.Context(), s, nov2, nov28, "AAPL")
	if err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if diff := cmp.Diff(want("AAPL", nov2, nov28), got.bars); diff != "" {
		t.Errorf("bars of the second Fetch mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_hang: a provider that never answers meets the request timeout, a transient error.
func TestFetch_hang(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, PageSize: 7,
		Faults: map[int]providerstub.Fault{2: providerstub.Hang}})
	s := newSource(t, polygon.Config{BaseURL: url, Timeout: 200 * time.Millisecond})
	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if _, ok := source.Transient(err); !ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want a TransientError wrapping context.DeadlineExceeded", err)
	}
	if len(got.bars) != 7 {
		t.Errorf("bars = %d, want the first page's 7", len(got.bars))
	}
}

// TestFetch_cancel: the caller's own cancellation is returned as such, not as transient.
func TestFetch_cancel(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, PageSize: 7})
	s := newSource(t, polygon.Config{BaseURL: url})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := s.Fetch(ctx, source.Request{Symbols: []string{"AAPL"}, From: nov2, To: nov28},
		func([]source.Bar, []source.Reject) error { cancel(); return nil })
	if _, ok := source.Transient(err); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch = %v, want context.Canceled, not transient", err)
	}
}

// TestFetch_emitError: the pipeline's error comes back as is.
func TestFetch_emitError(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}})
	s := newSource(t, polygon.Config{BaseURL: url})
	boom := errors.New("boom")
	err := s.Fetch(t.Context(), source.Request{Symbols: []string{"AAPL"}, From: nov2, To: nov28},
		func([]source.Bar, []source.Reject) error { return boom })
	if err != boom { //nolint:errorlint // "returned as is" is the contract
		t.Fatalf("Fetch = %v, want the emit error itself", err)
	}
}

// TestFetch_truncated: a body cut mid-JSON is transient (the connection broke); a complete
// answer that is not JSON is permanent and says where it broke.
func TestFetch_truncated(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, PageSize: 7,
		Faults: map[int]providerstub.Fault{2: providerstub.Truncate, 4: providerstub.Malformed}})
	s := newSource(t, polygon.Config{BaseURL: url})

	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if _, ok := source.Transient(err); !ok || !strings.Contains(err.Error(), "body cut") {
		t.Fatalf("Fetch = %v, want a TransientError saying the body was cut", err)
	}
	if len(got.bars) != 7 {
		t.Errorf("bars = %d, want the first page's 7", len(got.bars))
	}

	_, err = fetch(t.Context(), s, nov2, nov28, "AAPL") // request 3 is page 1, 4 is page 2
	if _, ok := source.Transient(err); ok || err == nil || !strings.Contains(err.Error(), "malformed answer at byte") {
		t.Fatalf("Fetch = %v, want a permanent error saying where the JSON broke", err)
	}
}

// TestFetch_badRows: each defective result is a Reject naming its day (or its number) and
// why; the good ones pass. A bar with high below low parses, so it passes here: the
// pipeline's validation refuses it, as it does for every source.
func TestFetch_badRows(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey, PageSize: 7,
		BadRows: map[string]providerstub.BadRow{
			"2026-11-03": providerstub.MissingClose,
			"2026-11-04": providerstub.NegativeVolume,
			"2026-11-05": providerstub.HugeOpen,
			"2026-11-06": providerstub.TooManyDecimals,
			"2026-11-09": providerstub.NotAnObject,
			"2026-11-10": providerstub.HighBelowLow,
		}})
	s := newSource(t, polygon.Config{BaseURL: url})
	got, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}

	wantRejects := []struct{ ref, reason string }{
		{"AAPL 2026-11-03", `"c" is missing`},
		{"AAPL 2026-11-04", `"v" -`},
		{"AAPL 2026-11-05", `"o" 1e400 has an exponent`},
		{"AAPL 2026-11-06", `"c" 187.1234567 has 7 decimals`},
		{"AAPL result 6", "not a JSON object"},
	}
	if len(got.rejects) != len(wantRejects) {
		t.Fatalf("rejects = %+v, want %d", got.rejects, len(wantRejects))
	}
	for i, w := range wantRejects {
		r := got.rejects[i]
		if r.Ref != w.ref || !strings.Contains(r.Reason, w.reason) || r.Raw == "" {
			t.Errorf("reject %d = %+v, want Ref %q, a reason with %q and the raw row", i, r, w.ref, w.reason)
		}
	}

	var wantBars []source.Bar
	for _, b := range want("AAPL", nov2, nov28) {
		switch d := b.Time.Format(time.DateOnly); d {
		case "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-09":
			continue
		case "2026-11-10":
			b.High, b.Low = b.Low, b.High
		}
		wantBars = append(wantBars, b)
	}
	if diff := cmp.Diff(wantBars, got.bars); diff != "" {
		t.Errorf("bars mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_unknownTicker: Polygon answers an unknown ticker with no results: no bars, no error.
func TestFetch_unknownTicker(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: testKey})
	s := newSource(t, polygon.Config{BaseURL: url})
	got, err := fetch(t.Context(), s, nov2, nov28, "ZZZZ")
	if err != nil || got.batches != 0 {
		t.Fatalf("Fetch(ZZZZ) = %d batches, %v; want none, nil", got.batches, err)
	}
}

// TestFetch_notFound: a 404 in the API's JSON is a ticker without data; a 404 from something
// else (a wrong base URL) is an error that says so.
func TestFetch_notFound(t *testing.T) {
	t.Parallel()
	_, apiURL := serve(t, providerstub.Options{Symbols: []string{"AAPL"}})
	s := newSource(t, polygon.Config{BaseURL: apiURL + "/elsewhere"})
	if got, err := fetch(t.Context(), s, nov2, nov28, "AAPL"); err != nil || got.batches != 0 {
		t.Errorf("Fetch against the API's 404 = %d batches, %v; want none, nil", got.batches, err)
	}

	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	s = newSource(t, polygon.Config{BaseURL: other.URL})
	_, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
	if _, ok := source.Transient(err); ok || err == nil || !strings.Contains(err.Error(), "check the base URL") {
		t.Errorf("Fetch against a plain 404 = %v, want a permanent error pointing at the base URL", err)
	}
}

// TestFetch_unauthorized: a refused key is permanent and names the provider's reason.
func TestFetch_unauthorized(t *testing.T) {
	t.Parallel()
	_, url := serve(t, providerstub.Options{Symbols: []string{"AAPL"}, Key: "the-right-key"})
	tests := []struct{ name, key, reason string }{
		{"wrong_key", testKey, "Unknown API Key"},
		{"no_key", "", "API Key was not provided"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := polygon.New(polygon.Config{BaseURL: url, APIKey: tt.key})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			_, err = fetch(t.Context(), s, nov2, nov28, "AAPL")
			if _, ok := source.Transient(err); ok || err == nil || !strings.Contains(err.Error(), "HTTP 401") ||
				!strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Fetch = %v, want a permanent error with HTTP 401 and %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

// TestFetch_redaction meets every failure with a key that escaping changes, and finds the
// key in no error, in neither form.
func TestFetch_redaction(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a refused connection

	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A provider that repeats the request in its error, key and all.
		http.Error(w, "bad request: "+r.URL.String(), http.StatusBadRequest)
	}))
	t.Cleanup(echo.Close)
	offsite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"OK","results":[],"next_url":"http://evil.example/steal?x=1"}`))
	}))
	t.Cleanup(offsite.Close)

	stub := func(o providerstub.Options) string {
		o.Symbols, o.PageSize = []string{"AAPL"}, 7
		_, url := serve(t, o)
		return url
	}
	tests := []struct {
		name    string
		baseURL string
		cfg     polygon.Config
	}{
		{"unauthorized", stub(providerstub.Options{Key: "other"}), polygon.Config{}},
		{"rate_limited", stub(providerstub.Options{RateLimitFirst: 1, RetryAfter: 60}), polygon.Config{}},
		{"server_error", stub(providerstub.Options{Faults: map[int]providerstub.Fault{2: providerstub.ServerError}}), polygon.Config{}},
		{"hang", stub(providerstub.Options{Faults: map[int]providerstub.Fault{2: providerstub.Hang}}), polygon.Config{Timeout: 200 * time.Millisecond}},
		{"truncated", stub(providerstub.Options{Faults: map[int]providerstub.Fault{2: providerstub.Truncate}}), polygon.Config{}},
		{"malformed", stub(providerstub.Options{Faults: map[int]providerstub.Fault{2: providerstub.Malformed}}), polygon.Config{}},
		{"too_large", stub(providerstub.Options{}), polygon.Config{MaxBody: 100}},
		{"refused", closed.URL, polygon.Config{}},
		{"echoed", echo.URL, polygon.Config{}},
		{"next_url_offsite", offsite.URL, polygon.Config{}},
	}
	escaped := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D", "&", "%26").Replace(testKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.BaseURL = tt.baseURL
			s := newSource(t, tt.cfg)
			_, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
			if err == nil {
				t.Fatal("Fetch = nil error, want one")
			}
			if msg := err.Error(); strings.Contains(msg, testKey) || strings.Contains(msg, escaped) {
				t.Errorf("the error shows the key: %v", err)
			}
			t.Logf("%s: %v", tt.name, err) // how each failure reads
		})
	}
}

func answering(t *testing.T, code int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFetch_statusAnswers: Polygon's other refusals, by HTTP code or by the body's status.
func TestFetch_statusAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		code       int
		transient  bool
		want       string
	}{
		{"forbidden", `{"status":"NOT_AUTHORIZED","request_id":"x","message":"You are not entitled to this data."}`, 403, false, "key refused (HTTP 403): You are not entitled"},
		{"not_authorized_200", `{"status":"NOT_AUTHORIZED","message":"Upgrade your plan."}`, 200, false, "not authorized: Upgrade your plan."},
		{"error_200", `{"status":"ERROR","error":"bad from date"}`, 200, false, `status "ERROR": bad from date`},
		{"no_status", `{"results":[]}`, 200, false, "no status"},
		{"bad_request", `{"status":"ERROR","error":"Could not parse the time parameter"}`, 400, false, "HTTP 400: Could not parse"},
		{"unavailable", `<html>down</html>`, 503, true, "HTTP 503: <html>down</html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSource(t, polygon.Config{BaseURL: answering(t, tt.code, tt.body)})
			_, err := fetch(t.Context(), s, nov2, nov28, "AAPL")
			if _, ok := source.Transient(err); err == nil || ok != tt.transient || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Fetch = %v (transient %v), want an error with %q, transient %v", err, ok, tt.want, tt.transient)
			}
		})
	}
}

// TestFetch_maxBody: a body of exactly MaxBody bytes is read; one byte more is refused.
func TestFetch_maxBody(t *testing.T) {
	t.Parallel()
	body := `{"status":"OK","resultsCount":0}`
	url := answering(t, 200, body)
	ok := newSource(t, polygon.Config{BaseURL: url, MaxBody: int64(len(body))})
	if _, err := fetch(t.Context(), ok, nov2, nov28, "AAPL"); err != nil {
		t.Errorf("Fetch with MaxBody = the body's size: %v", err)
	}
	small := newSource(t, polygon.Config{BaseURL: url, MaxBody: int64(len(body) - 1)})
	_, err := fetch(t.Context(), small, nov2, nov28, "AAPL")
	if _, transient := source.Transient(err); err == nil || transient || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Fetch with MaxBody one byte short = %v, want a permanent error saying the body is too large", err)
	}
}

// TestFetch_noSymbols: the aggregates API is asked ticker by ticker, so a request for "all
// the source has" is refused rather than answered with nothing.
func TestFetch_noSymbols(t *testing.T) {
	t.Parallel()
	s := newSource(t, polygon.Config{BaseURL: "http://127.0.0.1:1"})
	if _, err := fetch(t.Context(), s, nov2, nov28); err == nil || !strings.Contains(err.Error(), "no symbols") {
		t.Errorf("Fetch(no symbols) = %v, want an error saying so", err)
	}
}
