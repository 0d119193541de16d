package api_test

import (
	"testing"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
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
	wantReason(t, err, apierr.BalanceLimit, map[string]string{"portfolio_id": "1", "cash": "1", "amount": largest, "limit": largest})
	e.wantCash(t, pid, "1")

	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "99999999999998.999999",
		RequestId: "to-the-limit"}); err != nil {
		t.Fatalf("deposit up to the limit: %v", err)
	}
	e.wantCash(t, pid, largest)
}
