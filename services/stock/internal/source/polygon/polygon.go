// Package polygon is the ingestion connector for daily bars from an HTTP market-data provider
// speaking Polygon.io's REST "Aggregates (Bars)" v2 format:
//
//	GET {base}/v2/aggs/ticker/{ticker}/range/1/day/{from}/{to}?adjusted=true&sort=asc&limit=N&apiKey=K
//
// answered by {"ticker","status","resultsCount","results":[{"o","h","l","c","v","vw","t","n"}],
// "request_id","next_url"}. Prices are kept as the decimal text the provider sent (decoded as
// json.Number, never float64); pages are stream-decoded and emitted one batch each, following
// next_url. services/stock/providerstub serves the same format on loopback for tests and demos.
package polygon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 3
	DefaultLimit      = 5000     // Polygon's own default page size (its maximum is 50000)
	DefaultMaxBody    = 64 << 20 // 64 MiB: a 50000-bar page is under 8 MiB
	// ShortRetryAfter is the longest Retry-After of a 429 that Fetch waits out itself; a
	// longer one ends Fetch with a TransientError so the pipeline reschedules the run.
	ShortRetryAfter = 2 * time.Second
	maxBatch        = 5000 // bars per emit, as the source contract asks ("a few thousand")
	maxPages        = 100_000
)

// Config says where the provider is and how to talk to it. The pipeline fills it from
// INGEST_HTTP_BASE_URL, INGEST_HTTP_API_KEY and INGEST_HTTP_TIMEOUT.
type Config struct {
	// BaseURL is the provider's root, e.g. https://api.polygon.io or the stand-in's
	// http://127.0.0.1:8089; the aggregates path is appended to it.
	BaseURL string
	// APIKey goes in the apiKey query parameter of every request (next_url pages too). It
	// never appears in an error: it is redacted from every URL and message Fetch returns.
	APIKey string `json:"-"`
	// Timeout bounds one HTTP request, body included; 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the requests; nil means a client of its own.
	HTTPClient *http.Client
	// MaxRetries is how many short 429s (Retry-After <= ShortRetryAfter) one request waits
	// out before Fetch returns the TransientError; 0 means DefaultMaxRetries, negative none.
	MaxRetries int
	// Limit is the page size asked for (the limit query parameter); 0 means DefaultLimit.
	Limit int
	// MaxBody caps one response body in bytes; 0 means DefaultMaxBody.
	MaxBody int64
}

// Source fetches daily bars from a Polygon-format provider. It is safe for concurrent use.
type Source struct {
	base       *url.URL
	key        string
	timeout    time.Duration
	client     *http.Client
	maxRetries int
	limit      int
	maxBody    int64
}

var _ source.Source = (*Source)(nil)

// New checks cfg and returns a Source; it sends nothing.
func New(cfg Config) (*Source, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	// Errors show the base URL without its query, and without the key should it be there.
	shown, _, _ := strings.Cut(cfg.BaseURL, "?")
	shown = (&Source{key: cfg.APIKey}).redact(shown)
	switch {
	case cfg.BaseURL == "":
		return nil, errors.New("polygon: no base URL")
	case err != nil:
		return nil, fmt.Errorf("polygon: base URL %q does not parse", shown)
	case base.Scheme != "http" && base.Scheme != "https", base.Host == "":
		return nil, fmt.Errorf("polygon: base URL %q: want http(s)://host[:port]", shown)
	case base.RawQuery != "" || base.Fragment != "" || base.User != nil:
		return nil, fmt.Errorf("polygon: base URL %q: no query, fragment or user info (the key goes in APIKey)", shown)
	case cfg.Timeout < 0, cfg.Limit < 0, cfg.MaxBody < 0:
		return nil, errors.New("polygon: negative Timeout, Limit or MaxBody")
	case cfg.Limit > 50000:
		return nil, fmt.Errorf("polygon: Limit %d above the API's 50000", cfg.Limit)
	}
	s := &Source{base: base, key: cfg.APIKey, timeout: cfg.Timeout, client: cfg.HTTPClient,
		maxRetries: cfg.MaxRetries, limit: cfg.Limit, maxBody: cfg.MaxBody}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	switch {
	case s.maxRetries == 0:
		s.maxRetries = DefaultMaxRetries
	case s.maxRetries < 0:
		s.maxRetries = 0
	}
	if s.limit == 0 {
		s.limit = DefaultLimit
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBody
	}
	return s, nil
}

// Name is "polygon".
func (s *Source) Name() string { return "polygon" }

// emitError carries the pipeline's own error through Fetch untouched.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// Fetch fetches req.Symbols one after the other, each over [req.From, req.To), and emits a
// batch per page. A 429, a 5xx, a timeout or a cut connection is a *source.TransientError
// (with the Retry-After asked for); a refused key, a malformed body or an unexpected answer
// is permanent; a ticker the provider does not know yields no bars.
func (s *Source) Fetch(ctx context.Context, req source.Request, emit func([]source.Bar, []source.Reject) error) error {
	if len(req.Symbols) == 0 {
		return errors.New("polygon: the request names no symbols (the aggregates API is asked ticker by ticker)")
	}
	from, to := utcDay(req.From), utcDay(req.To)
	if req.From.After(from) {
		from = from.AddDate(0, 0, 1) // a From inside a day excludes that day's bar (at its midnight)
	}
	if req.To.After(to) {
		to = to.AddDate(0, 0, 1) // To is exclusive: a To inside a day still covers that day
	}
	if !from.Before(to) {
		return nil
	}
	for _, sym := range req.Symbols {
		if err := s.fetchSymbol(ctx, sym, from, to, emit); err != nil {
			var ee emitError
			if errors.As(err, &ee) {
				return ee.err
			}
			return s.scrub(err)
		}
	}
	return nil
}

// fetchSymbol follows one ticker's pages.
func (s *Source) fetchSymbol(ctx context.Context, sym string, from, to time.Time,
	emit func([]source.Bar, []source.Reject) error) error {
	if sym == "" || strings.ContainsAny(sym, "/?#") {
		return fmt.Errorf("polygon: bad ticker %q", sym)
	}
	u := s.base.JoinPath("v2", "aggs", "ticker", sym, "range", "1", "day",
		from.Format(time.DateOnly), to.AddDate(0, 0, -1).Format(time.DateOnly)) // Polygon's to is inclusive
	q := url.Values{"adjusted": {"true"}, "sort": {"asc"}, "limit": {strconv.Itoa(s.limit)}}
	s.setKey(q)
	u.RawQuery = q.Encode()
	d := &pageDecoder{symbol: sym, from: from, to: to}
	next := u.String()
	for n := 1; next != ""; n++ {
		if n > maxPages {
			return fmt.Errorf("polygon: %s: more than %d pages, giving up", sym, maxPages)
		}
		p, err := s.getPage(ctx, next, d)
		if err != nil {
			return err
		}
		if p == nil { // 404: the provider has nothing for this ticker
			return nil
		}
		for len(p.bars) > 0 || len(p.rejects) > 0 {
			bars, rejects := p.bars[:min(len(p.bars), maxBatch)], p.rejects
			p.bars, p.rejects = p.bars[len(bars):], nil
			if err := emit(bars, rejects); err != nil {
				return emitError{err}
			}
		}
		if p.nextURL == "" {
			return nil
		}
		u, err := s.follow(p.nextURL)
		if err != nil {
			return err
		}
		if u == next {
			return fmt.Errorf("polygon: %s: next_url repeats the page just read (%s)", sym, s.redactURL(u))
		}
		next = u
	}
	return nil
}

// follow turns a page's next_url into the next request: same scheme and host as the base
// URL (so the key never leaves for another host), with the key added again, since Polygon
// leaves it out of next_url.
func (s *Source) follow(next string) (string, error) {
	u, err := s.base.Parse(next)
	if err != nil {
		return "", fmt.Errorf("polygon: bad next_url %q", s.redact(cut(next, 300)))
	}
	if u.Scheme != s.base.Scheme || u.Host != s.base.Host {
		return "", fmt.Errorf("polygon: next_url %s leaves %s://%s; not followed, so the key stays there",
			s.redactURL(u.String()), s.base.Scheme, s.base.Host)
	}
	q := u.Query()
	s.setKey(q)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (s *Source) setKey(q url.Values) {
	if s.key != "" {
		q.Set("apiKey", s.key)
	} else {
		q.Del("apiKey")
	}
}

// getPage gets one page, waiting out short rate limits.
func (s *Source) getPage(ctx context.Context, u string, d *pageDecoder) (*page, error) {
	for try := 0; ; try++ {
		p, wait, err := s.get(ctx, u, d)
		if wait == 0 || try >= s.maxRetries {
			return p, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("polygon: waiting out a rate limit: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// get sends one request. wait is nonzero for a 429 short enough to wait out here.
func (s *Source) get(ctx context.Context, u string, d *pageDecoder) (p *page, wait time.Duration, err error) {
	what := "GET " + s.redactURL(u)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("polygon: %s: %v", what, s.redact(err.Error()))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pgfleet-ingest")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, s.transportError(ctx, rctx, what, err)
	}
	defer resp.Body.Close() //nolint:errcheck // a read-only body

	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusNotFound:
		msg, status := s.errorBody(resp.Body)
		if status == "" { // not the API's JSON: most likely a wrong base URL, not a missing ticker
			return nil, 0, fmt.Errorf("polygon: %s: HTTP 404 without the API's JSON (check the base URL): %s", what, msg)
		}
		return nil, 0, nil
	case code == http.StatusTooManyRequests:
		msg, _ := s.errorBody(resp.Body)
		ra := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		err := &source.TransientError{Err: fmt.Errorf("polygon: %s: rate limited (HTTP 429): %s", what, msg), RetryAfter: ra}
		if ra > 0 && ra <= ShortRetryAfter {
			wait = ra
		}
		return nil, wait, err
	case code >= 500:
		msg, _ := s.errorBody(resp.Body)
		return nil, 0, &source.TransientError{Err: fmt.Errorf("polygon: %s: HTTP %d: %s", what, code, msg),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		msg, _ := s.errorBody(resp.Body)
		return nil, 0, fmt.Errorf("polygon: %s: key refused (HTTP %d): %s", what, code, msg)
	default:
		msg, _ := s.errorBody(resp.Body)
		return nil, 0, fmt.Errorf("polygon: %s: HTTP %d: %s", what, code, msg)
	}

	body := &capReader{r: resp.Body, left: s.maxBody}
	p, err = d.decode(body)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, 0, fmt.Errorf("polygon: %s: %w", what, ctx.Err())
		case rctx.Err() != nil:
			return nil, 0, &source.TransientError{Err: fmt.Errorf("polygon: %s: body not read within %s: %w", what, s.timeout, rctx.Err())}
		case errors.Is(body.err, errTooLarge):
			return nil, 0, fmt.Errorf("polygon: %s: body larger than %d bytes, refused", what, s.maxBody)
		case body.err != nil:
			return nil, 0, &source.TransientError{Err: fmt.Errorf("polygon: %s: body cut after %d bytes: %v", what, body.n, s.redact(body.err.Error()))}
		default:
			return nil, 0, fmt.Errorf("polygon: %s: %w", what, err)
		}
	}
	switch p.status {
	case "OK", "DELAYED":
		return p, 0, nil
	case "NOT_AUTHORIZED":
		return nil, 0, fmt.Errorf("polygon: %s: not authorized: %s", what, s.redact(cut(p.message, 300)))
	case "":
		return nil, 0, fmt.Errorf("polygon: %s: the answer has no status", what)
	default:
		return nil, 0, fmt.Errorf("polygon: %s: status %q: %s", what, cut(p.status, 40), s.redact(cut(p.message, 300)))
	}
}

// transportError classifies a failed round trip: the caller's own end is returned as is,
// a certificate problem is permanent, anything else (timeout, refused, reset) transient.
func (s *Source) transportError(ctx, rctx context.Context, what string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its URL holds the key
	}
	var cert *tls.CertificateVerificationError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("polygon: %s: %w", what, ctx.Err())
	case rctx.Err() != nil:
		return &source.TransientError{Err: fmt.Errorf("polygon: %s: no answer within %s: %w", what, s.timeout, rctx.Err())}
	case errors.As(err, &cert):
		return fmt.Errorf("polygon: %s: %s", what, s.redact(err.Error()))
	}
	return &source.TransientError{Err: fmt.Errorf("polygon: %s: %s", what, s.redact(err.Error()))}
}

// errorBody reads the start of an error answer: Polygon's {"status","error"|"message"}, or
// the raw text if it is something else.
func (s *Source) errorBody(r io.Reader) (msg, status string) {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	var e struct{ Status, Error, Message string }
	if json.Unmarshal(b, &e) == nil && e.Status != "" {
		msg = e.Error
		if msg == "" {
			msg = e.Message
		}
		if msg == "" {
			msg = e.Status
		}
		return s.redact(cut(msg, 300)), e.Status
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty body)", ""
	}
	return s.redact(cut(string(b), 300)), ""
}

// redact removes the key from text, as sent and as query-escaped.
func (s *Source) redact(text string) string {
	if s.key == "" {
		return text
	}
	for _, k := range []string{s.key, url.QueryEscape(s.key), url.PathEscape(s.key)} {
		text = strings.ReplaceAll(text, k, "REDACTED")
	}
	return text
}

// redactURL shows a request URL with its apiKey replaced.
func (s *Source) redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return s.redact(raw)
	}
	q := u.Query()
	if q.Has("apiKey") {
		q.Set("apiKey", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return s.redact(u.String())
}

// scrub is the last guard before an error leaves Fetch: were the key in its text anyway, the
// error is rebuilt from the redacted text, keeping its class.
func (s *Source) scrub(err error) error {
	if err == nil || s.key == "" || s.redact(err.Error()) == err.Error() {
		return err
	}
	clean := errors.New(s.redact(err.Error()))
	if ra, ok := source.Transient(err); ok {
		return &source.TransientError{Err: clean, RetryAfter: ra}
	}
	return clean
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

var errTooLarge = errors.New("body too large")

// capReader stops a body at left bytes and remembers the first read error other than EOF,
// so a cut connection (transient) is told apart from a complete but malformed body.
type capReader struct {
	r    io.Reader
	left int64
	n    int64
	err  error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			c.err = errTooLarge
			return 0, c.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.left -= int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
