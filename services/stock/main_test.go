package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// awaitHealth polls the health service until it reports want, and returns how long it took.
func awaitHealth(t *testing.T, hc healthpb.HealthClient, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return time.Since(start)
		}
		last = fmt.Sprint(resp.GetStatus(), err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("health not %v within %v; last: %s", want, within, last)
	return 0
}

// TestRun starts the real service binary's run on a private cluster, then stops and
// starts PostgreSQL under it: health follows the database without a restart.
func TestRun(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	grpcAddr, metricsAddr := freeAddr(t), freeAddr(t)
	env := envconfig.MapLookuper(map[string]string{
		"DATABASE_URL":       cluster.NewDBURL(t), // empty: the service migrates it
		"GRPC_ADDR":          grpcAddr,
		"METRICS_ADDR":       metricsAddr,
		"DB_HEALTH_INTERVAL": "500ms",
		"DRAIN_TIMEOUT":      "2s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	awaitHealth(t, hc, healthpb.HealthCheckResponse_SERVING, 30*time.Second)

	t.Run("reflection", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		for _, want := range []string{"pgfleet.stock.v1.StockService", "pgfleet.ops.v1.DatabaseMonitor",
			"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
			if !strings.Contains(strings.Join(names, " "), want) {
				t.Errorf("reflection lists %v, missing %s", names, want)
			}
		}
	})

	t.Run("database status", func(t *testing.T) {
		resp, err := opsv1.NewDatabaseMonitorClient(conn).GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
		if err != nil {
			t.Fatalf("GetDatabaseStatus: %v", err)
		}
		st := resp.GetStatus()
		if st.GetHealth() != opsv1.Health_HEALTH_SERVING || !strings.HasPrefix(st.GetServerVersion(), "1") ||
			st.GetPool().GetMaxConns() != 20 || st.GetRetry().GetBreakerState() != "closed" {
			t.Errorf("GetDatabaseStatus = %v, want serving, a version, 20 max conns, breaker closed", st)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"pgfleet_db_pool_max_conns 20", "pgfleet_db_up 1", "grpc_server_handled_total", "pgfleet_retry_breaker_state"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})

	t.Run("database restart", func(t *testing.T) {
		cluster.Stop(t)
		took := awaitHealth(t, hc, healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
		t.Logf("NOT_SERVING %v after the database stopped", took)
		cluster.Start(t)
		took = awaitHealth(t, hc, healthpb.HealthCheckResponse_SERVING, 5*time.Second)
		t.Logf("SERVING %v after the database started", took)

		stocks := stockv1.NewStockServiceClient(conn)
		if _, err := stocks.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{
			Stocks: []*stockv1.Stock{{Symbol: "AAPL", Name: "Apple Inc."}}}); err != nil {
			t.Fatalf("UpsertStocks after restart: %v", err)
		}
		if _, err := stocks.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "AAPL"}); err != nil {
			t.Errorf("GetStock after restart: %v", err)
		}
	})
}
