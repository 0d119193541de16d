package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log fields that tie a line to its call.
const (
	TraceIDField   = "trace_id"
	SpanIDField    = "span_id"
	RequestIDField = "request_id"
)

// LogHandler adds to each record logged with a context the call it belongs to: trace_id and
// span_id when the context holds a recording span (tracing on and the call sampled), else
// request_id when it holds one. Lines logged without a context get neither.
type LogHandler struct{ next slog.Handler }

// NewLogHandler wraps next.
func NewLogHandler(next slog.Handler) *LogHandler { return &LogHandler{next: next} }

// Enabled reports whether next logs at level.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the ids and passes r on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() && trace.SpanFromContext(ctx).IsRecording() {
			r.AddAttrs(slog.String(TraceIDField, sc.TraceID().String()), slog.String(SpanIDField, sc.SpanID().String()))
		} else if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String(RequestIDField, id))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a LogHandler around next.WithAttrs.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a LogHandler around next.WithGroup.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{next: h.next.WithGroup(name)}
}
