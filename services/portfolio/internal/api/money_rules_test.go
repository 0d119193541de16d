package api_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

// wantRefused fails t unless err is FAILED_PRECONDITION with reason (and md among its
// metadata) and the portfolio has no trade: a refused trade writes nothing.
func (e env) wantRefused(t *testing.T, err error, pid int64, reason apierr.Reason, md map[string]string) {
	t.Helper()
	apptest.WantCode(t, err, codes.FailedPrecondition)
	apptest.WantReason(t, err, reason, md)
	if n := e.count(t, `SELECT count(*) FROM portfolio.trades WHERE portfolio_id = $1`, pid); n != 0 {
		t.Errorf("%d trades stored after a refused trade, want 0", n)
	}
}

// TestExecuteTrade_currencyMismatch: an EUR portfolio bought AAPL (USD) at 100 and its cash
// went from 1000 to 900 EUR. A trade across currencies is refused, both ways.
func TestExecuteTrade_currencyMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	eur := e.newPortfolioIn(t, "eur@example.com", "EUR", "1000")
	_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: eur, Symbol: "AAPL",
		Side: buy, Quantity: "1", RequestId: "usd-stock"})
	e.wantRefused(t, err, eur, apierr.CurrencyMismatch,
		map[string]string{"symbol": "AAPL", "stock_currency": "USD", "portfolio_currency": "EUR"})
	e.wantCash(t, eur, "1000")

	usd := e.newPortfolio(t, "usd@example.com", "1000")
	_, err = e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: usd, Symbol: "SAP",
		Side: buy, Quantity: "1", RequestId: "eur-stock"})
	e.wantRefused(t, err, usd, apierr.CurrencyMismatch,
		map[string]string{"symbol": "SAP", "stock_currency": "EUR", "portfolio_currency": "USD"})

	// In its own currency it trades.
	if got := e.mustTrade(t, eur, buy, "SAP", "2", "eur-ok"); got.GetCash() != "760" {
		t.Errorf("EUR portfolio buying 2 SAP at 120: cash %q, want 760", got.GetCash())
	}
}

// TestExecuteTrade_priceTooOld: a trade executed at the latest bar however old, and did not
// say which. It records the bar's time now, and refuses a bar older than MAX_PRICE_AGE.
func TestExecuteTrade_priceTooOld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "old@example.com", "1000")
	_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "OLD",
		Side: buy, Quantity: "1", RequestId: "old"})
	e.wantRefused(t, err, pid, apierr.PriceTooOld, map[string]string{"symbol": "OLD",
		"price_time": oldTime.AsTime().Format(time.RFC3339), "max_price_age": maxPriceAge.String()})
	e.wantCash(t, pid, "1000")

	got := e.mustTrade(t, pid, buy, "AAPL", "1", "fresh")
	if d := cmp.Diff(priceTime, got.GetTrade().GetPriceTime(), protocmp.Transform()); d != "" {
		t.Errorf("trade price_time (-want +got):\n%s", d)
	}
	list, err := e.client.ListTrades(t.Context(), &portfoliov1.ListTradesRequest{PortfolioId: pid})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]*portfoliov1.Trade{got.GetTrade()}, list.GetTrades(), protocmp.Transform()); d != "" {
		t.Errorf("ListTrades (-want +got):\n%s", d)
	}
}

// TestDeleteStock_positionsStaySellable: DeleteStock removed the latest price, after which
// positions in the stock could never be sold and the portfolio's value stayed empty. A
// delisted stock keeps its final price: positions are valued and sold at it, not bought.
func TestDeleteStock_positionsStaySellable(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	e := serve(t, stock.Addr, api.New, nil)
	pid := e.newPortfolio(t, "delisted@example.com", "10000")
	e.mustTrade(t, pid, buy, "AAPL", "10", "before")
	e.mustTrade(t, pid, buy, "MSFT", "1", "msft")

	admin := stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t)))
	if _, err := admin.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: "AAPL"}); err != nil {
		t.Fatalf("DeleteStock: %v", err)
	}

	p := e.mustGet(t, pid)
	if len(p.GetPositions()) != 2 || p.GetPositions()[0].GetDelistTime() == nil {
		t.Fatalf("GetPortfolio after DeleteStock = %v, want AAPL with a delist_time", p)
	}
	aapl := p.GetPositions()[0]
	want := &portfoliov1.GetPortfolioResponse{
		Positions: []*portfoliov1.Position{
			{Symbol: "AAPL", Quantity: "10", AverageCost: "100", LastPrice: "100", PriceTime: priceTime, MarketValue: "1000",
				UnrealizedPnl: "0", Currency: "USD", DelistTime: aapl.GetDelistTime()},
			{Symbol: "MSFT", Quantity: "1", AverageCost: "200.5", LastPrice: "200.5", PriceTime: priceTime, MarketValue: "200.5",
				UnrealizedPnl: "0", Currency: "USD"},
		},
		PositionsValue:  "1200.5",
		TotalValue:      "10000",
		PositionsValues: []*portfoliov1.CurrencyValue{{Currency: "USD", PositionsValue: "1200.5"}},
	}
	if d := cmp.Diff(want, p, protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.GetPortfolioResponse{}, "portfolio")); d != "" {
		t.Errorf("GetPortfolio after DeleteStock (-want +got):\n%s", d)
	}

	_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
		Side: buy, Quantity: "1", RequestId: "after"})
	apptest.WantCode(t, err, codes.FailedPrecondition)
	apptest.WantReason(t, err, apierr.StockDelisted, map[string]string{"symbol": "AAPL"})

	// Sold at the final price, in two steps; the position closes.
	if got := e.mustTrade(t, pid, sell, "AAPL", "4", "sell-4"); got.GetCash() != "9199.5" || got.GetTrade().GetPrice() != "100" {
		t.Errorf("sell 4 delisted AAPL: cash %q at %q, want 9199.5 at 100", got.GetCash(), got.GetTrade().GetPrice())
	}
	e.mustTrade(t, pid, sell, "AAPL", "6", "sell-6")
	p = e.mustGet(t, pid)
	if len(p.GetPositions()) != 1 || p.GetTotalValue() != "10000" {
		t.Errorf("GetPortfolio after selling the delisted position = %v, want MSFT alone and total 10000", p)
	}
	e.wantCash(t, pid, "9799.5")
}

// TestGetPortfolio_currencies: GetPortfolio added EUR cash to USD values. A position priced in
// another currency than the portfolio's (bought before such trades were refused) is valued in
// its own currency, and no total adds it to the cash.
func TestGetPortfolio_currencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolioIn(t, "mixed@example.com", "EUR", "1000")
	e.mustTrade(t, pid, buy, "SAP", "2", "sap")
	// What the defect left behind: 5 AAPL bought with EUR cash at 100.
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO portfolio.positions (portfolio_id, symbol, quantity, cost_basis)
		VALUES ($1, 'AAPL', 5, 500)`, pid); err != nil {
		t.Fatal(err)
	}
	want := &portfoliov1.GetPortfolioResponse{
		Positions: []*portfoliov1.Position{
			{Symbol: "AAPL", Quantity: "5", AverageCost: "100", LastPrice: "100", PriceTime: priceTime, MarketValue: "500",
				UnrealizedPnl: "0", Currency: "USD"},
			{Symbol: "SAP", Quantity: "2", AverageCost: "120", LastPrice: "120", PriceTime: priceTime, MarketValue: "240",
				UnrealizedPnl: "0", Currency: "EUR"},
		},
		PositionsValues: []*portfoliov1.CurrencyValue{{Currency: "EUR", PositionsValue: "240"}, {Currency: "USD", PositionsValue: "500"}},
	}
	if d := cmp.Diff(want, e.mustGet(t, pid), protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.GetPortfolioResponse{}, "portfolio")); d != "" {
		t.Errorf("GetPortfolio of an EUR portfolio holding USD shares (-want +got):\n%s", d)
	}
	// Nor can it be sold into EUR cash.
	_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
		Side: sell, Quantity: "5", RequestId: "sell-usd"})
	apptest.WantCode(t, err, codes.FailedPrecondition)
	apptest.WantReason(t, err, apierr.CurrencyMismatch, nil)
}

// TestInvariants_currencies is the bank workload on USD and EUR portfolios trading USD and
// EUR stocks on two instances: cross-currency trades are refused, the rest keeps every
// invariant, and no trade is stored in a portfolio of another currency than its stock's.
func TestInvariants_currencies(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	shared := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t, migrations.Set)} // one database, two instances
	a := serve(t, stock.Addr, api.New, shared)
	b := serve(t, stock.Addr, api.New, shared)
	w := workload{portfolios: 4, clients: 32, ops: 30, funding: "10000", weights: [4]int{4, 3, 2, 2},
		currencies: []string{"USD", "EUR"}, symbols: []string{"AAPL", "SAP", "MSFT"}}
	h := w.run(t, a.client, b.client)
	logRun(t, h, a.retry, b.retry)
	checkNoFailures(t, h)
	checkNoConflicts(t, a.retry, b.retry)
	checkInvariants(t, a.pool, h)

	rows, err := a.pool.Query(t.Context(), `SELECT t.id, t.symbol, p.currency
		FROM portfolio.trades t JOIN portfolio.portfolios p ON p.id = t.portfolio_id`)
	if err != nil {
		t.Fatal(err)
	}
	perCurrency := map[string]int{}
	for rows.Next() {
		var id int64
		var sym, currency string
		if err := rows.Scan(&id, &sym, &currency); err != nil {
			t.Fatal(err)
		}
		perCurrency[currency]++
		if currencyOf(sym) != currency {
			t.Errorf("trade %d of %s (%s) stored in a %s portfolio", id, sym, currencyOf(sym), currency)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("trades stored per portfolio currency: %v; %d refused (FAILED_PRECONDITION)", perCurrency, h.refused)
	if perCurrency["USD"] == 0 || perCurrency["EUR"] == 0 || h.refused == 0 {
		t.Errorf("trades per currency %v, %d refused: the workload did not trade both currencies and meet refusals", perCurrency, h.refused)
	}
}
