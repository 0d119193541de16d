package telemetry_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

func TestConfigured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing_set", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, true},
		{"traces_endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317"}, true},
		{"sdk_disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{"sdk_not_disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "false"}, true},
		{"exporter_none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"}, false},
		{"sampler_alone", map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := telemetry.Configured(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Configured(%v) = %t, want %t", tt.env, got, tt.want)
			}
		})
	}
}

// TestSetupOff: without an endpoint Setup creates no exporter and installs nothing, and
// every helper leaves its layer uninstrumented. (Setup with an endpoint is tested in
// telemetrytest, in a binary of its own, since it installs a global provider.)
func TestSetupOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	before := otel.GetTracerProvider()
	shutdown, err := telemetry.Setup(t.Context(), "stock", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if telemetry.Enabled() {
		t.Error("Enabled() = true without an endpoint")
	}
	if otel.GetTracerProvider() != before {
		t.Errorf("Setup installed a tracer provider (%T) without an endpoint", otel.GetTracerProvider())
	}
	if h := telemetry.ServerHandler(); h != nil {
		t.Errorf("ServerHandler() = %T, want nil", h)
	}
	if opts := telemetry.ClientDialOptions(); len(opts) != 0 {
		t.Errorf("ClientDialOptions() = %d options, want none", len(opts))
	}
	if tr := telemetry.PgxTracer(); tr != nil {
		t.Errorf("PgxTracer() = %T, want nil", tr)
	}
	if rt := telemetry.HTTPTransport(nil); rt != http.DefaultTransport {
		t.Errorf("HTTPTransport(nil) = %T, want http.DefaultTransport", rt)
	}
	var h http.Handler = plainHandler{}
	if got := telemetry.HTTPHandler(h, "gateway"); got != h {
		t.Errorf("HTTPHandler(h) = %T, want h unwrapped", got)
	}
}

type plainHandler struct{}

func (plainHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}
