package telemetrytest_test

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
	"github.com/pgfleet/pgfleet/pkg/telemetry/telemetrytest"
)

// TestSetupExports: with an endpoint, Setup installs a provider whose spans reach the
// collector, named by service and version, once shutdown flushes them.
func TestSetupExports(t *testing.T) {
	c, err := telemetrytest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", c.Endpoint())
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	shutdown, err := telemetry.Setup(t.Context(), "stock", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if !telemetry.Enabled() {
		t.Fatal("Enabled() = false with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := otel.Tracer("test").Start(t.Context(), "GetStock")
	traceID := span.SpanContext().TraceID().String()
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	spans := c.Spans()
	if len(spans) != 1 {
		t.Fatalf("collector got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Service != "pgfleet-stock" || s.GetName() != "GetStock" || s.TraceID() != traceID {
		t.Errorf("span = %s %q trace %s, want pgfleet-stock \"GetStock\" trace %s", s.Service, s.GetName(), s.TraceID(), traceID)
	}
	if c.Count() != 1 {
		t.Errorf("Count() = %d, want 1", c.Count())
	}
	if want := buildinfo.Get().Version; s.Version != want {
		t.Errorf("service.version = %q, want %q", s.Version, want)
	}
}
