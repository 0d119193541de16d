package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/telemetry/telemetrytest"
)

// TestWatch_requests runs the gateway binary, tracing to an in-process collector and
// logging every request, in front of recording gRPC servers, and checks what a Watch
// route's request becomes: a comma-separated list and repeated parameters both fill a
// repeated field; Last-Event-ID becomes the cursor, winning over a cursor parameter (the URL
// is fixed when an EventSource is made, the header is the newer position) and dropping
// from_oldest; access_token becomes the call's authorization, is refused on other routes,
// and appears in no log line and no span.
func TestWatch_requests(t *testing.T) {
	t.Parallel()
	col, err := telemetrytest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Close)
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/gateway"); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{calls: make(map[string][]recordedCall)}
	gw, gwLog := startGatewayProcess(t, bin, rec.serve(t, "stock"), rec.serve(t, "portfolio"),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.Endpoint(), "OTEL_TRACES_SAMPLER=always_on", "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=", "LOG_LEVEL=debug")
	const secret = "s3cr3t-token"

	tests := []struct {
		name, path  string
		headers     []string
		wantFields  map[string]any // field of the recorded request: its value
		wantAuth    []string
		wantEventID string
	}{
		{name: "symbols_comma_and_repeated", path: "/v1/prices:watch?symbols=AAPL,MSFT&symbols=IBM",
			wantFields: map[string]any{"symbols": []string{"AAPL", "MSFT", "IBM"}}},
		{name: "access_token", path: "/v1/prices:watch?symbols=AAPL&access_token=" + secret,
			wantFields: map[string]any{"symbols": []string{"AAPL"}}, wantAuth: []string{"Bearer " + secret}},
		{name: "cursor", path: "/v1/events/stock:watch?cursor=c-query",
			wantFields: map[string]any{"cursor": "c-query"}},
		{name: "last_event_id_wins", path: "/v1/events/stock:watch?cursor=c-query&from_oldest=true",
			headers: []string{"Last-Event-ID", "c-header"}, wantFields: map[string]any{"cursor": "c-header", "from_oldest": false}},
		{name: "last_event_id_portfolio", path: "/v1/events/portfolio:watch?types=pgfleet.portfolio.v1.TradeExecuted",
			headers:    []string{"Last-Event-ID", "c-header"},
			wantFields: map[string]any{"cursor": "c-header", "types": []string{"pgfleet.portfolio.v1.TradeExecuted"}}},
		{name: "no_cursor_field", path: "/v1/portfolios/7:watch", headers: []string{"Last-Event-ID", "ignored"},
			wantFields: map[string]any{"portfolio_id": int64(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := "watch-test/" + tt.name
			r := gw.do(t, http.MethodGet, tt.path, "", append([]string{"User-Agent", tag}, tt.headers...)...)
			if r.code != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("GET %s = %v %q, want 200 text/event-stream", tt.path, r, r.header.Get("Content-Type"))
			}
			// The recorder answers one empty message, then ends the stream.
			if !strings.HasPrefix(string(r.body), "data: {") || !strings.HasSuffix(string(r.body), "}\n\n") {
				t.Errorf("GET %s: body %q, want one event", tt.path, r.body)
			}
			calls := rec.take(tag)
			if len(calls) != 1 || len(calls[0].requests) != 1 {
				t.Fatalf("GET %s reached the services as %v, want one call with one request", tt.path, calls)
			}
			req := calls[0].requests[0].ProtoReflect()
			for field, want := range tt.wantFields {
				fd := req.Descriptor().Fields().ByName(protoreflect.Name(field))
				var got any
				switch v := req.Get(fd); {
				case fd.IsList():
					var list []string
					for i := range v.List().Len() {
						list = append(list, v.List().Get(i).String())
					}
					got = list
				default:
					got = v.Interface()
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("GET %s: %s mismatch (-want +got):\n%s", tt.path, field, diff)
				}
			}
			if !slices.Equal(calls[0].authorization, tt.wantAuth) {
				t.Errorf("GET %s: authorization %q, want %q", tt.path, calls[0].authorization, tt.wantAuth)
			}
		})
	}

	t.Run("access_token_elsewhere", func(t *testing.T) {
		for _, path := range []string{"/v1/stocks/AAPL?access_token=" + secret, "/monitoring/database?access_token=" + secret} {
			if r := gw.do(t, http.MethodGet, path, ""); r.code != http.StatusBadRequest || strings.Contains(string(r.body), secret) {
				t.Errorf("GET %s = %v, want 400 not echoing the token", path, r)
			}
		}
	})

	// The spans of the watch requests are exported; none may hold the token.
	spans := awaitSpans(t, col, func(spans []telemetrytest.Span) bool {
		for _, s := range spans {
			if strings.Contains(s.GetName(), ":watch") {
				return true
			}
		}
		return false
	})
	for _, s := range spans {
		if strings.Contains(s.String(), secret) {
			t.Errorf("span %q holds the access token: %v", s.GetName(), s.String())
		}
	}
	log, err := os.ReadFile(gwLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), ":watch") {
		t.Errorf("the gateway logged no watch request at LOG_LEVEL=debug:\n%s", log)
	}
	if strings.Contains(string(log), secret) {
		t.Errorf("the gateway's log holds the access token:\n%s", log)
	}
}

// TestWatch_connLimit: connections that carry Watch streams leave MAX_CONNECTIONS, so open
// streams (four, with a limit of two) neither wait to be accepted nor keep a short request
// from being served; each such connection closes when its stream ends.
func TestWatch_connLimit(t *testing.T) {
	t.Parallel()
	rec := &recorder{calls: make(map[string][]recordedCall)}
	f := &fleet{}
	for name, p := range map[string]**apptest.Process{"stock": &f.stock, "portfolio": &f.portfolio, "interview": &f.interview} {
		*p = &apptest.Process{Addr: rec.serve(t, name)}
	}
	gw := startGateway(t, f, map[string]string{"MAX_CONNECTIONS": "2"})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for i := range 4 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.url+"/v1/prices:watch?symbols=AAPL", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", fmt.Sprintf("conn-limit/%d%s", i, holdTag))
		resp, err := (&http.Client{Transport: client.Transport}).Do(req) // no timeout: the stream stays open
		if err != nil {
			t.Fatalf("watch stream %d: %v (waiting to be accepted past MAX_CONNECTIONS?)", i, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || !resp.Close {
			t.Fatalf("watch stream %d = %d, closing %v; want 200, Connection: close", i, resp.StatusCode, resp.Close)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatalf("watch stream %d: first event: %v", i, err)
		}
	}
	if r := gw.do(t, http.MethodGet, "/v1/stocks/AAPL", ""); r.code != http.StatusOK {
		t.Errorf("GET /v1/stocks/AAPL with four watch streams open = %v, want 200", r)
	}
}

// TestWatch_shutdown: SIGTERM ends an open Watch stream at once, with an "error" event
// SHUTTING_DOWN (its client reconnects elsewhere), and the gateway exits without waiting
// for DRAIN_TIMEOUT (a minute here): the drain never times out.
func TestWatch_shutdown(t *testing.T) {
	t.Parallel()
	rec := &recorder{calls: make(map[string][]recordedCall)}
	vars := map[string]string{
		"HTTP_ADDR": apptest.FreeAddr(t), "METRICS_ADDR": apptest.FreeAddr(t),
		"STOCK_ADDR": rec.serve(t, "stock"), "PORTFOLIO_ADDR": rec.serve(t, "portfolio"), "INTERVIEW_ADDR": rec.serve(t, "interview"),
		"DRAIN_TIMEOUT": "60s",
	}
	for k, v := range authtest.Env() {
		vars[k] = v
	}
	drainTimedOut := make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, slog.New(&onMessage{msg: "drain timed out, ending open requests", seen: drainTimedOut, once: &sync.Once{}}),
			envconfig.MapLookuper(vars))
	}()
	gw := &testGateway{url: "http://" + vars["HTTP_ADDR"], metrics: "http://" + vars["METRICS_ADDR"], client: &http.Client{}}
	waitHealthz(t, gw)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.url+"/v1/prices:watch?symbols=AAPL", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "shutdown"+holdTag)
	resp, err := gw.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	first, err := body.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "data: ") {
		t.Fatalf("watch = HTTP %d, first line %q, %v; want an event", resp.StatusCode, first, err)
	}

	stop() // SIGTERM
	rest, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read the rest of the stream: %v", err)
	}
	if !strings.Contains(string(rest), "event: error\ndata: {") || !strings.Contains(string(rest), "SHUTTING_DOWN") {
		t.Errorf("after SIGTERM the stream sent %q, want an error event SHUTTING_DOWN", rest)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v", err)
		}
	case <-t.Context().Done():
		t.Fatal("the gateway did not exit")
	}
	select {
	case <-drainTimedOut:
		t.Error("the drain waited for the Watch stream until DRAIN_TIMEOUT")
	default:
	}
}

// sseEvent is one event of a stream, as EventSource dispatches it.
type sseEvent struct{ id, event, data string }

// readEvents reads events from an event stream until want says it has enough, and returns them.
func readEvents(t *testing.T, body io.Reader, want func([]sseEvent) bool) []sseEvent {
	t.Helper()
	var events []sseEvent
	r := newSSEReader(body)
	for !want(events) {
		ev, err := r.next()
		if err != nil {
			t.Fatalf("stream ended after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
	return events
}

// sseReader reads an event stream one event at a time; unlike readEvents it may be used
// from any goroutine.
type sseReader struct {
	br *bufio.Reader
	id string // the last event id, which EventSource keeps for events without one
}

func newSSEReader(body io.Reader) *sseReader { return &sseReader{br: bufio.NewReader(body)} }

// next returns the next event, skipping comments (heartbeats), or the error that ended the stream.
func (r *sseReader) next() (sseEvent, error) {
	cur := sseEvent{id: r.id}
	var data []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return sseEvent{}, err
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "" && data != nil:
			cur.data = strings.Join(data, "\n")
			r.id = cur.id
			return cur, nil
		case field == "id":
			cur.id = value
		case field == "event":
			cur.event = value
		case field == "data":
			data = append(data, value)
		}
	}
}

// testWatchResume: an events stream through the gateway resumes where the browser's
// EventSource says it stopped: Last-Event-ID (an event's cursor) becomes the request's
// cursor, over a cursor query parameter (here malformed: were it used, the answer would be
// 400), and the stream goes on with the very next event. Every event carries an id, the
// cursor of its message. Needs the stock service's WatchStockEvents.
func testWatchResume(t *testing.T, e *env) {
	type batch struct {
		Events []struct {
			Cursor string `json:"cursor"`
			ID     string `json:"id"`
		} `json:"events"`
		Cursor string `json:"cursor"`
	}
	open := func(path string, headers ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.gw.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := (&http.Client{}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s = %d %s, want 200 text/event-stream", path, resp.StatusCode, b)
		}
		return resp
	}
	// decode returns the events of the stream's event messages, in order.
	var ids []string
	var cursors []string
	enough := func(min int) func([]sseEvent) bool {
		return func(evs []sseEvent) bool {
			ids, cursors = nil, nil
			for _, ev := range evs {
				var b batch
				if err := json.Unmarshal([]byte(ev.data), &b); err != nil || ev.event != "" {
					t.Fatalf("event %+v is no events message: %v", ev, err)
				}
				if ev.id != b.Cursor || b.Cursor == "" {
					t.Fatalf("event id %q, want its message's cursor %q", ev.id, b.Cursor)
				}
				for _, x := range b.Events {
					ids, cursors = append(ids, x.ID), append(cursors, x.Cursor)
				}
			}
			return len(ids) >= min
		}
	}
	// The seed wrote stocks and prices: their events are kept.
	readEvents(t, open("/v1/events/stock:watch?from_oldest=true").Body, enough(3))
	all := slices.Clone(ids)
	resumeAt := cursors[0]
	readEvents(t, open("/v1/events/stock:watch?cursor=not-a-cursor", "Last-Event-ID", resumeAt).Body, enough(2))
	if ids[0] != all[1] || ids[1] != all[2] {
		t.Errorf("resumed after event %s at %v, want %v next", all[0], ids[:2], all[1:3])
	}
}
