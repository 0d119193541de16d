package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/pkg/latency"
	"github.com/pgfleet/pgfleet/pkg/server"
)

// monitor is a DatabaseMonitor whose behaviour each test chooses.
type monitor struct {
	opsv1.UnimplementedDatabaseMonitorServer
	handle func(ctx context.Context) error
}

func (m *monitor) GetDatabaseStatus(ctx context.Context, _ *opsv1.GetDatabaseStatusRequest) (*opsv1.GetDatabaseStatusResponse, error) {
	if m.handle != nil {
		if err := m.handle(ctx); err != nil {
			return nil, err
		}
	}
	return &opsv1.GetDatabaseStatusResponse{}, nil
}

// logBuffer collects JSON log lines written from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the records logged so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// newServer builds a server on loopback ports with handle behind DatabaseMonitor. Fields of
// opts left empty get test values; the returned buffer holds its logs.
func newServer(t *testing.T, opts server.Options, handle func(context.Context) error) (*server.Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts.Name = "test"
	opts.GRPCAddr = "127.0.0.1:0"
	opts.MetricsAddr = "127.0.0.1:0"
	opts.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	opsv1.RegisterDatabaseMonitorServer(srv, &monitor{handle: handle})
	return srv, logs
}

// run runs srv until the test ends, and fails the test if Run does not return nil then.
func run(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// start is newServer then run, for tests that need nothing in between.
func start(t *testing.T, opts server.Options, handle func(context.Context) error) (*server.Server, *logBuffer) {
	t.Helper()
	srv, logs := newServer(t, opts, handle)
	run(t, srv)
	return srv, logs
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// counter sums the counters called name whose labels include labels.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && have[k] == v
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func getStatus(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := opsv1.NewDatabaseMonitorClient(conn).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{})
	return err
}

func TestNew_busyPort(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })

	tests := []struct {
		name string
		opts server.Options
	}{
		{"grpc", server.Options{GRPCAddr: busy.Addr().String(), MetricsAddr: "127.0.0.1:0"}},
		{"metrics", server.Options{GRPCAddr: "127.0.0.1:0", MetricsAddr: busy.Addr().String()}},
		{"missing_address", server.Options{GRPCAddr: "127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := server.New(tt.opts); err == nil {
				t.Errorf("New(%+v) = nil error, want one", tt.opts)
			}
		})
	}
}

func TestServer_reflection(t *testing.T) {
	t.Parallel()
	srv, _ := start(t, server.Options{}, nil)
	conn := dial(t, srv.GRPCAddr())
	want := []string{
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection",
		"pgfleet.ops.v1.DatabaseMonitor",
	}

	tests := []struct {
		name string
		list func(ctx context.Context) ([]string, error)
	}{
		{"v1", func(ctx context.Context) ([]string, error) {
			stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err != nil {
				return nil, err
			}
			err = stream.Send(&reflectionv1.ServerReflectionRequest{
				MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
			})
			if err != nil {
				return nil, err
			}
			resp, err := stream.Recv()
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			return names, err
		}},
		// v1alpha is deprecated but still what many grpcurl builds ask for, so it stays served.
		//nolint:staticcheck // exercising the deprecated v1alpha API on purpose
		{"v1alpha", func(ctx context.Context) ([]string, error) {
			stream, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
			if err != nil {
				return nil, err
			}
			err = stream.Send(&reflectionv1alpha.ServerReflectionRequest{
				MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{},
			})
			if err != nil {
				return nil, err
			}
			resp, err := stream.Recv()
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			return names, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.list(t.Context())
			if err != nil {
				t.Fatalf("ListServices: %v", err)
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("services mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServer_health(t *testing.T) {
	t.Parallel()
	srv, _ := start(t, server.Options{}, nil)
	resp, err := healthpb.NewHealthClient(dial(t, srv.GRPCAddr())).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Check(\"\") = %v, want SERVING", got)
	}
}

func TestServer_metrics(t *testing.T) {
	t.Parallel()
	srv, _ := start(t, server.Options{}, nil)
	if err := getStatus(t.Context(), dial(t, srv.GRPCAddr())); err != nil {
		t.Fatalf("GetDatabaseStatus: %v", err)
	}
	code, body := httpGet(t, "http://"+srv.MetricsAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", code)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="GetDatabaseStatus",grpc_service="pgfleet.ops.v1.DatabaseMonitor",grpc_type="unary"} 1`,
		// InitializeMetrics: series exist before the first call.
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 0`,
		`grpc_server_handling_seconds_bucket{`,
		"pgfleet_grpc_panics_total 0",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	lines := strings.Split(body, "\n")
	// The fleet's buckets resolve a GetStock's 0.2 ms: the one call falls in each bucket up from
	// wherever it landed, so every boundary is there and the last ones hold it.
	const series = `grpc_method="GetDatabaseStatus",grpc_service="pgfleet.ops.v1.DatabaseMonitor",grpc_type="unary"`
	for _, le := range append(latency.Buckets, math.Inf(1)) {
		prefix := fmt.Sprintf("grpc_server_handling_seconds_bucket{%s,le=%q} ", series, formatLE(le))
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("GET /metrics lacks the bucket %q", prefix)
		}
	}
	if want := fmt.Sprintf("grpc_server_handling_seconds_bucket{%s,le=\"10\"} 1", series); !slices.Contains(lines, want) {
		t.Errorf("GET /metrics lacks %q", want)
	}
	bi := buildinfo.Get()
	want := fmt.Sprintf("pgfleet_build_info{goversion=%q,revision=%q,version=%q} 1", bi.GoVersion, bi.Revision, bi.Version)
	if !slices.Contains(lines, want) {
		t.Errorf("GET /metrics lacks %q", want)
	}
	if strings.Contains(body, "pgfleet_tls_certificate_expiry_timestamp_seconds") {
		t.Error("a plaintext server reports a certificate expiry")
	}
}

// formatLE writes a bucket bound as the text exposition format does.
func formatLE(le float64) string {
	if math.IsInf(le, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(le, 'g', -1, 64)
}

// TestServer_Run_drain cancels Run while a call is in flight: the call completes, new
// connections are refused, health turns NOT_SERVING, and Run returns nil after the call.
func TestServer_Run_drain(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	srv, _ := newServer(t, server.Options{Drain: time.Minute}, func(ctx context.Context) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	slow := make(chan error, 1)
	go func() { slow <- getStatus(t.Context(), dial(t, srv.GRPCAddr())) }()
	<-started
	cancel()

	waitRefused(t, srv.GRPCAddr())
	callCtx, callCancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer callCancel()
	if err := getStatus(callCtx, dial(t, srv.GRPCAddr())); status.Code(err) != codes.Unavailable {
		t.Errorf("new call while draining = %v, want Unavailable", err)
	}
	resp, err := srv.Health().Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check(\"\") while draining = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a call was in flight", err)
	default:
	}

	close(release)
	if err := <-slow; err != nil {
		t.Errorf("in-flight call = %v, want OK", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", srv.MetricsAddr()); err == nil {
		t.Errorf("metrics listener still accepts after Run returned")
	}
}

// TestServer_Run_drainTimeout: a call that outlasts Drain is cancelled and Run returns
// about Drain after its context is done.
func TestServer_Run_drainTimeout(t *testing.T) {
	t.Parallel()
	const drain = 200 * time.Millisecond
	started := make(chan struct{})
	srv, _ := newServer(t, server.Options{Drain: drain}, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	slow := make(chan error, 1)
	go func() { slow <- getStatus(t.Context(), dial(t, srv.GRPCAddr())) }()
	<-started
	begin := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if took := time.Since(begin); took < drain || took > drain+5*time.Second {
		t.Errorf("Run returned %v after cancel, want about %v", took, drain)
	}
	if err := <-slow; !slices.Contains([]codes.Code{codes.Unavailable, codes.Canceled}, status.Code(err)) {
		t.Errorf("call cut by drain = %v, want Unavailable or Canceled", err)
	}
}

func TestServer_Run_cancelledBeforeStart(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{Drain: time.Minute}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := srv.Run(ctx); err != nil {
		t.Errorf("Run(cancelled) = %v, want nil", err)
	}
	for _, addr := range []string{srv.GRPCAddr(), srv.MetricsAddr()} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Run returned", addr)
		}
	}
}

// waitRefused waits until addr stops accepting connections, i.e. the drain has begun.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections", addr)
}

// TestServer_Run_endsHealthWatch: an open health Watch stream must not hold the drain.
func TestServer_Run_endsHealthWatch(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{Drain: time.Minute}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	watch, err := healthpb.NewHealthClient(dial(t, srv.GRPCAddr())).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch Recv = %v, %v; want SERVING", resp, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still draining an open health Watch after 10s")
	}
	for {
		resp, err := watch.Recv()
		if err != nil {
			if code := status.Code(err); code != codes.Canceled && code != codes.Unavailable {
				t.Errorf("Watch ended with %v, want Canceled or Unavailable", err)
			}
			break
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch after shutdown sent %v, want NOT_SERVING", resp.GetStatus())
		}
	}
}
