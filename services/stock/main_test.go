package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRun starts the real service binary's run on a private cluster, then stops and
// starts PostgreSQL under it: health follows the database without a restart.
func TestRun(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":       cluster.NewDBURL(t), // empty: the service migrates it
		"DB_HEALTH_INTERVAL": "500ms",
		"DRAIN_TIMEOUT":      "2s",
	})
	conn, metricsAddr := svc.Conn, svc.MetricsAddr
	apptest.AwaitHealth(t, conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)

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
		took := apptest.AwaitHealth(t, conn, "", healthpb.HealthCheckResponse_NOT_SERVING, 5*time.Second)
		t.Logf("NOT_SERVING %v after the database stopped", took)
		cluster.Start(t)
		took = apptest.AwaitHealth(t, conn, "", healthpb.HealthCheckResponse_SERVING, 5*time.Second)
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
