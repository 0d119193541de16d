package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// requestID gives every request an id: the client's X-Request-Id if valid, else a new one.
// It is returned in X-Request-Id, logged on the request's lines when it has no recording span,
// and sent to the services (pkg/client), whose lines carry it too. At LOG_LEVEL=debug each
// request gets an access line.
func (g *Gateway) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := telemetry.RequestIDFrom(r.Header.Get(telemetry.RequestIDHeader))
		w.Header().Set(telemetry.RequestIDHeader, id)
		ctx := telemetry.WithRequestID(r.Context(), id)
		r = r.WithContext(ctx)
		if !g.log.Enabled(ctx, slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r)
		g.log.DebugContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "code", rw.code,
			"time_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

// traceRoute is a grpc-gateway middleware: it names the request's span by the route matched.
func traceRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			telemetry.SetRoute(r.Context(), r.Method, p.String())
		}
		next(w, r, params)
	}
}

// observe records v, with the trace id as exemplar when the request was sampled.
func observe(ctx context.Context, o prometheus.Observer, v float64) {
	if !telemetry.Enabled() { // a context lookup saved per request
		o.Observe(v)
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if e, ok := o.(prometheus.ExemplarObserver); ok {
			e.ObserveWithExemplar(v, prometheus.Labels{telemetry.TraceIDField: sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}
