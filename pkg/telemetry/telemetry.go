// Package telemetry turns OpenTelemetry tracing on for a pgfleet binary when the standard
// OTEL_* variables ask for it, and gives every layer (gRPC server and clients, the gateway's
// HTTP handler, pgx pools, the evaluator's HTTP client) its instrumentation from one place,
// so that all of it is off together, at no cost, when tracing is not configured. It also
// carries request ids and puts trace and request ids on log lines (log.go, requestid.go).
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/exaring/otelpgx"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
)

// enabled is set once Setup has installed a tracer provider; the Server*, Client*, HTTP*
// and Pgx* helpers add instrumentation only then.
var enabled atomic.Bool

// Enabled reports whether Setup turned tracing on in this process.
func Enabled() bool { return enabled.Load() }

// Configured reports whether getenv asks for tracing: an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none turns it off.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs a global tracer provider exporting over OTLP/gRPC, when Configured says so:
// otlptracegrpc reads OTEL_EXPORTER_OTLP_* (endpoint, headers, TLS, timeout) itself, the SDK
// reads the sampler from OTEL_TRACES_SAMPLER and _ARG (default parentbased_always_on) and
// batching from OTEL_BSP_*. service.name is OTEL_SERVICE_NAME, else "pgfleet-"+service;
// service.version comes from pkg/buildinfo. Propagation is W3C tracecontext and baggage.
//
// Otherwise it installs nothing and adds no instrumentation anywhere. shutdown flushes the
// spans still buffered; call it once the service has drained.
func Setup(ctx context.Context, service string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !Configured(os.Getenv) {
		return noop, nil
	}
	exp, err := otlptracegrpc.New(ctx) // connects lazily: a collector down at start costs nothing
	if err != nil {
		return noop, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	name := cmp.Or(os.Getenv("OTEL_SERVICE_NAME"), "pgfleet-"+service)
	// The SDK merges OTEL_RESOURCE_ATTRIBUTES under these.
	res := resource.NewSchemaless(
		attribute.String("service.name", name),
		attribute.String("service.version", buildinfo.Get().Version),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", "err", err) // an unreachable collector, a refused export
	}))
	enabled.Store(true)
	log.Info("tracing on", "service_name", name, "endpoint",
		cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")),
		"sampler", cmp.Or(os.Getenv("OTEL_TRACES_SAMPLER"), "parentbased_always_on"),
		"sampler_arg", os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	return func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("telemetry: flush spans: %w", err)
		}
		return nil
	}, nil
}

// ServerHandler returns the gRPC server's stats handler that starts a server span per call
// from the caller's traceparent, or nil when tracing is off. Health checks (probes every few
// seconds) make no span.
func ServerHandler() stats.Handler {
	if !Enabled() {
		return nil
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))
}

// ClientDialOptions returns what a gRPC client needs to start a client span per call and send
// its trace context to the peer; none when tracing is off.
func ClientDialOptions() []grpc.DialOption {
	if !Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler())}
}

// HTTPHandler wraps h in a server span per request, continuing a trace whose traceparent
// came with the request (a browser's, say); h unchanged when tracing is off. The span is
// named by method until a router renames it by route (see SetRoute).
func HTTPHandler(h http.Handler, operation string) http.Handler {
	if !Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, operation, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method
	}))
}

// SetRoute names the request's server span "METHOD route" and records http.route, once a
// router has matched route (a pattern, not the path, so that names stay few).
func SetRoute(ctx context.Context, method, route string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(method + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
}

// HTTPTransport wraps rt (nil: http.DefaultTransport) in a client span per request that
// sends the trace context along; rt unchanged when tracing is off.
func HTTPTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if !Enabled() {
		return rt
	}
	return otelhttp.NewTransport(rt)
}

// PgxTracer returns a pgx tracer that makes a span per query, named by its SQL operation
// (SELECT, INSERT...) and holding the statement without its arguments; nil when tracing is
// off. Queries outside a traced call (the pool monitor's pings) make no span.
func PgxTracer() pgx.QueryTracer {
	if !Enabled() {
		return nil
	}
	return otelpgx.NewTracer()
}

// Event adds an event to the span in ctx, if it records: retries, breaker decisions, lock
// waits. Callers build attrs only when IsRecording(ctx), so that untraced calls pay nothing.
func Event(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	trace.SpanFromContext(ctx).AddEvent(name, trace.WithAttributes(attrs...))
}

// IsRecording reports whether ctx holds a span that records events.
func IsRecording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }
