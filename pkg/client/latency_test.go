package client_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/metricstest"
)

// TestDial_callDuration calls a real peer and reads pgfleet_client_call_duration_seconds
// from a real scrape: unary calls by code, a stream its caller abandons, the fleet's buckets.
func TestDial_callDuration(t *testing.T) {
	t.Parallel()
	addr, _ := serve(t, "127.0.0.1:0", &peer{handle: func(_ context.Context, n int64) error {
		if n == 2 {
			return status.Error(codes.NotFound, "no such stock")
		}
		return nil
	}})
	reg := prometheus.NewRegistry()
	c := dial(t, testConfig(addr), reg)
	for i, want := range []codes.Code{codes.OK, codes.NotFound} {
		if err := call(t.Context(), c); status.Code(err) != want {
			t.Fatalf("call %d: got %v, want code %v", i, err, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	s, err := healthpb.NewHealthClient(c).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("recv: %v", err)
	}
	cancel() // the caller walks away without reading to the end

	// A stream read to its end: a reflection request, then the server's io.EOF.
	refl, err := reflectionpb.NewServerReflectionClient(c).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := refl.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("reflection send: %v", err)
	}
	if _, err := refl.Recv(); err != nil {
		t.Fatalf("reflection recv: %v", err)
	}
	if err := refl.CloseSend(); err != nil {
		t.Fatalf("reflection close: %v", err)
	}
	if _, err := refl.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("reflection end = %v, want io.EOF", err)
	}

	metricsURL := metricstest.Serve(t, reg)
	const method = `method="pgfleet.ops.v1.DatabaseMonitor/GetDatabaseStatus"`
	for _, want := range []string{
		`pgfleet_client_call_duration_seconds_count{code="OK",` + method + `,peer="stock"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="NotFound",` + method + `,peer="stock"} 1`,
		`pgfleet_client_call_duration_seconds_bucket{code="OK",` + method + `,peer="stock",le="0.0001"} `,
		`pgfleet_client_call_duration_seconds_bucket{code="OK",` + method + `,peer="stock",le="10"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="Canceled",method="grpc.health.v1.Health/Watch",peer="stock"} 1`,
		`pgfleet_client_call_duration_seconds_count{code="OK",method="grpc.reflection.v1.ServerReflection/ServerReflectionInfo",peer="stock"} 1`,
	} {
		waitForLine(t, metricsURL, want)
	}
}

// waitForLine scrapes url until a line starts with want: a stream's end is recorded by a
// goroutine of its own, after the caller's cancel returns.
func waitForLine(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if body = metricstest.Scrape(t, url); metricstest.HasLine(body, want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	metricstest.WantLine(t, body, want)
}
