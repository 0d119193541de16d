package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

// moneyCall is one money-moving request (Deposit, Withdraw or ExecuteTrade) on a portfolio,
// sent through c; it returns the response and the error as the client saw them.
type moneyCall struct {
	name string
	send func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64, rid string) (proto.Message, error)
}

// moneyCalls move 80 of the 100 the test portfolios hold: a second execution could not pass
// the business check, so a repeat that is not recognised as one answers differently.
var moneyCalls = []moneyCall{
	{"Withdraw", func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64, rid string) (proto.Message, error) {
		return c.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "80", RequestId: rid})
	}},
	{"ExecuteTrade buy", func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64, rid string) (proto.Message, error) {
		return c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL", Side: buy,
			Quantity: "0.8", RequestId: rid}) // AAPL is at 100
	}},
	{"ExecuteTrade sell", func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64, rid string) (proto.Message, error) {
		return c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL", Side: sell,
			Quantity: "0.8", RequestId: rid}) // of the 1 share the portfolio holds
	}},
	{"Deposit", func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64, rid string) (proto.Message, error) {
		return c.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "80", RequestId: rid})
	}},
}

// fundedPortfolio is a portfolio holding 100 in cash, and for the sell, 1 AAPL share bought
// with another 100.
func (e env) fundedPortfolio(t *testing.T, email string, call moneyCall) int64 {
	t.Helper()
	if call.name != "ExecuteTrade sell" {
		return e.newPortfolio(t, email, "100")
	}
	pid := e.newPortfolio(t, email, "200")
	e.mustTrade(t, pid, buy, "AAPL", "1", "setup")
	return pid
}

// sameAnswer describes how two answers to one request differ, or returns "".
func sameAnswer(resp1 proto.Message, err1 error, resp2 proto.Message, err2 error) string {
	if err1 != nil || err2 != nil {
		if status.Code(err1) == codes.OK || status.Code(err2) == codes.OK {
			return fmt.Sprintf("one answer is an error: %v, the other %v", err1, err2)
		}
		return ""
	}
	if d := cmp.Diff(resp1, resp2, protocmp.Transform()); d != "" {
		return "answers differ (-first +second):\n" + d
	}
	return ""
}

// TestIdempotency_repeatAfterOK sends each money-moving request, then the same request again
// after another operation changed the portfolio: the repeat must be the first answer exactly,
// not a second business check (a withdrawal of 80 from 100 repeated was INSUFFICIENT_CASH).
func TestIdempotency_repeatAfterOK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, call := range moneyCalls {
		t.Run(call.name, func(t *testing.T) {
			t.Parallel()
			pid := e.fundedPortfolio(t, fmt.Sprintf("repeat%d@example.com", i), call)
			first, err := call.send(t.Context(), e.client, pid, "once")
			if err != nil {
				t.Fatalf("%s = %v", call.name, err)
			}
			again, err := call.send(t.Context(), e.client, pid, "once")
			if d := sameAnswer(first, nil, again, err); d != "" {
				t.Errorf("repeat right after OK: %s", d)
			}
			if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "5", RequestId: "between"}); err != nil {
				t.Fatal(err)
			}
			again, err = call.send(t.Context(), e.client, pid, "once")
			if d := sameAnswer(first, nil, again, err); d != "" {
				t.Errorf("repeat after a deposit in between: %s", d)
			}
		})
	}
}

// TestIdempotency_concurrentPairs sends each money-moving request twice at once, one copy to
// each of two service instances on one database, with cash (or shares) for one execution:
// in every round both copies must get the same OK answer and one execution is stored.
func TestIdempotency_concurrentPairs(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	shared := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t, migrations.Set)} // one database, two instances
	a := serve(t, stock.Addr, api.New, shared)
	b := serve(t, stock.Addr, api.New, shared)
	const rounds = 20
	for i, call := range moneyCalls {
		t.Run(call.name, func(t *testing.T) {
			t.Parallel()
			differ := 0
			for r := range rounds {
				pid := a.fundedPortfolio(t, fmt.Sprintf("pair%d-%d@example.com", i, r), call)
				clients := []portfoliov1.PortfolioServiceClient{a.client, b.client}
				var resps [2]proto.Message
				var errs [2]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for k, c := range clients {
					wg.Go(func() {
						<-start
						resps[k], errs[k] = call.send(t.Context(), c, pid, "pair")
					})
				}
				close(start)
				wg.Wait()
				if errs[0] != nil && errs[1] != nil {
					t.Fatalf("round %d: both copies failed: %v; %v", r, errs[0], errs[1])
				}
				if d := sameAnswer(resps[0], errs[0], resps[1], errs[1]); d != "" {
					differ++
					t.Logf("round %d: %s", r, d)
				}
				stored := a.count(t, `SELECT count(*) FROM portfolio.cash_movements WHERE portfolio_id = $1 AND request_id = 'pair'`, pid)
				if stored != 1 {
					t.Errorf("round %d: %d executions stored, want 1", r, stored)
				}
			}
			t.Logf("concurrent identical pairs answered differently: %d/%d", differ, rounds)
			if differ > 0 {
				t.Errorf("concurrent identical pairs answered differently: %d/%d, want 0", differ, rounds)
			}
		})
	}
}
