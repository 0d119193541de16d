package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/telemetry/telemetrytest"
)

// traceTimeout bounds the wait for spans: the services export every 100 ms
// (OTEL_BSP_SCHEDULE_DELAY), but a busy machine may be slow.
const traceTimeout = 60 * time.Second

// TestTracing runs gateway, portfolio and stock as processes exporting to an in-process
// OTLP receiver, and follows one REST trade through them: one trace holds the gateway's
// HTTP span, its client span, portfolio's server span, portfolio's client span to stock,
// stock's server span and the SQL spans of both services, each linked to its parent; the
// trace continues the traceparent the client sent. A failed call's span has error status,
// and the lines the services logged for the trade carry its trace id.
func TestTracing(t *testing.T) {
	t.Parallel()
	col, err := telemetrytest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Close)
	otelEnv := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.Endpoint(), "OTEL_TRACES_SAMPLER=always_on",
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=", "LOG_LEVEL=debug"}

	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock",
		"github.com/pgfleet/pgfleet/services/portfolio", "github.com/pgfleet/pgfleet/services/gateway"); err != nil {
		t.Fatal(err)
	}
	stock := startService(t, bin, "stock", otelEnv...)
	portfolio := startService(t, bin, "portfolio", append([]string{"STOCK_ADDR=" + stock.Addr,
		"STOCK_TIMEOUT=10s", "MAX_PRICE_AGE=0"}, otelEnv...)...)
	seedBigSymbol(t, stock.Addr, "AAPL", 1)
	gw, gwLog := startGatewayProcess(t, bin, stock.Addr, portfolio.Addr, otelEnv...)
	e := &env{gw: gw}

	const email = "tracer@example.com"
	id := newPortfolio(t, e, email, "10000")
	// A browser's page started the trace: the gateway must continue it.
	const (
		pageTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		pageSpan  = "00f067aa0ba902b7"
	)
	r := gw.do(t, http.MethodPost, "/v1/portfolios/"+id+"/trades",
		`{"symbol":"AAPL","side":"SIDE_BUY","quantity":"10","request_id":"traced-buy"}`,
		append(bearer(t, email), "traceparent", "00-"+pageTrace+"-"+pageSpan+"-01")...)
	if r.code != http.StatusOK {
		t.Fatalf("trade = %v", r)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("trade answer has no X-Request-Id")
	}

	const (
		trade  = "pgfleet.portfolio.v1.PortfolioService/ExecuteTrade"
		prices = "pgfleet.stock.v1.StockService/GetLatestPrices"
	)
	// The services export in batches of their own: wait for every span the checks need.
	expected := []struct {
		service string
		kind    tracev1.Span_SpanKind
		name    string
	}{
		{"pgfleet-gateway", tracev1.Span_SPAN_KIND_SERVER, "POST"},
		{"pgfleet-gateway", tracev1.Span_SPAN_KIND_CLIENT, trade},
		{"pgfleet-portfolio", tracev1.Span_SPAN_KIND_SERVER, trade},
		{"pgfleet-portfolio", tracev1.Span_SPAN_KIND_CLIENT, prices},
		{"pgfleet-portfolio", tracev1.Span_SPAN_KIND_CLIENT, "COMMIT"},
		{"pgfleet-stock", tracev1.Span_SPAN_KIND_SERVER, prices},
		{"pgfleet-stock", tracev1.Span_SPAN_KIND_CLIENT, "SELECT"},
	}
	spans := awaitSpans(t, col, func(ss []telemetrytest.Span) bool {
		for _, e := range expected {
			if findSpan(ss, pageTrace, e.service, e.kind, e.name) == nil {
				return false
			}
		}
		return true
	})
	byID := map[string]telemetrytest.Span{}
	for _, s := range spans {
		if s.TraceID() == pageTrace {
			byID[s.ID()] = s
		}
	}
	want := func(service string, kind tracev1.Span_SpanKind, name string, parent telemetrytest.Span) telemetrytest.Span {
		t.Helper()
		s := findSpan(spans, pageTrace, service, kind, name)
		if s == nil {
			t.Fatalf("no %s %v span %q in trace %s; got:\n%s", service, kind, name, pageTrace, describe(byID))
		}
		if parent.Span != nil && s.Parent() != parent.ID() {
			t.Errorf("%s span %q has parent %s, want %s (%q)", service, s.GetName(), s.Parent(), parent.ID(), parent.GetName())
		}
		return *s
	}
	httpSpan := want("pgfleet-gateway", tracev1.Span_SPAN_KIND_SERVER, "POST /v1/portfolios/{portfolio_id=*}/trades", telemetrytest.Span{})
	if httpSpan.Parent() != pageSpan {
		t.Errorf("gateway span's parent = %s, want the page's span %s (traceparent)", httpSpan.Parent(), pageSpan)
	}
	gwClient := want("pgfleet-gateway", tracev1.Span_SPAN_KIND_CLIENT, trade, httpSpan)
	pfServer := want("pgfleet-portfolio", tracev1.Span_SPAN_KIND_SERVER, trade, gwClient)
	pfClient := want("pgfleet-portfolio", tracev1.Span_SPAN_KIND_CLIENT, prices, telemetrytest.Span{})
	if !descends(byID, pfClient, pfServer) {
		t.Errorf("portfolio's %s client span does not descend from its ExecuteTrade server span", prices)
	}
	stockServer := want("pgfleet-stock", tracev1.Span_SPAN_KIND_SERVER, prices, pfClient)

	t.Logf("the trade's trace:\n%s", tree(byID, httpSpan, ""))

	// SQL spans, named by operation, under the server span of the service that ran them.
	for _, sv := range []struct {
		service string
		server  telemetrytest.Span
		ops     []string
	}{
		{"pgfleet-portfolio", pfServer, []string{"BEGIN", "SELECT", "COMMIT"}}, // the trade's transaction
		{"pgfleet-stock", stockServer, []string{"SELECT"}},
	} {
		for _, op := range sv.ops {
			s := findSpan(spans, pageTrace, sv.service, tracev1.Span_SPAN_KIND_CLIENT, op)
			if s == nil {
				t.Errorf("no %s SQL span %q in the trade's trace; got:\n%s", sv.service, op, describe(byID))
				continue
			}
			if !descends(byID, *s, sv.server) {
				t.Errorf("%s SQL span %q does not descend from its server span", sv.service, op)
			}
			if !hasAttr(s.Span, "db.query.text") {
				t.Errorf("%s SQL span %q has no db.query.text", sv.service, op)
			}
		}
	}

	// A failed call: the gateway's client span of a NOT_FOUND has error status.
	r = gw.do(t, http.MethodGet, "/v1/portfolios/999999999", "", bearer(t, email)...)
	if r.code != http.StatusNotFound {
		t.Fatalf("GET unknown portfolio = %v, want 404", r)
	}
	failedTrace := ""
	const get = "pgfleet.portfolio.v1.PortfolioService/GetPortfolio"
	awaitSpans(t, col, func(ss []telemetrytest.Span) bool {
		for _, s := range ss {
			if s.Service == "pgfleet-gateway" && s.GetKind() == tracev1.Span_SPAN_KIND_CLIENT && s.GetName() == get &&
				s.GetStatus().GetCode() == tracev1.Status_STATUS_CODE_ERROR {
				failedTrace = s.TraceID()
				// and the server span it called, in the same trace
				return findSpan(ss, failedTrace, "pgfleet-portfolio", tracev1.Span_SPAN_KIND_SERVER, get) != nil
			}
		}
		return false
	})

	// Latency samples of the trade carry its trace id as an exemplar (OpenMetrics only).
	for _, m := range []struct{ url, metric string }{
		{gw.metrics + "/metrics", "pgfleet_gateway_http_request_duration_seconds_bucket"},
		{"http://" + stock.MetricsAddr + "/metrics", "grpc_server_handling_seconds_bucket"},
	} {
		if !hasExemplar(t, m.url, m.metric, pageTrace) {
			t.Errorf("%s: no %s sample with exemplar trace_id %s", m.url, m.metric, pageTrace)
		}
	}

	// Every service logged the trade's call with its trace id.
	for _, l := range []struct{ name, path string }{
		{"gateway", gwLog}, {"portfolio", portfolio.Log}, {"stock", stock.Log},
	} {
		awaitLogLine(t, l.name, l.path, pageTrace)
	}
}

// startGatewayProcess runs the gateway binary in front of stock and portfolio (interview's
// address answers nothing: this test does not use it) and waits until it serves; it returns
// the gateway and its log file.
func startGatewayProcess(t *testing.T, bin, stockAddr, portfolioAddr string, env ...string) (*testGateway, string) {
	t.Helper()
	p := apptest.StartGatewayProcess(t, filepath.Join(bin, "gateway"), append([]string{"STOCK_ADDR=" + stockAddr,
		"PORTFOLIO_ADDR=" + portfolioAddr, "INTERVIEW_ADDR=" + apptest.FreeAddr(t)}, env...)...)
	g := &testGateway{url: "http://" + p.Addr, metrics: "http://" + p.MetricsAddr, client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(g.client.CloseIdleConnections)
	return g, p.Log
}

// awaitSpans polls the collector until done says its spans are complete.
func awaitSpans(t *testing.T, col *telemetrytest.Collector, done func([]telemetrytest.Span) bool) []telemetrytest.Span {
	t.Helper()
	for deadline := time.Now().Add(traceTimeout); ; time.Sleep(50 * time.Millisecond) {
		spans := col.Spans()
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			byID := map[string]telemetrytest.Span{}
			for _, s := range spans {
				byID[s.ID()] = s
			}
			t.Fatalf("spans not complete within %v; got:\n%s", traceTimeout, describe(byID))
		}
	}
}

// findSpan returns the span of trace from service of kind whose name starts with name.
func findSpan(spans []telemetrytest.Span, trace, service string, kind tracev1.Span_SpanKind, name string) *telemetrytest.Span {
	for _, s := range spans {
		if s.TraceID() == trace && s.Service == service && s.GetKind() == kind && strings.HasPrefix(s.GetName(), name) {
			return &s
		}
	}
	return nil
}

// descends reports whether ancestor is on s's chain of parents.
func descends(byID map[string]telemetrytest.Span, s, ancestor telemetrytest.Span) bool {
	for range len(byID) {
		p, ok := byID[s.Parent()]
		if !ok {
			return false
		}
		if p.ID() == ancestor.ID() {
			return true
		}
		s = p
	}
	return false
}

func hasAttr(s *tracev1.Span, key string) bool {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return true
		}
	}
	return false
}

// describe lists spans as "service kind name id <- parent", for failure messages.
func describe(byID map[string]telemetrytest.Span) string {
	var b strings.Builder
	for _, s := range byID {
		fmt.Fprintf(&b, "  %s %v %q %s <- %s %v\n", s.Service, s.GetKind(), s.GetName(), s.ID(), s.Parent(), s.GetStatus().GetCode())
	}
	return b.String()
}

// awaitLogLine waits until the JSON log at path has a line whose trace_id is trace.
func awaitLogLine(t *testing.T, name, path, trace string) {
	t.Helper()
	for deadline := time.Now().Add(traceTimeout); ; time.Sleep(50 * time.Millisecond) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct {
				TraceID string `json:"trace_id"`
				SpanID  string `json:"span_id"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.TraceID == trace && rec.SpanID != "" {
				f.Close()
				return
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			t.Errorf("%s logged no line with trace_id %s within %v", name, trace, traceTimeout)
			return
		}
	}
}

// hasExemplar scrapes url as OpenMetrics and reports whether a sample of metric carries the
// exemplar trace_id="trace".
func hasExemplar(t *testing.T, url, metric, trace string) bool {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("%s answered %q, want OpenMetrics", url, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, `# {trace_id="`+trace+`"}`) {
			t.Logf("%s: %s", url, line)
			return true
		}
	}
	return false
}

// tree renders s and its descendants in start order, one line each with service, kind,
// name and duration, for the log of a -v run.
func tree(byID map[string]telemetrytest.Span, s telemetrytest.Span, indent string) string {
	var b strings.Builder
	d := time.Duration(s.GetEndTimeUnixNano() - s.GetStartTimeUnixNano())
	kind := strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"))
	fmt.Fprintf(&b, "%s%s %s %q %v\n", indent, s.Service, kind, s.GetName(), d.Round(time.Microsecond))
	var children []telemetrytest.Span
	for _, c := range byID {
		if c.Parent() == s.ID() {
			children = append(children, c)
		}
	}
	slices.SortFunc(children, func(a, b telemetrytest.Span) int {
		return cmp.Compare(a.GetStartTimeUnixNano(), b.GetStartTimeUnixNano())
	})
	for _, c := range children {
		b.WriteString(tree(byID, c, indent+"  "))
	}
	return b.String()
}
