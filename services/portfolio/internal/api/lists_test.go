package api_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/query/querytest"
)

// TestList_everyOrderPages walks ListPortfolios and ListTrades in small pages under every
// order they accept: the page tokens hold each sort field's value of the last row.
func TestList_everyOrderPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var pid int64
	for i := range 8 {
		u, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: fmt.Sprintf("u%d@example.com", i)})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		for j := range 2 {
			p, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(),
				Name: fmt.Sprintf("p%d", (i*3+j)%5), Currency: []string{"USD", "EUR"}[(i+j)%2]})
			if err != nil {
				t.Fatalf("CreatePortfolio: %v", err)
			}
			pid = p.GetPortfolio().GetId()
		}
	}
	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "100000", RequestId: "cash"}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	for i, symbol := range []string{"AAPL", "MSFT", "XOM", "AAPL", "MSFT", "AAPL", "XOM", "AAPL"} {
		e.mustTrade(t, pid, buy, symbol, "2", fmt.Sprintf("buy%d", i))
		if i%3 == 1 {
			e.mustTrade(t, pid, sell, symbol, "1", fmt.Sprintf("sell%d", i))
		}
	}

	t.Run("portfolios", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			var keys []string
			for _, p := range resp.GetPortfolios() {
				keys = append(keys, strconv.FormatInt(p.GetId(), 10))
			}
			return keys, resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 3, "id", "user_id", "name", "currency", "create_time", "update_time")
	})
	t.Run("trades", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: orderBy, PageToken: token, PageSize: size})
			var keys []string
			for _, tr := range resp.GetTrades() {
				keys = append(keys, strconv.FormatInt(tr.GetId(), 10))
			}
			return keys, resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 3, "id", "symbol", "side", "execute_time")
	})
}
