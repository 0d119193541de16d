package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// sseEvent is one dispatched event, as EventSource sees it.
type sseEvent struct {
	ID, Event, Data string
}

// parseSSE reads an event stream as the WHATWG HTML standard's parser does (fields id,
// event, data; comments; dispatch at a blank line), and returns the events and the comments.
func parseSSE(t *testing.T, body string) (events []sseEvent, comments []string) {
	t.Helper()
	var cur sseEvent
	var data []string
	lastID := ""
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "":
			if data != nil {
				cur.ID, cur.Data = lastID, strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			comments = append(comments, strings.TrimPrefix(line, ":"))
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				lastID = value
			case "event":
				cur.Event = value
			case "data":
				data = append(data, value)
			default:
				t.Errorf("unexpected field line %q", line)
			}
		}
	}
	return events, comments
}

// watchStream is what the fake Watch route sends: msgs in order, then err (nil: block
// until the request ends).
type watchStream struct {
	msgs []proto.Message
	err  error
	// sent counts the messages the route handed to the gateway; endless repeats msgs[0].
	sent    atomic.Int64
	endless bool
	ended   chan struct{} // closed when the route first returns
	endOnce sync.Once
}

// newWatchGateway returns a gateway whose GET /v1/test:watch forwards s as a generated
// Watch route does, and whose GET /v1/test answers {} (a short request).
func newWatchGateway(t *testing.T, s *watchStream, opts Options) *Gateway {
	t.Helper()
	s.ended = make(chan struct{})
	register := func(_ context.Context, mux *runtime.ServeMux, _ grpc.ClientConnInterface) error {
		if err := mux.HandlePath(http.MethodGet, "/v1/test", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
		}); err != nil {
			return err
		}
		return mux.HandlePath(http.MethodGet, "/v1/test:watch", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			defer s.endOnce.Do(func() { close(s.ended) })
			_, out := runtime.MarshalerForRequest(mux, r)
			next := 0
			recv := func() (proto.Message, error) {
				switch {
				case s.endless:
					if r.Context().Err() != nil {
						return nil, status.FromContextError(r.Context().Err()).Err()
					}
					s.sent.Add(1)
					return s.msgs[0], nil
				case next < len(s.msgs):
					next++
					s.sent.Add(1)
					return s.msgs[next-1], nil
				case s.err != nil:
					return nil, s.err
				}
				<-r.Context().Done()
				return nil, status.FromContextError(r.Context().Err()).Err()
			}
			ctx := runtime.NewServerMetadataContext(r.Context(), runtime.ServerMetadata{})
			runtime.ForwardResponseStream(ctx, mux, out, w, r, recv, mux.GetForwardResponseOptions()...)
		})
	}
	opts.Upstreams = []Upstream{{Name: "test", Register: register}}
	opts.MaxRequestBytes = 1024
	opts.HealthTimeout = time.Second
	opts.OpenAPI = []byte(`{"swagger":"2.0"}`)
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 8
	}
	if opts.MaxWatchStreams == 0 {
		opts.MaxWatchStreams = 100
	}
	g, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func eventsMessage(cursor string) *stockv1.WatchStockEventsResponse {
	return &stockv1.WatchStockEventsResponse{Cursor: cursor, Events: []*opsv1.Event{{Cursor: cursor, Id: "e-" + cursor,
		AggregateType: "stock", AggregateId: "AAPL", Type: "pgfleet.stock.v1.StockChanged"}}}
}

func jsonOf(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := marshaler.JSONPb.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWatch_framing: each message is one event, data the REST JSON of the message, id its
// cursor where it has one; an error after the first event is an "error" event holding the
// status; every line is a field, a comment or blank.
func TestWatch_framing(t *testing.T) {
	t.Parallel()
	prices := &stockv1.WatchLatestPricesResponse{Prices: []*stockv1.Price{{Symbol: "AAPL", Close: "190.5"}}}
	s := &watchStream{msgs: []proto.Message{eventsMessage("c1"), prices, eventsMessage("c2")},
		err: status.Error(codes.Unavailable, "service draining")}
	g := newWatchGateway(t, s, Options{})
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test:watch", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != eventStream {
		t.Fatalf("GET /v1/test:watch = %d %q, want 200 %s", rec.Code, rec.Header().Get("Content-Type"), eventStream)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", got)
	}
	body := rec.Body.String()
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "id: ") && !strings.HasPrefix(line, "data: ") &&
			!strings.HasPrefix(line, "event: ") && !strings.HasPrefix(line, ":") {
			t.Errorf("line %q is no field of an event stream", line)
		}
	}
	events, _ := parseSSE(t, body)
	if len(events) != 4 {
		t.Fatalf("got %d events, want 4:\n%s", len(events), body)
	}
	// The id persists (EventSource's last event ID) until an event sets another.
	want := []sseEvent{
		{ID: "c1", Data: jsonOf(t, eventsMessage("c1"))},
		{ID: "c1", Data: jsonOf(t, prices)},
		{ID: "c2", Data: jsonOf(t, eventsMessage("c2"))},
	}
	if diff := cmp.Diff(want, events[:3]); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if strings.Count(body, "id: ") != 2 {
		t.Errorf("want an id line for the two messages with a cursor only:\n%s", body)
	}
	last := events[3]
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(last.Data), &st); err != nil || last.Event != "error" ||
		st.Code != int(codes.Unavailable) || st.Message != "service draining" {
		t.Errorf("last event = %+v (%v), want an error event holding UNAVAILABLE", last, err)
	}
}

// TestWatch_dataLines: data with line breaks (CR, LF, CRLF) goes out as several data lines,
// never one split line, and reads back whole.
func TestWatch_dataLines(t *testing.T) {
	t.Parallel()
	indented, err := json.MarshalIndent(map[string]any{"a": []int{1, 2}, "b": "x"}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{string(indented), "one\r\ntwo\rthree\nfour", "", "trailing\n"} {
		frame := string(appendEvent(nil, "id-1", "", []byte(data))) + "\n"
		events, _ := parseSSE(t, frame)
		want := strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n") // EventSource reads LF
		if len(events) != 1 || events[0].Data != want || events[0].ID != "id-1" {
			t.Errorf("appendEvent(%q) = %q, read back as %+v", data, frame, events)
		}
		for _, line := range strings.Split(strings.TrimSuffix(frame, "\n\n"), "\n") {
			if !strings.HasPrefix(line, "data: ") && !strings.HasPrefix(line, "id: ") {
				t.Errorf("appendEvent(%q): line %q is no field", data, line)
			}
		}
	}
	if frame := string(appendEvent(nil, "bad\nid", "", []byte("x"))); strings.Contains(frame, "id:") {
		t.Errorf("an id with a line break must be left out, got %q", frame)
	}
}

// TestWatch_errorBeforeFirstEvent: the usual status and JSON body, as for a unary call.
func TestWatch_errorBeforeFirstEvent(t *testing.T) {
	t.Parallel()
	s := &watchStream{err: status.Error(codes.NotFound, `portfolio 7: not found`)}
	g := newWatchGateway(t, s, Options{})
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test:watch", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/test:watch = %d %q, want 404 application/json", rec.Code, rec.Header().Get("Content-Type"))
	}
	var st struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Code != int(codes.NotFound) {
		t.Errorf("body %q (%v), want a NOT_FOUND status", rec.Body, err)
	}
}

// openWatch starts GET path on srv and returns a reader of its body once the first event
// has arrived.
func openWatch(t *testing.T, srv *httptest.Server, path string, header http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("GET %s: body ended before its first event: %v", path, err)
		}
		if line == "\n" {
			return resp, br
		}
	}
}

// TestWatch_heartbeat: an idle stream gets comment lines, between events, never inside one.
func TestWatch_heartbeat(t *testing.T) {
	t.Parallel()
	s := &watchStream{msgs: []proto.Message{eventsMessage("c1")}}
	g := newWatchGateway(t, s, Options{SSEHeartbeat: 10 * time.Millisecond})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close) // after the bodies openWatch closes
	_, br := openWatch(t, srv, "/v1/test:watch", nil)
	for beats := 0; beats < 3; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		switch line {
		case ": heartbeat\n":
			beats++
			if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
				t.Fatalf("heartbeat followed by %q (%v), want a blank line", blank, err)
			}
		default:
			t.Fatalf("idle stream sent %q, want heartbeats only", line)
		}
	}
}

// TestSSEWriter_heartbeatTimer: the heartbeat timer may fire while the flush that starts it
// still holds the writer (a heartbeat interval shorter than a flush, or a busy machine): it
// must then neither race with the flush for the timer nor find none (a nil timer). The
// gateway built with -race under TestSSE_noLoss (SSE_HEARTBEAT=2ms) reported that race.
func TestSSEWriter_heartbeatTimer(t *testing.T) {
	t.Parallel()
	for range 500 {
		w := newSSEWriter(httptest.NewRecorder(), time.Nanosecond, time.Second)
		for range 3 {
			if err := w.writeEvent("", "", []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		w.close()
	}
}

// TestWatch_drain: Drain ends an open stream at once with an error event SHUTTING_DOWN.
func TestWatch_drain(t *testing.T) {
	t.Parallel()
	s := &watchStream{msgs: []proto.Message{eventsMessage("c1")}}
	g := newWatchGateway(t, s, Options{})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close) // after the bodies openWatch closes
	_, br := openWatch(t, srv, "/v1/test:watch", nil)
	g.Drain()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	events, _ := parseSSE(t, string(rest))
	if len(events) != 1 || events[0].Event != "error" || !strings.Contains(events[0].Data, "SHUTTING_DOWN") {
		t.Errorf("after Drain the stream sent %q, want one error event SHUTTING_DOWN", rest)
	}
	rec := httptest.NewRecorder() // and a new one is refused, as it would outlive the drain
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test:watch", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "SHUTTING_DOWN") {
		t.Errorf("GET /v1/test:watch while draining = %d %s, want 503 SHUTTING_DOWN", rec.Code, rec.Body)
	}
}

// TestWatch_cap: past MaxWatchStreams open streams, 429 GATEWAY_BUSY with Retry-After;
// open streams take no MAX_IN_FLIGHT slot, so short requests still pass.
func TestWatch_cap(t *testing.T) {
	t.Parallel()
	s := &watchStream{msgs: []proto.Message{eventsMessage("c1")}}
	g := newWatchGateway(t, s, Options{MaxWatchStreams: 2, MaxInFlight: 1})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close) // after the bodies openWatch closes
	for range 2 {
		openWatch(t, srv, "/v1/test:watch", nil)
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test:watch", nil))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), "GATEWAY_BUSY") || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("third watch = %d %v %s, want 429 GATEWAY_BUSY with Retry-After", rec.Code, rec.Header(), rec.Body)
	}
	// MAX_IN_FLIGHT is 1 and MAX_QUEUED 0: were a stream holding the slot, this would be 429.
	for range 3 {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/test", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET /v1/test with watch streams open = %d %s, want 200", rec.Code, rec.Body)
		}
	}
}

// TestWatch_clientNeverReads: a client that never reads does not make the gateway pull and
// hold the upstream's messages: it takes one once the previous one is written, the writes
// block once the socket buffers are full, and after WatchWriteTimeout the stream ends. What
// it pulled meanwhile is bounded by those buffers (here far below 64 MiB), not by time.
func TestWatch_clientNeverReads(t *testing.T) {
	t.Parallel()
	big := &stockv1.WatchStockEventsResponse{Cursor: strings.Repeat("c", 64<<10)} // 64 KiB per event
	s := &watchStream{msgs: []proto.Message{big}, endless: true}
	g := newWatchGateway(t, s, Options{WatchWriteTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close) // after the bodies openWatch closes
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /v1/test:watch HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select { // and never read
	case <-s.ended:
	case <-t.Context().Done():
		t.Fatalf("the stream of a client that never reads did not end; %d messages pulled", s.sent.Load())
	}
	if pulled := s.sent.Load() * (64 << 10); pulled > 64<<20 {
		t.Errorf("the gateway pulled %d bytes for a client that never read, want it bounded by the socket buffers", pulled)
	}
	t.Logf("pulled %d messages of 64 KiB before the write timed out", s.sent.Load())
}

// TestWatch_accessToken: on a Watch route access_token becomes the Authorization header and
// leaves the URL; elsewhere it is refused; with a header too, refused.
func TestWatch_accessToken(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	register := func(_ context.Context, mux *runtime.ServeMux, _ grpc.ClientConnInterface) error {
		for _, p := range []string{"/v1/test:watch", "/v1/test"} {
			if err := mux.HandlePath(http.MethodGet, p, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
				seen.Store(r.Header.Get("Authorization") + " " + r.URL.RawQuery + " " + r.RequestURI)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, "{}")
			}); err != nil {
				return err
			}
		}
		return nil
	}
	g, err := New(t.Context(), Options{Upstreams: []Upstream{{Name: "test", Register: register}}, MaxRequestBytes: 1024,
		MaxInFlight: 8, MaxWatchStreams: 8, HealthTimeout: time.Second, OpenAPI: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, target, auth string
		wantCode           int
		wantSeen           string
	}{
		{"watch", "/v1/test:watch?a=1&access_token=s3cr3t%2B1", "", http.StatusOK, "Bearer s3cr3t+1 a=1 /v1/test:watch?a=1"},
		{"watch_header", "/v1/test:watch", "Bearer h", http.StatusOK, "Bearer h  /v1/test:watch"},
		{"watch_encoded_name", "/v1/test:watch?acc%65ss_t%6Fken=s3cr3t", "", http.StatusOK, "Bearer s3cr3t  /v1/test:watch"},
		{"watch_both", "/v1/test:watch?access_token=s3cr3t", "Bearer h", http.StatusBadRequest, ""},
		{"watch_twice", "/v1/test:watch?access_token=s3cr3t&access_token=u", "", http.StatusBadRequest, ""},
		{"not_watch", "/v1/test?access_token=s3cr3t", "", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen.Store("")
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || seen.Load() != tt.wantSeen {
				t.Errorf("GET %s = %d, route saw %q; want %d, %q", tt.target, rec.Code, seen.Load(), tt.wantCode, tt.wantSeen)
			}
			if strings.Contains(rec.Body.String(), "s3cr3t") {
				t.Errorf("the answer echoes the token: %s", rec.Body)
			}
		})
	}
}

// TestWatch_cors: a page of an allowed origin reads a Watch stream (EventSource sends a
// simple GET, no preflight), and a preflight for Last-Event-ID is allowed.
func TestWatch_cors(t *testing.T) {
	t.Parallel()
	s := &watchStream{msgs: []proto.Message{eventsMessage("c1")}, err: status.Error(codes.Unavailable, "end")}
	g := newWatchGateway(t, s, Options{CORSAllowedOrigins: []string{"https://app.example"}})
	req := httptest.NewRequest(http.MethodGet, "/v1/test:watch", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Accept", eventStream)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("cross-origin watch = %d %v, want 200 with Access-Control-Allow-Origin and no credentials", rec.Code, rec.Header())
	}
	pre := httptest.NewRequest(http.MethodOptions, "/v1/test:watch", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", http.MethodGet)
	pre.Header.Set("Access-Control-Request-Headers", "last-event-id")
	rec = httptest.NewRecorder()
	g.ServeHTTP(rec, pre)
	if !strings.Contains(strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "last-event-id") {
		t.Errorf("preflight for Last-Event-ID = %d %v, want it allowed", rec.Code, rec.Header())
	}
}

// TestAdjustWatchRequest: comma-separated lists are split, Last-Event-ID replaces the cursor
// and drops from_oldest.
func TestAdjustWatchRequest(t *testing.T) {
	t.Parallel()
	prices := &stockv1.WatchLatestPricesRequest{Symbols: []string{"AAPL, MSFT", "GOOG", "IBM,"}}
	adjustWatchRequest(prices.ProtoReflect(), "ignored: no cursor field")
	if diff := cmp.Diff([]string{"AAPL", "MSFT", "GOOG", "IBM"}, prices.GetSymbols()); diff != "" {
		t.Errorf("symbols mismatch (-want +got):\n%s", diff)
	}
	events := &stockv1.WatchStockEventsRequest{Cursor: "old", FromOldest: true, Types: []string{"a.B,c.D"}}
	adjustWatchRequest(events.ProtoReflect(), "newer")
	if events.GetCursor() != "newer" || events.GetFromOldest() || len(events.GetTypes()) != 2 {
		t.Errorf("adjusted = %v, want cursor newer, from_oldest false, 2 types", events)
	}
}
