package api_test

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

// analyticsEnv is a portfolio service with a stock service of its own, and a client of that
// stock service to set prices with.
type analyticsEnv struct {
	env
	stock     stockv1.StockServiceClient
	stockProc *apptest.Process
}

func newAnalyticsEnv(t *testing.T, settings map[string]string) analyticsEnv {
	t.Helper()
	proc := newStockService(t)
	return analyticsEnv{env: serve(t, proc.Addr, api.New, settings),
		stock: stockv1.NewStockServiceClient(apptest.Dial(t, proc.Addr, authtest.Admin(t))), stockProc: proc}
}

// ingest stores bars through the stock service.
func (a analyticsEnv) ingest(t *testing.T, bars ...*stockv1.Price) {
	t.Helper()
	stream, err := a.stock.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("ingest: %v", err)
	}
}

// priceNow makes close symbol's latest price, at the present moment: the next trade
// executes at it, and an as_of from now on sees it.
func (a analyticsEnv) priceNow(t *testing.T, symbol, close string) {
	t.Helper()
	a.ingest(t, &stockv1.Price{Symbol: symbol, Time: timestamppb.New(time.Now().Truncate(time.Microsecond)),
		Open: close, High: close, Low: close, Close: close, Volume: 1})
}

// backdate moves a trade, or a deposit or withdrawal (by request_id), and its ledger entry to at.
func (a analyticsEnv) backdate(t *testing.T, pid int64, requestID string, at time.Time) {
	t.Helper()
	const q = `
		WITH tr AS (UPDATE portfolio.trades SET execute_time = $3 WHERE portfolio_id = $1 AND request_id = $2 RETURNING id)
		UPDATE portfolio.cash_movements SET create_time = $3
		WHERE portfolio_id = $1 AND (trade_id IN (SELECT id FROM tr) OR (trade_id IS NULL AND request_id = $2))`
	tag, err := a.pool.Exec(t.Context(), q, pid, requestID, at)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("backdate %s: %v, %d movements", requestID, err, tag.RowsAffected())
	}
}

// TestListPortfolioValues_replay runs a month of deposits, buys, partial sells, a full sell
// and a withdrawal (each made through the API, then moved back to its day), over daily bars
// on weekdays only, and checks every point of the daily and weekly value histories, read in
// small pages, against an independent replay of the ledger here: ListTrades +
// ListCashMovements + the stock service's ListPrices. GetPortfolio with as_of at a point
// answers the same values, and as_of just before and at a sale sees the position before and
// after it.
func TestListPortfolioValues_replay(t *testing.T) {
	t.Parallel()
	a := newAnalyticsEnv(t, nil)
	pid := a.newPortfolio(t, "history@example.com", "0")
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -2, 0)
	day := func(d, hour int) time.Time { return month.AddDate(0, 0, d-1).Add(time.Duration(hour) * time.Hour) }

	// Daily bars at midnight on the month's weekdays and a few days after.
	var bars []*stockv1.Price
	for d := 1; d <= 35; d++ {
		at := day(d, 0)
		if at.Weekday() == time.Saturday || at.Weekday() == time.Sunday {
			continue
		}
		for i, sym := range []string{"AAPL", "MSFT"} {
			c := fmt.Sprintf("%d.%02d", 100*(i+1)+d, (d*37+i*11)%100)
			bars = append(bars, &stockv1.Price{Symbol: sym, Time: timestamppb.New(at), Open: c, High: c, Low: c, Close: c, Volume: 10})
		}
	}
	a.ingest(t, bars...)
	// The portfolio opened the day before the month: its movements come after.
	if _, err := a.pool.Exec(t.Context(), `UPDATE portfolio.portfolios SET create_time = $2 WHERE id = $1`, pid, month.AddDate(0, 0, -1)); err != nil {
		t.Fatal(err)
	}

	type step struct {
		day         int
		kind        string // deposit, withdraw, buy, sell
		symbol, qty string
		price, rid  string
	}
	steps := []step{
		{2, "deposit", "", "10000", "", "d1"},
		{3, "buy", "AAPL", "10", "100", "t1"},
		{5, "buy", "MSFT", "5", "200.5", "t2"},
		{9, "sell", "AAPL", "4", "110.25", "t3"},
		{12, "deposit", "", "500.5", "", "d2"},
		{16, "sell", "MSFT", "5", "190", "t4"},
		{19, "buy", "AAPL", "3", "105", "t5"},
		{23, "withdraw", "", "1000", "", "w1"},
		{26, "buy", "MSFT", "1.5", "201", "t6"},
	}
	for _, s := range steps {
		var err error
		switch s.kind {
		case "deposit":
			_, err = a.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: s.qty, RequestId: s.rid})
		case "withdraw":
			_, err = a.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: s.qty, RequestId: s.rid})
		default:
			a.priceNow(t, s.symbol, s.price)
			side := buy
			if s.kind == "sell" {
				side = sell
			}
			_, err = a.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: s.symbol,
				Side: side, Quantity: s.qty, RequestId: s.rid})
		}
		if err != nil {
			t.Fatalf("%s %s: %v", s.kind, s.rid, err)
		}
		a.backdate(t, pid, s.rid, day(s.day, 15))
	}

	want := replayLedger(t, a, pid)
	for _, tt := range []struct {
		interval stockv1.Interval
		pageSize int32
	}{{stockv1.Interval_INTERVAL_DAY, 7}, {stockv1.Interval_INTERVAL_WEEK, 2}, {stockv1.Interval_INTERVAL_MONTH, 0}} {
		t.Run(tt.interval.String(), func(t *testing.T) {
			start, end := month.Add(-36*time.Hour), month.AddDate(0, 1, 5)
			var got []*portfoliov1.PortfolioValue
			req := &portfoliov1.ListPortfolioValuesRequest{PortfolioId: pid, StartTime: timestamppb.New(start),
				EndTime: timestamppb.New(end), Interval: tt.interval, PageSize: tt.pageSize}
			for pages := 1; ; pages++ {
				resp, err := a.user.ListPortfolioValues(t.Context(), req, authtest.As(t, "history@example.com"))
				if err != nil {
					t.Fatalf("ListPortfolioValues page %d: %v", pages, err)
				}
				if tt.pageSize > 0 && len(resp.GetValues()) > int(tt.pageSize) {
					t.Fatalf("page %d holds %d points, page_size %d", pages, len(resp.GetValues()), tt.pageSize)
				}
				got = append(got, resp.GetValues()...)
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			var points []time.Time
			for t0 := start; t0.Before(end); t0 = t0.Add(time.Hour) {
				if p := t0.UTC(); p.Hour() == 0 && (tt.interval == stockv1.Interval_INTERVAL_DAY ||
					tt.interval == stockv1.Interval_INTERVAL_WEEK && p.Weekday() == time.Monday ||
					tt.interval == stockv1.Interval_INTERVAL_MONTH && p.Day() == 1) && !p.Before(start) {
					points = append(points, p)
				}
			}
			var wantValues []*portfoliov1.PortfolioValue
			for _, p := range points {
				wantValues = append(wantValues, want(p))
			}
			if diff := cmp.Diff(wantValues, got, protocmp.Transform()); diff != "" {
				t.Errorf("value history mismatch with the replay (-want +got):\n%s", diff)
			}
			if len(got) < 2 {
				t.Errorf("%d points, want the month's", len(got))
			}
		})
	}

	// GetPortfolio as of a point answers the point's values.
	for _, d := range []int{1, 7, 14, 20, 28, 34} {
		at := day(d, 0)
		p, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid, AsOf: timestamppb.New(at)})
		if err != nil {
			t.Fatalf("GetPortfolio as of %v: %v", at, err)
		}
		w := want(at)
		got := &portfoliov1.PortfolioValue{Time: w.GetTime(), Cash: p.GetPortfolio().GetCash(), PositionsValue: p.GetPositionsValue(),
			TotalValue: p.GetTotalValue(), NetDeposits: w.GetNetDeposits(), PositionsValues: p.GetPositionsValues()}
		if diff := cmp.Diff(w, got, protocmp.Transform()); diff != "" {
			t.Errorf("GetPortfolio as of %v mismatch with the value history (-want +got):\n%s", at, diff)
		}
	}

	// Before and at the partial sale of AAPL on day 9.
	sale := day(9, 15)
	for _, tt := range []struct {
		at       time.Time
		qty      string
		cash     string
		updateAt time.Time
	}{
		{sale.Add(-time.Microsecond), "10", "7997.5", day(5, 15)}, // 10000 - 1000 - 1002.5
		{sale, "6", "8438.5", sale},                               // + 4 x 110.25 = 441
	} {
		p, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid, AsOf: timestamppb.New(tt.at)})
		if err != nil {
			t.Fatal(err)
		}
		aapl := p.GetPositions()[0]
		if aapl.GetSymbol() != "AAPL" || aapl.GetQuantity() != tt.qty || aapl.GetAverageCost() != "100" ||
			p.GetPortfolio().GetCash() != tt.cash || !p.GetPortfolio().GetUpdateTime().AsTime().Equal(tt.updateAt) {
			t.Errorf("GetPortfolio as of %v: AAPL %v, cash %s, update_time %v; want %s AAPL at average cost 100, cash %s, updated %v",
				tt.at, aapl, p.GetPortfolio().GetCash(), p.GetPortfolio().GetUpdateTime().AsTime(), tt.qty, tt.cash, tt.updateAt)
		}
		if got, want := aapl.GetLastPrice(), "109.33"; got != want { // day 9's close (its bar starts at midnight): 100 + 9, (9*37) % 100
			t.Errorf("GetPortfolio as of %v: AAPL priced %s, want the close of day 9, %s", tt.at, got, want)
		}
	}

	// Before the portfolio's first movement: empty, not NOT_FOUND; far in the future: as now.
	p, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid, AsOf: timestamppb.New(month.AddDate(-1, 0, 0))})
	if err != nil || p.GetPortfolio().GetCash() != "0" || len(p.GetPositions()) != 0 || p.GetTotalValue() != "0" {
		t.Errorf("GetPortfolio as of before any movement = %v, %v; want it empty", p, err)
	}
	future, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid,
		AsOf: timestamppb.New(time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	current := a.mustGet(t, pid)
	ignore := protocmp.IgnoreFields(&portfoliov1.Portfolio{}, "update_time")
	if diff := cmp.Diff(current, future, protocmp.Transform(), ignore); diff != "" {
		t.Errorf("GetPortfolio as of the year 9000 differs from GetPortfolio now (-now +as_of):\n%s", diff)
	}
}

// replayLedger reads the portfolio's trades and ledger (ListTrades, ListCashMovements) and
// the stock service's bars (ListPrices), and returns the portfolio's value at a time, by its
// own arithmetic: quantities summed from the trades, each valued at its symbol's last bar at
// or before the time, rounded to 6 places as a trade's amount is.
func replayLedger(t *testing.T, a analyticsEnv, pid int64) func(time.Time) *portfoliov1.PortfolioValue {
	t.Helper()
	var trades []*portfoliov1.Trade
	for req := (&portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: "execute_time", PageSize: 3}); ; {
		resp, err := a.client.ListTrades(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		trades = append(trades, resp.GetTrades()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	var movements []*portfoliov1.CashMovement
	for req := (&portfoliov1.ListCashMovementsRequest{PortfolioId: pid, PageSize: 4}); ; {
		resp, err := a.client.ListCashMovements(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		movements = append(movements, resp.GetMovements()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	bars := map[string][]*stockv1.Price{}
	for _, sym := range []string{"AAPL", "MSFT"} {
		for req := (&stockv1.ListPricesRequest{Symbol: sym, PageSize: 10}); ; {
			resp, err := a.stock.ListPrices(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			bars[sym] = append(bars[sym], resp.GetPrices()...)
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
	}
	rat := func(s string) *big.Rat {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("not a decimal: %q", s)
		}
		return r
	}
	return func(at time.Time) *portfoliov1.PortfolioValue {
		cash, net := new(big.Rat), new(big.Rat)
		for _, m := range movements {
			if m.GetCreateTime().AsTime().After(at) {
				continue
			}
			cash.Add(cash, rat(m.GetAmount()))
			if k := m.GetKind(); k == portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_DEPOSIT || k == portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_WITHDRAWAL {
				net.Add(net, rat(m.GetAmount()))
			}
		}
		held := map[string]*big.Rat{}
		for _, tr := range trades {
			if tr.GetExecuteTime().AsTime().After(at) {
				continue
			}
			q := held[tr.GetSymbol()]
			if q == nil {
				q = new(big.Rat)
				held[tr.GetSymbol()] = q
			}
			if tr.GetSide() == sell {
				q.Sub(q, rat(tr.GetQuantity()))
			} else {
				q.Add(q, rat(tr.GetQuantity()))
			}
		}
		v := &portfoliov1.PortfolioValue{Time: timestamppb.New(at), Cash: decimal.Format(cash), NetDeposits: decimal.Format(net)}
		total, priced := new(big.Rat), true
		for _, sym := range []string{"AAPL", "MSFT"} {
			q := held[sym]
			if q == nil || q.Sign() == 0 {
				continue
			}
			var last *stockv1.Price
			for _, b := range bars[sym] {
				if !b.GetTime().AsTime().After(at) {
					last = b
				}
			}
			if last == nil {
				priced = false
				continue
			}
			total.Add(total, decimal.Round(decimal.Mul(q, rat(last.GetClose()))))
		}
		if priced {
			v.PositionsValue = decimal.Format(total)
			v.TotalValue = decimal.Format(decimal.Add(cash, total))
			if len(held) > 0 && total.Sign() != 0 {
				v.PositionsValues = []*portfoliov1.CurrencyValue{{Currency: "USD", PositionsValue: v.PositionsValue}}
			}
		}
		return v
	}
}

// TestGetPortfolioPnl_byHand: buy 10 @100, buy 10 @120 (average 110), sell 5 @130: realized
// 5 × (130 - 110) = 100, unrealized 15 × 130 - 1650 = 300; sell the 15 left @90: realized
// 100 + 15 × (90 - 110) = -200, a closed position (unrealized 0, no average cost); reopen with
// 2 @95. P&L as of a time between the trades answers what the portfolio had then.
func TestGetPortfolioPnl_byHand(t *testing.T) {
	t.Parallel()
	a := newAnalyticsEnv(t, nil)
	pid := a.newPortfolio(t, "pnl@example.com", "100000")
	if _, err := a.stock.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "PNL", Name: "PnL Inc."}}}); err != nil {
		t.Fatal(err)
	}
	trade := func(side portfoliov1.Side, qty, price, rid string) *portfoliov1.Trade {
		t.Helper()
		a.priceNow(t, "PNL", price)
		return a.mustTrade(t, pid, side, "PNL", qty, rid).GetTrade()
	}
	as := authtest.As(t, "pnl@example.com")
	pnl := func(asOf *timestamppb.Timestamp) *portfoliov1.GetPortfolioPnlResponse {
		t.Helper()
		resp, err := a.user.GetPortfolioPnl(t.Context(), &portfoliov1.GetPortfolioPnlRequest{PortfolioId: pid, AsOf: asOf}, as)
		if err != nil {
			t.Fatalf("GetPortfolioPnl: %v", err)
		}
		return resp
	}
	check := func(step string, got *portfoliov1.GetPortfolioPnlResponse, want *portfoliov1.SymbolPnl, total *portfoliov1.CurrencyPnl) {
		t.Helper()
		want.Symbol, want.Currency, total.Currency = "PNL", "USD", "USD"
		ignore := protocmp.IgnoreFields(&portfoliov1.SymbolPnl{}, "price_time")
		if diff := cmp.Diff([]*portfoliov1.SymbolPnl{want}, got.GetSymbols(), protocmp.Transform(), ignore); diff != "" {
			t.Errorf("%s: symbols mismatch (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff([]*portfoliov1.CurrencyPnl{total}, got.GetTotals(), protocmp.Transform()); diff != "" {
			t.Errorf("%s: totals mismatch (-want +got):\n%s", step, diff)
		}
	}

	trade(buy, "10", "100", "b1")
	trade(buy, "10", "120", "b2")
	partial := trade(sell, "5", "130", "s1")
	check("after the partial sale", pnl(nil),
		&portfoliov1.SymbolPnl{Quantity: "15", AverageCost: "110", CostBasis: "1650", RealizedPnl: "100", UnrealizedPnl: "300", LastPrice: "130"},
		&portfoliov1.CurrencyPnl{RealizedPnl: "100", UnrealizedPnl: "300", TotalPnl: "400"})
	trade(sell, "15", "90", "s2")
	check("closed", pnl(nil),
		&portfoliov1.SymbolPnl{Quantity: "0", CostBasis: "0", RealizedPnl: "-200", UnrealizedPnl: "0", LastPrice: "90"},
		&portfoliov1.CurrencyPnl{RealizedPnl: "-200", UnrealizedPnl: "0", TotalPnl: "-200"})
	trade(buy, "2", "95", "b3")
	a.priceNow(t, "PNL", "97.5")
	check("reopened", pnl(nil),
		&portfoliov1.SymbolPnl{Quantity: "2", AverageCost: "95", CostBasis: "190", RealizedPnl: "-200", UnrealizedPnl: "5", LastPrice: "97.5"},
		&portfoliov1.CurrencyPnl{RealizedPnl: "-200", UnrealizedPnl: "5", TotalPnl: "-195"})

	at := partial.GetExecuteTime()
	got := pnl(at)
	check("as of the partial sale", got,
		&portfoliov1.SymbolPnl{Quantity: "15", AverageCost: "110", CostBasis: "1650", RealizedPnl: "100", UnrealizedPnl: "300", LastPrice: "130"},
		&portfoliov1.CurrencyPnl{RealizedPnl: "100", UnrealizedPnl: "300", TotalPnl: "400"})
	if !got.GetAsOf().AsTime().Equal(at.AsTime()) {
		t.Errorf("as_of = %v, want the request's %v", got.GetAsOf().AsTime(), at.AsTime())
	}
	// The stored position is the replay's: same quantity and average cost.
	if p := a.mustGet(t, pid).GetPositions()[0]; p.GetQuantity() != "2" || p.GetAverageCost() != "95" || p.GetUnrealizedPnl() != "5" {
		t.Errorf("GetPortfolio position %v, want 2 at 95, unrealized 5 as GetPortfolioPnl says", p)
	}
	// Before any trade: nothing traded.
	if got := pnl(timestamppb.New(time.Now().Add(-24 * time.Hour))); len(got.GetSymbols()) != 0 || len(got.GetTotals()) != 0 {
		t.Errorf("GetPortfolioPnl before any trade = %v, want no symbols", got)
	}
}

// TestAnalytics_refused: another user's portfolio is NOT_FOUND, as a missing one; bad input is
// INVALID_ARGUMENT naming the field; with the stock service down, P&L and value history are
// UNAVAILABLE (PEER_UNAVAILABLE) while GetPortfolio as_of answers without values.
func TestAnalytics_refused(t *testing.T) {
	t.Parallel()
	a := newAnalyticsEnv(t, map[string]string{"STOCK_BREAKER_OPEN_TIMEOUT": "500ms"})
	pid := a.newPortfolio(t, "owner@example.com", "1000")
	a.mustTrade(t, pid, buy, "AAPL", "1", "t")
	if _, err := a.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "other@example.com"}); err != nil {
		t.Fatal(err)
	}
	other := authtest.As(t, "other@example.com")
	now := time.Now()
	ts := timestamppb.New
	valuesReq := func() *portfoliov1.ListPortfolioValuesRequest {
		return &portfoliov1.ListPortfolioValuesRequest{PortfolioId: pid, StartTime: ts(now.Add(-72 * time.Hour)), EndTime: ts(now),
			Interval: stockv1.Interval_INTERVAL_DAY}
	}
	for _, id := range []int64{pid, pid + 1000} {
		_, err := a.user.GetPortfolioPnl(t.Context(), &portfoliov1.GetPortfolioPnlRequest{PortfolioId: id}, other)
		apptest.WantReason(t, err, apierr.PortfolioNotFound, nil)
		r := valuesReq()
		r.PortfolioId = id
		_, err = a.user.ListPortfolioValues(t.Context(), r, other)
		apptest.WantReason(t, err, apierr.PortfolioNotFound, nil)
		_, err = a.user.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: id, AsOf: ts(now)}, other)
		apptest.WantReason(t, err, apierr.PortfolioNotFound, nil)
	}

	bad := []struct {
		name, field string
		call        func() error
	}{
		{"values: end before start", "end_time", func() error {
			r := valuesReq()
			r.StartTime, r.EndTime = r.EndTime, r.StartTime
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: no start", "start_time", func() error {
			r := valuesReq()
			r.StartTime = nil
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: interval unset", "interval", func() error {
			r := valuesReq()
			r.Interval = stockv1.Interval_INTERVAL_UNSPECIFIED
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: page size negative", "page_size", func() error {
			r := valuesReq()
			r.PageSize = -1
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: token with NUL", "page_token", func() error {
			r := valuesReq()
			r.PageToken = "abc\x00"
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: token of another range", "page_token", func() error {
			r := valuesReq()
			r.PageSize = 1
			resp, err := a.client.ListPortfolioValues(t.Context(), r)
			if err != nil || resp.GetNextPageToken() == "" {
				return fmt.Errorf("first page: %v, token %q", err, resp.GetNextPageToken())
			}
			r.PageToken, r.StartTime = resp.GetNextPageToken(), ts(now.Add(-96*time.Hour))
			_, err = a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"values: invalid time", "end_time", func() error {
			r := valuesReq()
			r.EndTime = &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
			_, err := a.client.ListPortfolioValues(t.Context(), r)
			return err
		}},
		{"pnl: invalid as_of", "as_of", func() error {
			_, err := a.client.GetPortfolioPnl(t.Context(), &portfoliov1.GetPortfolioPnlRequest{PortfolioId: pid,
				AsOf: &timestamppb.Timestamp{Seconds: 253402300800}}) // year 10000
			return err
		}},
		{"pnl: no portfolio", "portfolio_id", func() error {
			_, err := a.client.GetPortfolioPnl(t.Context(), &portfoliov1.GetPortfolioPnlRequest{})
			return err
		}},
		{"get: invalid as_of", "as_of", func() error {
			_, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid,
				AsOf: &timestamppb.Timestamp{Seconds: -62135596801}})
			return err
		}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) { wantFieldViolation(t, tt.call(), tt.field) })
	}
	// A page of 1000 points is the largest: a larger page_size is cut to it.
	r := valuesReq()
	r.StartTime, r.EndTime, r.PageSize = ts(now.AddDate(-5, 0, 0)), ts(now), 5000
	resp, err := a.client.ListPortfolioValues(t.Context(), r)
	if err != nil || len(resp.GetValues()) != 1000 || resp.GetNextPageToken() == "" {
		t.Errorf("ListPortfolioValues over 5 years with page_size 5000 = %d points, token %q, %v; want 1000 and a token",
			len(resp.GetValues()), resp.GetNextPageToken(), err)
	}

	a.stockProc.Stop(t)
	_, err = a.client.GetPortfolioPnl(t.Context(), &portfoliov1.GetPortfolioPnlRequest{PortfolioId: pid})
	apptest.WantCode(t, err, codes.Unavailable)
	apptest.WantReason(t, err, apierr.PeerUnavailable, map[string]string{"peer": "stock"})
	r = valuesReq()
	r.EndTime = ts(now.Add(48 * time.Hour)) // a point after the trade: AAPL is held
	_, err = a.client.ListPortfolioValues(t.Context(), r)
	apptest.WantCode(t, err, codes.Unavailable)
	apptest.WantReason(t, err, apierr.PeerUnavailable, map[string]string{"peer": "stock"})
	p, err := a.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid, AsOf: ts(time.Now())})
	if err != nil || p.GetPositions()[0].GetQuantity() != "1" || p.GetTotalValue() != "" {
		t.Errorf("GetPortfolio as of now with the stock service down = %v, %v; want the position without values", p, err)
	}
}

// TestListPortfolioValues_currenciesAndSymbols: a position priced in another currency (bought
// across currencies before that was refused: written here as such a trade was) is valued in its
// own currency, never added to the portfolio's: positions_values has both, positions_value and
// total_value stay empty. A page whose points hold more than 200 symbols is FAILED_PRECONDITION.
func TestListPortfolioValues_currenciesAndSymbols(t *testing.T) {
	t.Parallel()
	a := newAnalyticsEnv(t, nil)
	pid := a.newPortfolio(t, "fx@example.com", "1000")
	a.mustTrade(t, pid, buy, "AAPL", "2", "aapl")
	const legacy = `
		INSERT INTO portfolio.trades (portfolio_id, symbol, side, quantity, price, amount, request_id, request_hash)
		SELECT $1, s, 'SIDE_BUY', 1, 10, 10, 'legacy-' || s, '\x00' FROM unnest($2::text[]) AS s`
	if _, err := a.pool.Exec(t.Context(), legacy, pid, []string{"SAP"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	req := &portfoliov1.ListPortfolioValuesRequest{PortfolioId: pid, StartTime: timestamppb.New(now),
		EndTime: timestamppb.New(now.Add(36 * time.Hour)), Interval: stockv1.Interval_INTERVAL_DAY}
	resp, err := a.client.ListPortfolioValues(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := &portfoliov1.PortfolioValue{Cash: "800", NetDeposits: "1000", PositionsValues: []*portfoliov1.CurrencyValue{
		{Currency: "EUR", PositionsValue: "120"}, {Currency: "USD", PositionsValue: "200"}}}
	ignore := protocmp.IgnoreFields(&portfoliov1.PortfolioValue{}, "time")
	if len(resp.GetValues()) == 0 {
		t.Fatalf("no points in %v", resp)
	}
	if diff := cmp.Diff(want, resp.GetValues()[0], protocmp.Transform(), ignore); diff != "" {
		t.Errorf("value with a EUR position in a USD portfolio (-want +got):\n%s", diff)
	}

	var symbols []string
	for i := range 200 {
		symbols = append(symbols, fmt.Sprintf("S%03d", i))
	}
	if _, err := a.pool.Exec(t.Context(), legacy, pid, symbols); err != nil { // 202 symbols held with AAPL and SAP
		t.Fatal(err)
	}
	_, err = a.client.ListPortfolioValues(t.Context(), req)
	apptest.WantCode(t, err, codes.FailedPrecondition)
	apptest.WantReason(t, err, apierr.FailedPrecondition, map[string]string{"symbols": "202", "max_symbols": "200"})
	// The points before the trades hold nothing: answered.
	req.StartTime, req.EndTime = timestamppb.New(now.AddDate(0, 0, -3)), timestamppb.New(now.AddDate(0, 0, -1))
	if _, err := a.client.ListPortfolioValues(t.Context(), req); err != nil {
		t.Errorf("ListPortfolioValues before the trades: %v", err)
	}
}
