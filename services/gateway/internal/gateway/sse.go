package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// The Watch routes (GET /v1/prices:watch, /v1/portfolios/{portfolio_id}:watch, ...,
// /monitoring/database:watch) answer server-sent events (text/event-stream, WHATWG HTML
// "Server-sent events"), which a browser reads with EventSource:
//
//   - each stream message is one event, "data: <the message's JSON as the REST API renders
//     it>", preceded by "id: <cursor>" when the message has a cursor field
//     (the events streams' responses); the JSON is one line (protojson, not indented), and would be
//     one data line per line if it ever had several, which EventSource joins back;
//   - a request with Last-Event-ID (EventSource sends the last id it saw when it
//     reconnects) resumes there: the header becomes the request's cursor, replacing a cursor
//     query parameter, since the URL is fixed when the EventSource is made and the header is
//     always the newer position; from_oldest is then dropped;
//   - an error before the first event is the usual HTTP status and JSON body (EventSource
//     then stops); after it, an "event: error" whose data is the google.rpc.Status JSON,
//     then the end of the body (EventSource then reconnects, with Last-Event-ID);
//   - a comment line, ": heartbeat", goes out after every SSE_HEARTBEAT without an event,
//     so that proxies keep an idle stream open; every event is flushed at once;
//   - a repeated query parameter also takes a comma-separated list (?symbols=AAPL,MSFT);
//   - the bearer token may come as an access_token query parameter (RFC 6750 2.3), since
//     EventSource cannot set Authorization: it is taken out of the URL before anything logs
//     or traces the request, and sent to the service as the Authorization header. Other
//     routes refuse it (400): a token in a URL lands in proxies' logs and browser history.
//
// Watch streams run outside MAX_IN_FLIGHT (they last as long as their client stays), under
// a cap of their own (MAX_WATCH_STREAMS, past it 429 GATEWAY_BUSY), and end at once when a
// drain begins, with an "event: error" SHUTTING_DOWN: their clients reconnect to another
// replica instead of holding this one until the end of the drain.
//
// Memory per stream is bounded: the gateway reads the next message from the service only
// once the previous event is written, so it holds at most one message (at most the gRPC
// client's receive limit, 4 MiB by default) and the HTTP server's write buffers (a few KiB),
// plus what gRPC flow control lets the service send ahead (the stream's window); a service's
// latest-value stream conflates behind that window instead of queueing. A client that stops
// reading blocks the write; after watchWriteTimeout the write fails and the stream ends,
// freeing all of it.

// eventStream is the media type of server-sent events.
const eventStream = "text/event-stream"

// watchVerb is the custom method of every Watch route ("/v1/prices:watch").
const watchVerb = "watch"

// accessTokenParam is the query parameter of a bearer token (RFC 6750 2.3).
const accessTokenParam = "access_token"

// defaultMaxWatchStreams is Options.MaxWatchStreams when zero (MAX_WATCH_STREAMS's default).
const defaultMaxWatchStreams = 10000

// defaultWatchWriteTimeout bounds one write to a Watch stream's client when
// Options.WatchWriteTimeout is zero.
const defaultWatchWriteTimeout = 30 * time.Second

// isWatch reports whether ctx, a request's or derived from one, is of a Watch route.
func isWatch(ctx context.Context) bool {
	p, ok := runtime.HTTPPattern(ctx)
	return ok && p.Verb() == watchVerb
}

// watchOutputs are the response messages of the Watch RPCs (server streams named Watch*)
// of every pgfleet service linked into the gateway: the marshaler renders a stream message
// of these types as an event.
var watchOutputs = sync.OnceValue(func() map[protoreflect.FullName]bool {
	outputs := map[protoreflect.FullName]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "pgfleet.") {
			return true
		}
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				if m := methods.Get(j); IsWatchMethod(m) {
					outputs[m.Output().FullName()] = true
				}
			}
		}
		return true
	})
	return outputs
})

// IsWatchMethod reports whether m is a Watch RPC: a server stream (and not a client stream)
// whose name starts with Watch. Its REST route is GET ...:watch and answers server-sent events.
func IsWatchMethod(m protoreflect.MethodDescriptor) bool {
	return m.IsStreamingServer() && !m.IsStreamingClient() && strings.HasPrefix(string(m.Name()), "Watch")
}

// watchResult returns the message of a stream chunk ({"result": message}, as
// ForwardResponseStream hands it to the marshaler) of a Watch RPC, or nil.
func watchResult(v any) proto.Message {
	chunk, ok := v.(map[string]any)
	if !ok || len(chunk) != 1 {
		return nil
	}
	m, ok := chunk["result"].(proto.Message)
	if !ok || !watchOutputs()[m.ProtoReflect().Descriptor().FullName()] {
		return nil
	}
	return m
}

// cursorOf returns m's cursor field, "" if it has none.
func cursorOf(m proto.Message) string {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("cursor")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated {
		return ""
	}
	return r.Get(fd).String()
}

// appendEvent appends one event's fields to b: "id:" if id is set (and valid: an id with a
// line break or NUL is left out, as EventSource would ignore it), "event:" if event is set,
// and one "data:" line per line of data (CR, LF or CRLF end a line in an event stream, so
// a line break inside data would otherwise end the field). The blank line that dispatches
// the event is the caller's: the stream's delimiter, or one more "\n".
func appendEvent(b []byte, id, event string, data []byte) []byte {
	if id != "" && !strings.ContainsAny(id, "\r\n\x00") {
		b = append(append(append(b, "id: "...), id...), '\n')
	}
	if event != "" {
		b = append(append(append(b, "event: "...), event...), '\n')
	}
	for {
		i := indexLineBreak(data)
		if i < 0 {
			return append(append(append(b, "data: "...), data...), '\n')
		}
		b = append(append(append(b, "data: "...), data[:i]...), '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

func indexLineBreak(b []byte) int {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return i
		}
	}
	return -1
}

// heartbeat is the comment that keeps an idle stream open; EventSource ignores it.
const heartbeat = ": heartbeat\n\n"

// sseWriter is the ResponseWriter of a Watch route. It sends a heartbeat after every
// interval without an event (from a timer: no goroutine while the stream is idle), never
// inside an event (only when everything written has been flushed: ForwardResponseStream
// writes an event, its delimiter, then flushes), and bounds every write with a deadline.
type sseWriter struct {
	http.ResponseWriter
	rc             *http.ResponseController
	every, timeout time.Duration

	beat *time.Timer // nil without heartbeats; set once, by newSSEWriter

	mu      sync.Mutex
	pending bool // written since the last flush
	closed  bool // the handler returned: nothing may write any more
}

func newSSEWriter(w http.ResponseWriter, every, timeout time.Duration) *sseWriter {
	sw := &sseWriter{ResponseWriter: w, rc: http.NewResponseController(w), every: every, timeout: timeout}
	if every > 0 {
		// Made here, stopped, and never replaced: the timer may fire before the flush that
		// starts it returns, and sendHeartbeat then resets it without holding mu.
		sw.beat = time.AfterFunc(time.Hour, sw.sendHeartbeat)
		sw.beat.Stop()
	}
	return sw
}

func (w *sseWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = true
	w.deadline()
	return w.ResponseWriter.Write(b)
}

// FlushError flushes (http.ResponseController calls it) and (re)starts the heartbeats: the
// first flush follows the first event, so an error before it still gets an HTTP status.
func (w *sseWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline()
	err := w.rc.Flush()
	w.pending = false
	if err == nil && !w.closed && w.beat != nil {
		w.beat.Reset(w.every)
	}
	return err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *sseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadline bounds the write about to happen: a client that stopped reading ends its stream.
func (w *sseWriter) deadline() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) // unsupported (a test recorder): no bound needed
}

// sendHeartbeat runs on the timer. A write in progress (the lock taken) keeps the stream
// alive itself; one that blocks is bounded by its deadline.
func (w *sseWriter) sendHeartbeat() {
	if !w.mu.TryLock() {
		w.beat.Reset(w.every)
		return
	}
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if !w.pending {
		w.deadline()
		if _, err := io.WriteString(w.ResponseWriter, heartbeat); err != nil || w.rc.Flush() != nil {
			return // the stream's next write fails too and ends it
		}
	}
	w.beat.Reset(w.every)
}

// close stops the heartbeats; the handler is returning.
func (w *sseWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.beat != nil {
		w.beat.Stop()
	}
}

// writeEvent writes one whole event and flushes it.
func (w *sseWriter) writeEvent(id, event string, data []byte) error {
	if _, err := w.Write(appendEvent(nil, id, event, data)); err != nil {
		return err
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		return err
	}
	return w.FlushError()
}

// watches counts the open Watch streams against their cap, and ends them all when a
// drain begins.
type watches struct {
	open    atomic.Int64
	max     int64
	refused atomic.Int64

	// drain is cancelled, with cause errShuttingDown, when the gateway starts draining.
	drain    context.Context
	endDrain context.CancelCauseFunc
}

type connReleaseKey struct{}

// WithConnRelease is for http.Server.ConnContext: release takes the connection out of the
// server's connection limit (MAX_CONNECTIONS), which a Watch stream does as it starts: a
// connection held by a stream for hours must not keep short requests waiting to be accepted.
func WithConnRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, connReleaseKey{}, release)
}

type accessTokenKey struct{}
type lastEventIDKey struct{}

// takeAccessToken takes every access_token query parameter out of the request's URL before
// anything sees it (the tracing middleware records the query), into the request's context.
// It is the gateway's outermost handler.
func takeAccessToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		var kept, tokens []string
		for _, part := range strings.Split(r.URL.RawQuery, "&") {
			k, v, _ := strings.Cut(part, "=")
			if key, err := url.QueryUnescape(k); err == nil && key == accessTokenParam {
				tok, err := url.QueryUnescape(v)
				if err != nil {
					tok = "" // refused below as malformed; the raw text is kept nowhere
				}
				tokens = append(tokens, tok)
				continue
			}
			kept = append(kept, part)
		}
		if tokens == nil {
			next.ServeHTTP(w, r)
			return
		}
		u := *r.URL
		u.RawQuery = strings.Join(kept, "&")
		r2 := r.WithContext(context.WithValue(r.Context(), accessTokenKey{}, tokens))
		r2.URL = &u
		r2.RequestURI = u.RequestURI()
		next.ServeHTTP(w, r2)
	})
}

// admitWatch is a grpc-gateway middleware. On a Watch route it turns an access_token into
// the Authorization header, admits the stream under MAX_WATCH_STREAMS, ends it when a drain
// begins, and hands the route an sseWriter; on any other route it refuses an access_token.
func (g *Gateway) admitWatch(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		tokens, hasToken := r.Context().Value(accessTokenKey{}).([]string)
		if !isWatch(r.Context()) {
			if hasToken {
				g.writeStatus(w, apierr.New(apierr.MalformedRequest, "the access_token query parameter is taken "+
					"by the Watch routes (…:watch) only, for EventSource, which cannot send headers; send the token "+
					"in the Authorization header", nil).GRPCStatus(), http.StatusBadRequest)
				return
			}
			next(w, r, params)
			return
		}
		if hasToken {
			if len(tokens) != 1 || tokens[0] == "" || r.Header.Get("Authorization") != "" {
				g.writeStatus(w, apierr.New(apierr.MalformedRequest, "send one bearer token, either in the "+
					"Authorization header or as one access_token query parameter (RFC 6750)", nil).GRPCStatus(), http.StatusBadRequest)
				return
			}
			r.Header = r.Header.Clone()
			r.Header.Set("Authorization", "Bearer "+tokens[0])
		}
		if st, draining := shuttingDown(g.watches.drain); draining { // it would outlive the drain
			g.writeStatus(w, st, http.StatusServiceUnavailable)
			return
		}
		if n := g.watches.open.Add(1); n > g.watches.max {
			g.watches.open.Add(-1)
			g.watches.refused.Add(1)
			w.Header().Set("Retry-After", "1")
			g.writeStatus(w, apierr.Newf(apierr.GatewayBusy, map[string]string{"limit": strconv.FormatInt(g.watches.max, 10)},
				"the gateway is serving %d watch streams, as many as it takes; retry later or on another replica",
				g.watches.max).GRPCStatus(), http.StatusTooManyRequests)
			return
		}
		defer g.watches.open.Add(-1)
		if release, ok := r.Context().Value(connReleaseKey{}).(func()); ok {
			// The stream's connection leaves MAX_CONNECTIONS, counted by MAX_WATCH_STREAMS
			// instead; over HTTP/1 it closes when the stream ends, so that an uncounted
			// connection does not linger (HTTP/2 would take Connection: close for a GOAWAY of
			// every stream it carries).
			release()
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
		}

		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		stop := context.AfterFunc(g.watches.drain, func() { cancel(errShuttingDown) })
		defer stop()
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			ctx = context.WithValue(ctx, lastEventIDKey{}, id)
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
		sw := newSSEWriter(w, g.opts.SSEHeartbeat, g.opts.WatchWriteTimeout)
		defer sw.close()
		next(sw, r.WithContext(ctx), params)
	}
}

// watchRequests is an upstream connection that adjusts a Watch call's request as the
// HTTP request means it: Last-Event-ID becomes the cursor; a comma-separated value of a
// repeated string field is split.
type watchRequests struct{ grpc.ClientConnInterface }

func (c watchRequests) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil || desc.ClientStreams || !isWatch(ctx) {
		return cs, err
	}
	id, _ := ctx.Value(lastEventIDKey{}).(string)
	return &watchRequest{ClientStream: cs, lastEventID: id}, nil
}

type watchRequest struct {
	grpc.ClientStream
	lastEventID string
}

func (s *watchRequest) SendMsg(m any) error {
	if msg, ok := m.(proto.Message); ok {
		adjustWatchRequest(msg.ProtoReflect(), s.lastEventID)
	}
	return s.ClientStream.SendMsg(m)
}

// adjustWatchRequest splits the comma-separated values of m's repeated string fields
// (spaces around a value trimmed, empty values dropped) and, if lastEventID is set, makes it
// m's cursor and clears from_oldest.
func adjustWatchRequest(m protoreflect.Message, lastEventID string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !fd.IsList() || fd.Kind() != protoreflect.StringKind || !m.Has(fd) {
			continue
		}
		old := m.Get(fd).List()
		split := false
		for j := range old.Len() {
			split = split || strings.Contains(old.Get(j).String(), ",")
		}
		if !split {
			continue
		}
		list := m.NewField(fd).List()
		for j := range old.Len() {
			for _, v := range strings.Split(old.Get(j).String(), ",") {
				if v = strings.TrimSpace(v); v != "" {
					list.Append(protoreflect.ValueOfString(v))
				}
			}
		}
		m.Set(fd, protoreflect.ValueOfList(list))
	}
	if lastEventID == "" {
		return
	}
	if fd := fields.ByName("cursor"); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
		m.Set(fd, protoreflect.ValueOfString(lastEventID))
		if fo := fields.ByName("from_oldest"); fo != nil && fo.Kind() == protoreflect.BoolKind && !fo.IsList() {
			m.Clear(fo)
		}
	}
}

// writeStreamError ends a Watch stream that failed after its first event with an
// "event: error" holding st as JSON.
func (g *Gateway) writeStreamError(w http.ResponseWriter, st *status.Status) {
	sw := sseOf(w)
	if sw == nil {
		return
	}
	body, err := marshaler.Marshal(st.Proto())
	if err != nil {
		body = []byte(fallbackError)
	}
	if err := sw.writeEvent("", "error", body); err != nil && !errors.Is(err, context.Canceled) {
		g.log.Debug("could not send a watch stream's error event", "err", err)
	}
}

func (w *watches) openGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgfleet_gateway_watch_streams_open",
		Help: "Watch streams (server-sent events) open; at most MAX_WATCH_STREAMS.",
	}, func() float64 { return float64(w.open.Load()) })
}

func (w *watches) refusedCounter() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pgfleet_gateway_watch_streams_refused_total",
		Help: "Watch streams refused 429 GATEWAY_BUSY: MAX_WATCH_STREAMS open already.",
	}, func() float64 { return float64(w.refused.Load()) })
}
