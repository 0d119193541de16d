package api_test

import (
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestDeposit_balanceLimit: a deposit that validation accepts (at most 14 integer digits)
// but that would take cash past what numeric(20, 6) holds is FAILED_PRECONDITION
// BALANCE_LIMIT, not INTERNAL (SQLSTATE 22003), and moves nothing; one that reaches the
// limit exactly is accepted.
func TestDeposit_balanceLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "limit@example.com", "1")
	const largest = "99999999999999.999999"

	_, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: largest, RequestId: "over"})
	apptest.WantReason(t, err, apierr.BalanceLimit, map[string]string{"portfolio_id": "1", "cash": "1", "amount": largest, "limit": largest})
	e.wantCash(t, pid, "1")

	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "99999999999998.999999",
		RequestId: "to-the-limit"}); err != nil {
		t.Fatalf("deposit up to the limit: %v", err)
	}
	e.wantCash(t, pid, largest)
}

// TestExecuteTrade_balanceLimit: a sale whose proceeds would take cash past what
// numeric(20, 6) holds was INTERNAL (SQLSTATE 22003 once every check had passed). It is
// FAILED_PRECONDITION BALANCE_LIMIT, as a deposit is, and writes nothing.
func TestExecuteTrade_balanceLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "sale-limit@example.com", "1000")
	const largest = "99999999999999.999999"
	e.mustTrade(t, pid, buy, "AAPL", "1", "buy") // at 100: cash 900
	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "99999999999099.999999",
		RequestId: "to-the-limit"}); err != nil {
		t.Fatalf("deposit up to the limit: %v", err)
	}

	_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
		Side: sell, Quantity: "1", RequestId: "sell"})
	apptest.WantCode(t, err, codes.FailedPrecondition)
	apptest.WantReason(t, err, apierr.BalanceLimit, map[string]string{"portfolio_id": strconv.FormatInt(pid, 10), "cash": largest,
		"amount": "100", "limit": largest})
	e.wantCash(t, pid, largest)
	if n := e.count(t, `SELECT count(*) FROM portfolio.trades WHERE portfolio_id = $1`, pid); n != 1 {
		t.Errorf("%d trades after the refused sale, want the buy alone", n)
	}
}
