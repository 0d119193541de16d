// Package providerstub is a stand-in market-data provider: it serves Polygon.io's REST
// "Aggregates (Bars)" v2 format for daily bars on loopback, with deterministic synthetic
// prices (weekdays only, derived from a hash of symbol and day, so every run and every
// process gives the same numbers), and faults to inject for tests: 500s, 429s with
// Retry-After, hangs, bodies cut mid-JSON, malformed answers, bad rows and a required key.
// It sits outside internal/ so that tools/run can serve it in `make run`; the command
// pgfleet-provider-stub (services/stock/cmd) runs it alone.
package providerstub

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // America/New_York, wherever the binary runs
)

// BadRow is a defect written into one day's result instead of the good bar.
type BadRow int

// The defects a BadRow can inject.
const (
	MissingClose    BadRow = iota + 1 // no "c" field
	NegativeVolume                    // "v" below zero
	HugeOpen                          // "o": 1e400 (no float64 holds it)
	HighBelowLow                      // "h" and "l" swapped
	TooManyDecimals                   // "c" with 7 decimals
	NotAnObject                       // the result is [1,2,3]
)

// Fault is what the handler answers a given request with instead of the page.
type Fault int

// The faults a request can meet.
const (
	ServerError Fault = iota + 1 // HTTP 500 with Polygon's error body
	RateLimit                    // HTTP 429 with Options.RetryAfter
	Hang                         // no answer until the request's context ends (the client gives up)
	Truncate                     // half the page, then the connection is cut
	Malformed                    // a complete HTTP 200 whose body is not JSON
)

// Options configures a Handler. Faults count aggregates requests from 1 in arrival order,
// every answer included (a 429 or a 401 is a request too).
type Options struct {
	// Symbols are the tickers with bars; any other gets Polygon's answer for an unknown
	// ticker (status OK, resultsCount 0).
	Symbols []string
	// Key, if set, must come as the apiKey query parameter or "Authorization: Bearer";
	// otherwise the answer is Polygon's 401.
	Key string
	// PageSize caps the bars per page (then next_url leads on); 0 means 5000. A smaller
	// limit query parameter wins.
	PageSize int
	// RateLimitFirst makes the first M requests answer 429.
	RateLimitFirst int
	// RetryAfter is the Retry-After of every 429, in seconds; 0 sends none.
	RetryAfter int
	// Faults maps a request's number to the fault it meets.
	Faults map[int]Fault
	// BadRows maps a day ("2006-01-02") to the defect its result has, for every symbol.
	BadRows map[string]BadRow
}

// Handler serves the aggregates endpoint; it is safe for concurrent use.
type Handler struct {
	opts    Options
	symbols map[string]bool
	mux     *http.ServeMux

	mu sync.Mutex
	n  int
}

// NewHandler returns the stand-in provider as an http.Handler.
func NewHandler(opts Options) *Handler {
	h := &Handler{opts: opts, symbols: map[string]bool{}, mux: http.NewServeMux()}
	for _, s := range opts.Symbols {
		h.symbols[s] = true
	}
	h.mux.HandleFunc("GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}", h.aggs)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, fmt.Sprintf(`{"status":"NOT_FOUND","request_id":%q,"message":"Not found"}`, h.requestID(0)))
	})
	return h
}

// Requests returns how many aggregates requests the handler has received.
func (h *Handler) Requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) requestID(n int) string { return fmt.Sprintf("stub%08x", n) }

func (h *Handler) aggs(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	rid := h.requestID(n)
	fail := func(code int, status, msg string) {
		writeJSON(w, code, fmt.Sprintf(`{"status":%q,"request_id":%q,"error":%q}`, status, rid, msg))
	}

	if h.opts.Key != "" {
		key := r.URL.Query().Get("apiKey")
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && key == "" {
			key = bearer
		}
		switch {
		case key == "":
			fail(http.StatusUnauthorized, "ERROR", "API Key was not provided")
			return
		case key != h.opts.Key:
			fail(http.StatusUnauthorized, "ERROR", "Unknown API Key")
			return
		}
	}
	fault := h.opts.Faults[n]
	if n <= h.opts.RateLimitFirst {
		fault = RateLimit
	}
	switch fault {
	case RateLimit:
		if h.opts.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(h.opts.RetryAfter))
		}
		fail(http.StatusTooManyRequests, "ERROR", "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue.")
		return
	case ServerError:
		fail(http.StatusInternalServerError, "ERROR", "Internal server error")
		return
	case Hang:
		<-r.Context().Done()
		return
	case Malformed:
		writeJSON(w, http.StatusOK, `<html><body>502 Bad Gateway</body></html>`)
		return
	}

	q := r.URL.Query()
	if c := q.Get("cursor"); c != "" { // next_url carries the first request's settings
		b, err := base64.RawURLEncoding.DecodeString(c)
		cq, err2 := url.ParseQuery(string(b))
		if err != nil || err2 != nil {
			fail(http.StatusBadRequest, "ERROR", "bad cursor")
			return
		}
		q = cq
	}
	ticker := r.PathValue("ticker")
	if r.PathValue("multiplier") != "1" || r.PathValue("timespan") != "day" {
		fail(http.StatusBadRequest, "ERROR", "the stand-in serves range/1/day only")
		return
	}
	from, err1 := parseDay(r.PathValue("from"))
	to, err2 := parseDay(r.PathValue("to"))
	if err1 != nil || err2 != nil {
		fail(http.StatusBadRequest, "ERROR", "from and to are YYYY-MM-DD dates or millisecond timestamps")
		return
	}
	if s := q.Get("sort"); s != "" && s != "asc" {
		fail(http.StatusBadRequest, "ERROR", "the stand-in sorts asc only")
		return
	}
	limit := 5000
	if l := q.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 1 || v > 50000 {
			fail(http.StatusBadRequest, "ERROR", "limit is 1 to 50000")
			return
		}
		limit = v
	}
	if h.opts.PageSize > 0 {
		limit = min(limit, h.opts.PageSize)
	}

	var days []time.Time
	if h.symbols[ticker] {
		days = Days(from, to.AddDate(0, 0, 1)) // Polygon's to is inclusive
	}
	page, rest := days, []time.Time(nil)
	if len(days) > limit {
		page, rest = days[:limit], days[limit:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"ticker":%q,"queryCount":%d,"resultsCount":%d,"adjusted":true`, ticker, len(days), len(page))
	if len(page) > 0 {
		b.WriteString(`,"results":[`)
		for i, d := range page {
			if i > 0 {
				b.WriteByte(',')
			}
			h.writeRow(&b, ticker, d)
		}
		b.WriteByte(']')
	}
	fmt.Fprintf(&b, `,"status":"OK","request_id":%q,"count":%d`, rid, len(page))
	if len(rest) > 0 {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		cursor := base64.RawURLEncoding.EncodeToString([]byte(url.Values{"limit": {strconv.Itoa(limit)},
			"sort": {"asc"}, "adjusted": {"true"}}.Encode()))
		next := fmt.Sprintf("%s://%s/v2/aggs/ticker/%s/range/1/day/%d/%s?cursor=%s", scheme, r.Host,
			url.PathEscape(ticker), millis(rest[0]), r.PathValue("to"), cursor)
		fmt.Fprintf(&b, `,"next_url":%q`, next)
	}
	b.WriteString("}")

	if fault == Truncate {
		body := b.String()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body[:len(body)/2]))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // net/http cuts the connection, silently
	}
	writeJSON(w, http.StatusOK, b.String())
}

func (h *Handler) writeRow(b *strings.Builder, ticker string, d time.Time) {
	bar := DailyBar(ticker, d)
	o, hi, lo, c, v := bar.Open, bar.High, bar.Low, bar.Close, strconv.FormatInt(bar.Volume, 10)
	switch h.opts.BadRows[d.Format(time.DateOnly)] {
	case NotAnObject:
		b.WriteString("[1,2,3]")
		return
	case MissingClose:
		fmt.Fprintf(b, `{"v":%s,"vw":%s,"o":%s,"h":%s,"l":%s,"t":%d,"n":%d}`, v, bar.VWAP, o, hi, lo, millis(d), bar.Trades)
		return
	case NegativeVolume:
		v = "-" + v
	case HugeOpen:
		o = "1e400"
	case HighBelowLow:
		hi, lo = lo, hi
	case TooManyDecimals:
		c = "187.1234567"
	}
	fmt.Fprintf(b, `{"v":%s,"vw":%s,"o":%s,"c":%s,"h":%s,"l":%s,"t":%d,"n":%d}`, v, bar.VWAP, o, c, hi, lo, millis(d), bar.Trades)
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// Bar is the stand-in's bar for one symbol and day, prices as the decimal text it serves.
type Bar struct {
	Day                    time.Time // midnight UTC of the trading day
	Open, High, Low, Close string
	Volume                 int64
	VWAP                   string
	Trades                 int64
}

// DailyBar returns the bar the stand-in serves for symbol on day (any weekday; the time of
// day is ignored): the same in every run.
func DailyBar(symbol string, day time.Time) Bar {
	day = utcDay(day)
	base := int64(2000 + hash(symbol)%48000) // cents: 20.00 to 499.99
	x := hash(symbol + "|" + day.Format(time.DateOnly))
	swing := base/50 + 1 // up to 2% of the base
	o := base + int64(x%uint64(2*swing+1)) - swing
	c := base + int64(x>>12%uint64(2*swing+1)) - swing
	hi := max(o, c) + int64(x>>24%uint64(swing))
	lo := max(min(o, c)-int64(x>>36%uint64(swing)), 1)
	vol := int64(100_000 + x>>44%9_900_000)
	vw := (hi + lo + c) * 100 / 3 // in 1/10000
	return Bar{Day: day, Open: cents(o), High: cents(hi), Low: cents(lo), Close: cents(c), Volume: vol,
		VWAP: fmt.Sprintf("%d.%04d", vw/10000, vw%10000), Trades: vol/80 + 1}
}

// Days returns the weekdays from <= day < to, as midnights UTC.
func Days(from, to time.Time) []time.Time {
	var days []time.Time
	for d := utcDay(from); d.Before(to); d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			days = append(days, d)
		}
	}
	return days
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("providerstub: " + err.Error()) // cannot happen: time/tzdata is linked in
	}
	return loc
}()

// millis is Polygon's "t" of a daily bar: its start, midnight New York time, in Unix ms.
func millis(day time.Time) int64 {
	y, m, d := day.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, newYork).UnixMilli()
}

// parseDay reads a path's from or to: a date, or a Unix ms timestamp (read in New York).
func parseDay(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	y, m, d := time.UnixMilli(ms).In(newYork).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// cents writes an amount in cents as Polygon does: no trailing zeros (187.5, 189).
func cents(v int64) string {
	s := fmt.Sprintf("%d.%02d", v/100, v%100)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func hash(s string) uint64 {
	f := fnv.New64a()
	_, _ = f.Write([]byte(s))
	// FNV's low bits move little between close inputs: a final mix spreads them.
	x := f.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// Server is the stand-in listening on a real address.
type Server struct {
	URL     string // base URL for INGEST_HTTP_BASE_URL, e.g. http://127.0.0.1:8089
	Handler *Handler
	srv     *http.Server
	stopped chan struct{}
	err     error // Serve's, set before stopped closes
}

// Listen starts the stand-in on addr ("127.0.0.1:0" picks a free port); it serves until
// Close. tools/run and pgfleet-provider-stub start it this way.
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("provider stub: listen: %w", err)
	}
	h := NewHandler(opts)
	s := &Server{URL: "http://" + ln.Addr().String(), Handler: h, stopped: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		s.err = s.srv.Serve(ln)
		close(s.stopped)
	}()
	return s, nil
}

// Done is closed when the server has stopped, by Close or by a failure of its own (Err).
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Err is why the server stopped, once Done is closed; nil after Close.
func (s *Server) Err() error {
	<-s.stopped
	if errors.Is(s.err, http.ErrServerClosed) {
		return nil
	}
	return s.err
}

// Close stops the server; requests in flight (a Hang among them) are cut.
func (s *Server) Close() error {
	err := s.srv.Close()
	return errors.Join(err, s.Err())
}
