package main

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestOutage stops the database under the real service, with its default retry and breaker
// settings: every call, from the first (while the retrier still retries refused
// connections) to the last (once the breaker has opened), answers UNAVAILABLE with reason
// DATABASE_UNAVAILABLE, never ABORTED (issue 11: the first calls of an outage were reported
// as concurrency conflicts). Money moves and trades included: they look up the portfolio
// before anything else, so the stock service is not needed to see the outage.
func TestOutage(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":  cluster.NewDBURL(t),
		"STOCK_ADDR":    apptest.FreeAddr(t), // nothing listens there
		"DRAIN_TIMEOUT": "2s",
	})
	apptest.AwaitHealth(t, svc.Conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)
	c := portfoliov1.NewPortfolioServiceClient(svc.Conn)
	u, err := c.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "ada@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	uid := u.GetUser().GetId()
	p, err := c.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "main"})
	if err != nil {
		t.Fatalf("CreatePortfolio: %v", err)
	}
	pid := p.GetPortfolio().GetId()

	cluster.StopUntilCleanup(t)
	apptest.RequireUnavailable(t, 3,
		apptest.Call{Name: "Deposit", Do: func(ctx context.Context) error {
			_, err := c.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "100", RequestId: "d1"})
			return err
		}},
		apptest.Call{Name: "ExecuteTrade", Do: func(ctx context.Context) error {
			_, err := c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
				Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: "t1"})
			return err
		}},
		apptest.Call{Name: "GetPortfolio", Do: func(ctx context.Context) error {
			_, err := c.GetPortfolio(ctx, &portfoliov1.GetPortfolioRequest{PortfolioId: pid})
			return err
		}},
		apptest.Call{Name: "Withdraw", Do: func(ctx context.Context) error {
			_, err := c.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "1", RequestId: "w1"})
			return err
		}},
		apptest.Call{Name: "ListPortfolios", Do: func(ctx context.Context) error {
			_, err := c.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{})
			return err
		}},
		apptest.Call{Name: "ListTrades", Do: func(ctx context.Context) error {
			_, err := c.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: pid})
			return err
		}},
		apptest.Call{Name: "ListCashMovements", Do: func(ctx context.Context) error {
			_, err := c.ListCashMovements(ctx, &portfoliov1.ListCashMovementsRequest{PortfolioId: pid})
			return err
		}},
		apptest.Call{Name: "GetUser", Do: func(ctx context.Context) error {
			_, err := c.GetUser(ctx, &portfoliov1.GetUserRequest{UserId: uid})
			return err
		}},
		apptest.Call{Name: "CreateUser", Do: func(ctx context.Context) error {
			_, err := c.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "bob@example.com"})
			return err
		}},
		apptest.Call{Name: "CreatePortfolio", Do: func(ctx context.Context) error {
			_, err := c.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "second", RequestId: "p2"})
			return err
		}},
	)
}
