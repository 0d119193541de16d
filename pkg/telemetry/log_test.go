package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// logLine logs one line with ctx through a LogHandler (with a service attribute, as
// pkg/server adds) and returns the fields that tie it to a call.
func logLine(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "stock")
	log.InfoContext(ctx, "finished call")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	got := map[string]string{}
	for _, k := range []string{"service", telemetry.TraceIDField, telemetry.SpanIDField, telemetry.RequestIDField} {
		if v, ok := rec[k].(string); ok {
			got[k] = v
		}
	}
	return got
}

func TestLogHandler(t *testing.T) {
	t.Parallel()
	sampled := sdktrace.NewTracerProvider() // parentbased_always_on, the SDK's default
	t.Cleanup(func() { _ = sampled.Shutdown(context.Background()) })
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	t.Cleanup(func() { _ = unsampled.Shutdown(context.Background()) })

	t.Run("recording_span", func(t *testing.T) {
		t.Parallel()
		ctx := telemetry.WithRequestID(t.Context(), "req-1")
		ctx, span := sampled.Tracer("test").Start(ctx, "GetStock")
		defer span.End()
		sc := span.SpanContext()
		want := map[string]string{"service": "stock", "trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}
		if diff := cmp.Diff(want, logLine(t, ctx)); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("unsampled_span", func(t *testing.T) {
		t.Parallel()
		ctx := telemetry.WithRequestID(t.Context(), "req-2")
		ctx, span := unsampled.Tracer("test").Start(ctx, "GetStock")
		defer span.End()
		want := map[string]string{"service": "stock", "request_id": "req-2"}
		if diff := cmp.Diff(want, logLine(t, ctx)); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("tracing_off", func(t *testing.T) {
		t.Parallel()
		ctx := telemetry.WithRequestID(t.Context(), "req-3")
		want := map[string]string{"service": "stock", "request_id": "req-3"}
		if diff := cmp.Diff(want, logLine(t, ctx)); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("no_call", func(t *testing.T) {
		t.Parallel()
		want := map[string]string{"service": "stock"}
		if diff := cmp.Diff(want, logLine(t, context.Background())); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestRequestIDFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, callers string
		kept          bool
	}{
		{"uuid", "3f2b8c1e-7a4d-4c1b-9e2f-0a1b2c3d4e5f", true},
		{"path_like", "web/checkout:42.1_a", true},
		{"empty", "", false},
		{"space", "a b", false},
		{"newline", "a\nlevel=ERROR", false},
		{"quote", `a"b`, false},
		{"too_long", string(bytes.Repeat([]byte("a"), 129)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := telemetry.RequestIDFrom(tt.callers)
			if tt.kept && got != tt.callers {
				t.Errorf("RequestIDFrom(%q) = %q, want it kept", tt.callers, got)
			}
			if !tt.kept && (got == tt.callers || len(got) != 32) {
				t.Errorf("RequestIDFrom(%q) = %q, want a new 32-digit id", tt.callers, got)
			}
		})
	}
	if a, b := telemetry.NewRequestID(), telemetry.NewRequestID(); a == b {
		t.Errorf("NewRequestID twice = %q, %q, want different ids", a, b)
	}
}
