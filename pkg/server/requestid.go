package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// requestIDUnary puts the caller's x-request-id (a peer's or the gateway's), or a new one,
// in the call's context: logs carry it when the call has no recording span, and pkg/client
// sends it on to the peers the call reaches.
func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(withRequestID(ctx), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &ctxStream{ServerStream: ss, ctx: withRequestID(ss.Context())})
}

func withRequestID(ctx context.Context) context.Context {
	var callers string
	if v := metadata.ValueFromIncomingContext(ctx, telemetry.RequestIDKey); len(v) > 0 {
		callers = v[0]
	}
	return telemetry.WithRequestID(ctx, telemetry.RequestIDFrom(callers))
}

// exemplarFromContext labels a latency sample with the trace id of a sampled call.
func exemplarFromContext(ctx context.Context) prometheus.Labels {
	if !telemetry.Enabled() {
		return nil
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return prometheus.Labels{telemetry.TraceIDField: sc.TraceID().String()}
	}
	return nil
}
