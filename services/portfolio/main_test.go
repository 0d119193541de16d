package main

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRun starts the real binary's run on an empty database: it migrates, serves, reports
// SERVING and answers; with the stock service unreachable, trades fail fast as UNAVAILABLE.
func TestRun(t *testing.T) {
	t.Parallel()
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":               pgtest.NewDBURL(t),
		"STOCK_ADDR":                 apptest.FreeAddr(t), // nothing listens there
		"STOCK_TIMEOUT":              "500ms",
		"STOCK_BREAKER_MIN_REQUESTS": "2",
		"DB_HEALTH_INTERVAL":         "200ms",
		"DRAIN_TIMEOUT":              "2s",
	})
	conn := svc.Conn
	apptest.AwaitHealth(t, conn, portfoliov1.PortfolioService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING, 30*time.Second)

	c := portfoliov1.NewPortfolioServiceClient(conn)
	u, err := c.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "ada@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	p, err := c.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "main"})
	if err != nil {
		t.Fatalf("CreatePortfolio: %v", err)
	}
	if _, err := c.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: p.GetPortfolio().GetId(), Amount: "100", RequestId: "d1"}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	for i := range 4 {
		_, err := c.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: p.GetPortfolio().GetId(),
			Symbol: "AAPL", Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: "t" + string(rune('0'+i))})
		if got := status.Code(err); got != codes.Unavailable {
			t.Fatalf("ExecuteTrade without a stock service: %v, want UNAVAILABLE", err)
		}
	}
	st, err := opsv1.NewDatabaseMonitorClient(conn).GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
	if err != nil || st.GetStatus().GetService() != "portfolio" || st.GetStatus().GetHealth() != opsv1.Health_HEALTH_SERVING {
		t.Errorf("GetDatabaseStatus = %v, %v; want portfolio SERVING", st, err)
	}
}
