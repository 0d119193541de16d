package gateway

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// ndjson is the media type of server streams: one JSON document per line.
const ndjson = "application/x-ndjson"

// A server stream (the NDJSON price export) answers like a unary call until its first
// message: an error before it gets its HTTP status and the plain google.rpc.Status body,
// from handleError like every other error, and a stream that ends without a message is a
// 200 with an empty NDJSON body. After the first message the status line is gone, so an
// error ends the body with an {"error": {...}} line. grpc-gateway's ForwardResponseStream
// alone would wrap an early error as {"error": ...} and send an empty stream with no
// Content-Type: streamWriter, handleStreamError and streamStart adjust it.

type streamWriterKey struct{}

// streamWriter is the ResponseWriter every mux route writes to. Once handleStreamError
// has answered a stream that failed before its first message, it drops what
// ForwardResponseStream still writes (a second status, the {"error": ...} line).
// A handler writes from one goroutine, so no lock.
//
// Once EndRequests has ended the request (shutdown), it also drops the result lines still
// buffered from the service, whole lines only, so that the {"error": ...} line goes out at
// once instead of after them: a client that had stopped reading would otherwise take more
// than the drain's last seconds to get to it, and see a cut body.
type streamWriter struct {
	http.ResponseWriter
	r        *http.Request
	started  bool // some body went out
	answered bool // handleStreamError wrote the whole answer
	lineOpen bool // the last write did not end a line
	ending   bool // handleStreamError is writing the final {"error": ...} line
}

func (w *streamWriter) WriteHeader(code int) {
	if !w.answered {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *streamWriter) Write(b []byte) (int, error) {
	if w.answered || isArrowAnswer(w) && !arrowWrite(b) {
		return len(b), nil
	}
	if w.started && !w.lineOpen && !w.ending {
		if _, ended := shuttingDown(w.r.Context()); ended {
			return len(b), nil
		}
	}
	w.started = true
	n, err := w.ResponseWriter.Write(b)
	if n > 0 {
		w.lineOpen = b[n-1] != '\n'
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer's Flush.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// trackStreams is a grpc-gateway middleware: it hands each route a streamWriter that
// handleStreamError can find in the request's context.
func trackStreams(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		sw := &streamWriter{ResponseWriter: w}
		sw.r = r.WithContext(context.WithValue(r.Context(), streamWriterKey{}, sw))
		next(sw, sw.r, params)
	}
}

// handleStreamError is called by ForwardResponseStream with the error that ends a
// stream. Before the first message it answers the request as handleError answers a
// unary call; either way it returns the status for the {"error": ...} line, with exactly
// one ErrorInfo like every error answer (a stream cut by gRPC itself has none of its own).
// A stream EndRequests cut at shutdown ends with SHUTTING_DOWN, not with the cancellation
// its call to the service saw.
func (g *Gateway) handleStreamError(ctx context.Context, err error) *status.Status {
	if st, ok := shuttingDown(ctx); ok {
		err = st.Err()
	}
	sw, _ := ctx.Value(streamWriterKey{}).(*streamWriter)
	if sw != nil {
		sw.ending = true // what follows is the {"error": ...} line
	}
	st, _ := apierr.Ensure(status.Convert(err))
	switch {
	case sw == nil || sw.answered:
	case !sw.started:
		g.handleError(ctx, g.mux, marshaler, sw.ResponseWriter, sw.r, err)
		sw.answered = true
	case isWatch(ctx): // an "event: error", not an {"error": ...} line
		g.writeStreamError(sw.ResponseWriter, st)
		sw.answered = true
	}
	return st
}

// streamStart is a forward-response option: ForwardResponseStream calls it with a nil
// message before reading the stream (unary answers always come with their message). It
// declares the NDJSON media type (server-sent events on a Watch route) at once, so that a stream that ends empty has it too, and
// gives the request's in-flight slot back (inflight.go): a stream may last minutes.
func streamStart(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
	if m == nil {
		if isWatch(ctx) {
			w.Header().Set("Content-Type", eventStream)
		} else {
			w.Header().Set("Content-Type", ndjson)
		}
		releaseSlot(ctx)
	}
	return nil
}
