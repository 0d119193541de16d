package api_test

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

const (
	buy  = portfoliov1.Side_SIDE_BUY
	sell = portfoliov1.Side_SIDE_SELL
)

// mustTrade executes a trade that must succeed.
func (e env) mustTrade(t *testing.T, pid int64, side portfoliov1.Side, symbol, qty, rid string) *portfoliov1.ExecuteTradeResponse {
	t.Helper()
	resp, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: symbol,
		Side: side, Quantity: qty, RequestId: rid})
	if err != nil {
		t.Fatalf("ExecuteTrade(%v %s %s, %q) = %v", side, qty, symbol, rid, err)
	}
	return resp
}

// mustGet returns a portfolio that must exist.
func (e env) mustGet(t *testing.T, pid int64) *portfoliov1.GetPortfolioResponse {
	t.Helper()
	resp, err := e.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid})
	if err != nil {
		t.Fatalf("GetPortfolio(%d) = %v", pid, err)
	}
	return resp
}

// count runs a SELECT count(*) on the service's database.
func (e env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// ledger returns a portfolio's cash movements, read page by page through the API.
func (e env) ledger(t *testing.T, pid int64) []*portfoliov1.CashMovement {
	t.Helper()
	var all []*portfoliov1.CashMovement
	token := ""
	for {
		resp, err := e.client.ListCashMovements(t.Context(), &portfoliov1.ListCashMovementsRequest{PortfolioId: pid, PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatalf("ListCashMovements(%d, %q) = %v", pid, token, err)
		}
		all = append(all, resp.GetMovements()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// sumAmounts adds up the amounts of movements exactly.
func sumAmounts(t *testing.T, ms []*portfoliov1.CashMovement) *big.Rat {
	t.Helper()
	sum := new(big.Rat)
	for _, m := range ms {
		a, ok := new(big.Rat).SetString(m.GetAmount())
		if !ok {
			t.Fatalf("movement %d amount %q is not a decimal", m.GetId(), m.GetAmount())
		}
		sum.Add(sum, a)
	}
	return sum
}

// wantCash fails t unless the portfolio's cash is want and its ledger sums to it.
func (e env) wantCash(t *testing.T, pid int64, want string) {
	t.Helper()
	if got := e.mustGet(t, pid).GetPortfolio().GetCash(); got != want {
		t.Errorf("cash of portfolio %d = %q, want %q", pid, got, want)
	}
	if sum := sumAmounts(t, e.ledger(t, pid)); !sameDecimal(sum.FloatString(6), want) {
		t.Errorf("ledger of portfolio %d sums to %s, want %s", pid, sum.FloatString(6), want)
	}
}

func TestExecuteTrade_buySell(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "buysell@example.com", "10000")

	got := e.mustTrade(t, pid, buy, "AAPL", "10", "buy-10")
	want := &portfoliov1.ExecuteTradeResponse{
		Trade: &portfoliov1.Trade{PortfolioId: pid, Symbol: "AAPL", Side: buy, Quantity: "10", Price: "100", Amount: "1000", RequestId: "buy-10",
			PriceTime: priceTime}, // the time of the bar it executed at
		Cash: "9000",
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.Trade{}, "id", "execute_time")); diff != "" {
		t.Errorf("ExecuteTrade(buy 10 AAPL) mismatch (-want +got):\n%s", diff)
	}
	if got.GetTrade().GetId() == 0 || got.GetTrade().GetExecuteTime() == nil {
		t.Errorf("trade %v lacks id or execute_time", got.GetTrade())
	}

	// Valued at the stock service's price: 10 x 100 = 1000, bought at 1000.
	p := e.mustGet(t, pid)
	wantP := &portfoliov1.GetPortfolioResponse{
		Positions: []*portfoliov1.Position{{Symbol: "AAPL", Quantity: "10", AverageCost: "100", LastPrice: "100",
			PriceTime: priceTime, MarketValue: "1000", UnrealizedPnl: "0", Currency: "USD"}},
		PositionsValue:  "1000",
		TotalValue:      "10000",
		PositionsValues: []*portfoliov1.CurrencyValue{{Currency: "USD", PositionsValue: "1000"}},
	}
	if diff := cmp.Diff(wantP, p, protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.GetPortfolioResponse{}, "portfolio")); diff != "" {
		t.Errorf("GetPortfolio after buying mismatch (-want +got):\n%s", diff)
	}
	if p.GetPortfolio().GetCash() != "9000" {
		t.Errorf("cash = %q, want 9000", p.GetPortfolio().GetCash())
	}

	// A partial sale keeps the average cost of the shares left.
	if got := e.mustTrade(t, pid, sell, "AAPL", "4", "sell-4"); got.GetCash() != "9400" || got.GetTrade().GetAmount() != "400" {
		t.Errorf("ExecuteTrade(sell 4 AAPL) = cash %q amount %q, want 9400 and 400", got.GetCash(), got.GetTrade().GetAmount())
	}
	wantP.Positions[0].Quantity, wantP.Positions[0].MarketValue = "6", "600"
	wantP.PositionsValue, wantP.PositionsValues[0].PositionsValue = "600", "600"
	if diff := cmp.Diff(wantP, e.mustGet(t, pid), protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.GetPortfolioResponse{}, "portfolio")); diff != "" {
		t.Errorf("GetPortfolio after selling 4 mismatch (-want +got):\n%s", diff)
	}

	// Selling the rest closes the position.
	if got := e.mustTrade(t, pid, sell, "AAPL", "6", "sell-6"); got.GetCash() != "10000" {
		t.Errorf("ExecuteTrade(sell 6 AAPL) cash = %q, want 10000", got.GetCash())
	}
	p = e.mustGet(t, pid)
	if len(p.GetPositions()) != 0 || p.GetPositionsValue() != "0" || p.GetTotalValue() != "10000" {
		t.Errorf("GetPortfolio after selling all = positions %v, positions_value %q, total_value %q; want none, 0, 10000",
			p.GetPositions(), p.GetPositionsValue(), p.GetTotalValue())
	}
	if n := e.count(t, `SELECT count(*) FROM portfolio.positions WHERE portfolio_id = $1`, pid); n != 0 {
		t.Errorf("%d position rows left after selling all, want 0", n)
	}

	// The ledger: the deposit and one movement per trade, oldest first, summing to the cash.
	var kinds []string
	for _, m := range e.ledger(t, pid) {
		kinds = append(kinds, m.GetKind().String()+" "+m.GetAmount())
	}
	wantKinds := []string{"CASH_MOVEMENT_KIND_DEPOSIT 10000", "CASH_MOVEMENT_KIND_BUY -1000",
		"CASH_MOVEMENT_KIND_SELL 400", "CASH_MOVEMENT_KIND_SELL 600"}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("ledger mismatch (-want +got):\n%s", diff)
	}
	e.wantCash(t, pid, "10000")

	// A limit that the price meets executes.
	resp, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "MSFT",
		Side: buy, Quantity: "2", LimitPrice: "200.5", RequestId: "limit-ok"})
	if err != nil || resp.GetTrade().GetAmount() != "401" || resp.GetCash() != "9599" {
		t.Errorf("ExecuteTrade(buy 2 MSFT limit 200.5) = %v, %v; want amount 401, cash 9599", resp, err)
	}
}

func TestExecuteTrade_refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		call   func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64) error
		reason apierr.Reason
		md     map[string]string
	}{
		{"overdraft", tradeCall(buy, "AAPL", "90.01", ""), apierr.InsufficientCash, // 9001 > 9000
			map[string]string{"available": "9000", "required": "9001"}},
		{"oversell", tradeCall(sell, "AAPL", "10.5", ""), apierr.Oversell, // holds 10
			map[string]string{"symbol": "AAPL", "held": "10", "requested": "10.5"}},
		{"sell unheld", tradeCall(sell, "MSFT", "1", ""), apierr.Oversell, map[string]string{"held": "0"}}, // holds none
		{"buy limit", tradeCall(buy, "AAPL", "1", "99.99"), apierr.LimitNotMet, // trades at 100
			map[string]string{"price": "100", "limit_price": "99.99", "side": "SIDE_BUY"}},
		{"sell limit", tradeCall(sell, "AAPL", "1", "100.01"), apierr.LimitNotMet, map[string]string{"side": "SIDE_SELL"}},
		{"withdraw", func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64) error {
			_, err := c.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "9000.000001", RequestId: "refused"})
			return err
		}, apierr.InsufficientCash, map[string]string{"available": "9000", "required": "9000.000001"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pid := e.newPortfolio(t, fmt.Sprintf("refused%d@example.com", i), "10000")
			e.mustTrade(t, pid, buy, "AAPL", "10", "setup")

			err := tt.call(t.Context(), e.client, pid)
			apptest.WantCode(t, err, codes.FailedPrecondition)
			if msg := status.Convert(err).Message(); msg == "" {
				t.Error("FAILED_PRECONDITION without a message")
			}
			tt.md["portfolio_id"] = strconv.FormatInt(pid, 10)
			if tt.reason == apierr.LimitNotMet {
				delete(tt.md, "portfolio_id")
			}
			apptest.WantReason(t, err, tt.reason, tt.md)
			// Nothing written: cash, ledger, trades and position as before.
			e.wantCash(t, pid, "9000")
			if n := e.count(t, `SELECT count(*) FROM portfolio.trades WHERE portfolio_id = $1`, pid); n != 1 {
				t.Errorf("%d trades, want 1", n)
			}
			if n := e.count(t, `SELECT count(*) FROM portfolio.cash_movements WHERE portfolio_id = $1`, pid); n != 2 {
				t.Errorf("%d cash movements, want 2", n)
			}
			if ps := e.mustGet(t, pid).GetPositions(); len(ps) != 1 || ps[0].GetQuantity() != "10" {
				t.Errorf("positions = %v, want 10 AAPL", ps)
			}
		})
	}
}

// tradeCall returns a call executing one trade with request_id "refused".
func tradeCall(side portfoliov1.Side, symbol, qty, limit string) func(context.Context, portfoliov1.PortfolioServiceClient, int64) error {
	return func(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64) error {
		_, err := c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: symbol, Side: side,
			Quantity: qty, LimitPrice: limit, RequestId: "refused"})
		return err
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "notfound@example.com", "1000")
	const missing = 1 << 40
	tests := []struct {
		name string
		call func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error
	}{
		{"ExecuteTrade unknown symbol", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "ZZZZ", Side: buy, Quantity: "1", RequestId: "zzzz"})
			return err
		}},
		{"ExecuteTrade unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: missing, Symbol: "AAPL", Side: buy, Quantity: "1", RequestId: "r"})
			return err
		}},
		{"Deposit unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: missing, Amount: "1", RequestId: "r"})
			return err
		}},
		{"Withdraw unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: missing, Amount: "1", RequestId: "r"})
			return err
		}},
		{"GetPortfolio unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.GetPortfolio(ctx, &portfoliov1.GetPortfolioRequest{PortfolioId: missing})
			return err
		}},
		{"ListTrades unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: missing})
			return err
		}},
		{"ListCashMovements unknown portfolio", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ListCashMovements(ctx, &portfoliov1.ListCashMovementsRequest{PortfolioId: missing})
			return err
		}},
		{"GetUser unknown user", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.GetUser(ctx, &portfoliov1.GetUserRequest{UserId: missing})
			return err
		}},
		{"CreatePortfolio unknown user", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: missing, Name: "main"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apptest.WantCode(t, tt.call(t.Context(), e.client), codes.NotFound)
			e.wantNothingWritten(t)
		})
	}
}

// wantNothingWritten fails t if the database holds a trade or any cash movement but the seed
// deposit of the one portfolio: the checks of tests whose calls must all be refused.
func (e env) wantNothingWritten(t *testing.T) {
	t.Helper()
	if n := e.count(t, `SELECT count(*) FROM portfolio.trades`); n != 0 {
		t.Errorf("%d trades after refused calls, want 0", n)
	}
	if n := e.count(t, `SELECT count(*) FROM portfolio.cash_movements`); n != 1 {
		t.Errorf("%d cash movements after refused calls, want only the seed deposit", n)
	}
}

func TestCreateUser_alreadyExists(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "Ada.Lovelace@Example.com", DisplayName: "Ada"})
	if err != nil {
		t.Fatalf("CreateUser = %v", err)
	}
	_, err = e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "ada.lovelace@example.COM"})
	apptest.WantCode(t, err, codes.AlreadyExists)

	uid := u.GetUser().GetId()
	p, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "main"})
	if err != nil {
		t.Fatalf("CreatePortfolio = %v", err)
	}
	if got := p.GetPortfolio(); got.GetCurrency() != "USD" || got.GetCash() != "0" || got.GetUserId() != uid {
		t.Errorf("CreatePortfolio = %v, want an empty USD portfolio of user %d", got, uid)
	}
	_, err = e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: "main"})
	apptest.WantCode(t, err, codes.AlreadyExists)
}

// fieldCall is one RPC with one bad field.
type fieldCall func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error

func TestValidate_invalidArgument(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "valid@example.com", "1000")

	trade := func(edit func(r *portfoliov1.ExecuteTradeRequest)) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			r := &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL", Side: buy, Quantity: "1", RequestId: "v"}
			edit(r)
			_, err := c.ExecuteTrade(ctx, r)
			return err
		}
	}
	deposit := func(edit func(r *portfoliov1.DepositRequest)) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			r := &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "1", RequestId: "v"}
			edit(r)
			_, err := c.Deposit(ctx, r)
			return err
		}
	}
	withdraw := func(edit func(r *portfoliov1.WithdrawRequest)) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			r := &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "1", RequestId: "v"}
			edit(r)
			_, err := c.Withdraw(ctx, r)
			return err
		}
	}
	createUser := func(email, name string) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: email, DisplayName: name})
			return err
		}
	}
	createPortfolio := func(uid int64, name, currency string) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: uid, Name: name, Currency: currency})
			return err
		}
	}
	listTrades := func(r *portfoliov1.ListTradesRequest) fieldCall {
		return func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ListTrades(ctx, r)
			return err
		}
	}
	tests := []struct {
		name  string
		call  fieldCall
		field string
	}{
		{"CreateUser email without @", createUser("ada.example.com", ""), "email"},
		{"CreateUser email empty", createUser("", ""), "email"},
		{"CreateUser email with space", createUser("ada lovelace@example.com", ""), "email"},
		{"CreateUser email two @", createUser("ada@lovelace@example.com", ""), "email"},
		{"CreateUser display_name too long", createUser("ada@example.com", strings.Repeat("a", 201)), "display_name"},
		{"GetUser user_id zero", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.GetUser(ctx, &portfoliov1.GetUserRequest{})
			return err
		}, "user_id"},
		{"CreatePortfolio user_id negative", createPortfolio(-1, "main", ""), "user_id"},
		{"CreatePortfolio name empty", createPortfolio(1, "", ""), "name"},
		{"CreatePortfolio currency lower case", createPortfolio(1, "main", "usd"), "currency"},
		{"CreatePortfolio currency too long", createPortfolio(1, "main", "USDT"), "currency"},
		{"GetPortfolio portfolio_id negative", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.GetPortfolio(ctx, &portfoliov1.GetPortfolioRequest{PortfolioId: -5})
			return err
		}, "portfolio_id"},
		{"ListPortfolios filter unknown field", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{Filter: `cash > 5`})
			return err
		}, "filter"},
		{"Deposit request_id missing", deposit(func(r *portfoliov1.DepositRequest) { r.RequestId = "" }), "request_id"},
		{"Deposit amount negative", deposit(func(r *portfoliov1.DepositRequest) { r.Amount = "-5" }), "amount"},
		{"Deposit amount zero", deposit(func(r *portfoliov1.DepositRequest) { r.Amount = "0" }), "amount"},
		{"Deposit amount garbage", deposit(func(r *portfoliov1.DepositRequest) { r.Amount = "ten" }), "amount"},
		{"Deposit amount exponent", deposit(func(r *portfoliov1.DepositRequest) { r.Amount = "1e3" }), "amount"},
		{"Deposit amount 7 decimals", deposit(func(r *portfoliov1.DepositRequest) { r.Amount = "0.0000001" }), "amount"},
		{"Deposit portfolio_id missing", deposit(func(r *portfoliov1.DepositRequest) { r.PortfolioId = 0 }), "portfolio_id"},
		{"Withdraw amount missing", withdraw(func(r *portfoliov1.WithdrawRequest) { r.Amount = "" }), "amount"},
		{"Withdraw request_id too long", withdraw(func(r *portfoliov1.WithdrawRequest) { r.RequestId = strings.Repeat("r", 101) }), "request_id"},
		{"ExecuteTrade request_id missing", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.RequestId = "" }), "request_id"},
		{"ExecuteTrade quantity negative", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Quantity = "-1" }), "quantity"},
		{"ExecuteTrade quantity garbage", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Quantity = "1O" }), "quantity"},
		{"ExecuteTrade quantity missing", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Quantity = "" }), "quantity"},
		{"ExecuteTrade side unspecified", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Side = portfoliov1.Side_SIDE_UNSPECIFIED }), "side"},
		{"ExecuteTrade side out of range", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Side = 7 }), "side"},
		{"ExecuteTrade symbol lower case", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Symbol = "aapl" }), "symbol"},
		{"ExecuteTrade symbol missing", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.Symbol = "" }), "symbol"},
		{"ExecuteTrade limit_price zero", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.LimitPrice = "0" }), "limit_price"},
		{"ExecuteTrade portfolio_id missing", trade(func(r *portfoliov1.ExecuteTradeRequest) { r.PortfolioId = 0 }), "portfolio_id"},
		{"ListTrades portfolio_id missing", listTrades(&portfoliov1.ListTradesRequest{}), "portfolio_id"},
		{"ListTrades filter unknown field", listTrades(&portfoliov1.ListTradesRequest{PortfolioId: pid, Filter: `price > 5`}), "filter"},
		{"ListTrades filter bad enum", listTrades(&portfoliov1.ListTradesRequest{PortfolioId: pid, Filter: `side = BUY`}), "filter"},
		{"ListTrades order_by unsortable", listTrades(&portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: "amount"}), "order_by"},
		{"ListTrades page_size negative", listTrades(&portfoliov1.ListTradesRequest{PortfolioId: pid, PageSize: -1}), "page_size"},
		{"ListTrades page_token garbage", listTrades(&portfoliov1.ListTradesRequest{PortfolioId: pid, PageToken: "garbage"}), "page_token"},
		{"ListCashMovements portfolio_id missing", func(ctx context.Context, c portfoliov1.PortfolioServiceClient) error {
			_, err := c.ListCashMovements(ctx, &portfoliov1.ListCashMovementsRequest{})
			return err
		}, "portfolio_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(t.Context(), e.client)
			apptest.WantCode(t, err, codes.InvalidArgument)
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
						if v.GetDescription() == "" {
							t.Errorf("violation of %s has no description", v.GetField())
						}
					}
				}
			}
			if diff := cmp.Diff([]string{tt.field}, fields); diff != "" {
				t.Errorf("field violations of %v mismatch (-want +got):\n%s", err, diff)
			}
			e.wantNothingWritten(t)
		})
	}
}

// concurrently runs f from n goroutines released together and returns their results.
func concurrently[T any](n int, f func() (T, error)) ([]T, []error) {
	out, errs := make([]T, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return out, errs
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const clients = 16

	countTrades := func(t *testing.T, pid int64) int {
		return e.count(t, `SELECT count(*) FROM portfolio.trades WHERE portfolio_id = $1`, pid)
	}
	countMovements := func(t *testing.T, pid int64, rid string) int {
		return e.count(t, `SELECT count(*) FROM portfolio.cash_movements WHERE portfolio_id = $1 AND request_id = $2`, pid, rid)
	}
	tradeReq := func(pid int64, qty string) *portfoliov1.ExecuteTradeRequest {
		return &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL", Side: buy, Quantity: qty, RequestId: "same"}
	}

	t.Run("trade repeated", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "trade-repeated@example.com", "10000")
		var ids []int64
		for i := range 3 {
			resp, err := e.client.ExecuteTrade(t.Context(), tradeReq(pid, "10"))
			if err != nil {
				t.Fatalf("ExecuteTrade = %v", err)
			}
			ids = append(ids, resp.GetTrade().GetId())
			// A repeat reports the cash right after the trade, not today's.
			if resp.GetCash() != "9000" {
				t.Errorf("call %d: cash = %q, want 9000", i, resp.GetCash())
			}
			if i == 0 {
				if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "500", RequestId: "later"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ids[0] == 0 || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Errorf("trade ids of 3 calls with one request_id = %v, want one id", ids)
		}
		if n := countTrades(t, pid); n != 1 {
			t.Errorf("%d trades, want 1", n)
		}
		e.wantCash(t, pid, "9500")
	})

	t.Run("trade concurrent", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "trade-concurrent@example.com", "10000")
		resps, errs := concurrently(clients, func() (*portfoliov1.ExecuteTradeResponse, error) {
			return e.client.ExecuteTrade(t.Context(), tradeReq(pid, "10"))
		})
		ids := map[int64]int{}
		for i, err := range errs {
			if err != nil {
				t.Errorf("call %d: ExecuteTrade = %v", i, err)
				continue
			}
			ids[resps[i].GetTrade().GetId()]++
		}
		if len(ids) != 1 {
			t.Errorf("trade ids of %d concurrent calls with one request_id = %v, want one", clients, ids)
		}
		if n := countTrades(t, pid); n != 1 {
			t.Errorf("%d trades, want 1", n)
		}
		e.wantCash(t, pid, "9000")
	})

	t.Run("trade reused for another request", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "trade-reused@example.com", "10000")
		if _, err := e.client.ExecuteTrade(t.Context(), tradeReq(pid, "10")); err != nil {
			t.Fatalf("ExecuteTrade = %v", err)
		}
		for _, r := range []*portfoliov1.ExecuteTradeRequest{
			tradeReq(pid, "11"),
			{PortfolioId: pid, Symbol: "MSFT", Side: buy, Quantity: "10", RequestId: "same"},
			{PortfolioId: pid, Symbol: "AAPL", Side: sell, Quantity: "10", RequestId: "same"},
			{PortfolioId: pid, Symbol: "AAPL", Side: buy, Quantity: "10", LimitPrice: "150", RequestId: "same"},
		} {
			_, err := e.client.ExecuteTrade(t.Context(), r)
			apptest.WantCode(t, err, codes.AlreadyExists)
		}
		// The same request spelled differently is a repeat, not a conflict.
		if _, err := e.client.ExecuteTrade(t.Context(), tradeReq(pid, "10.000")); err != nil {
			t.Errorf("ExecuteTrade(quantity 10.000 after 10) = %v, want the first trade", err)
		}
		if n := countTrades(t, pid); n != 1 {
			t.Errorf("%d trades, want 1", n)
		}
		e.wantCash(t, pid, "9000")
	})

	depositReq := func(pid int64, amount string) *portfoliov1.DepositRequest {
		return &portfoliov1.DepositRequest{PortfolioId: pid, Amount: amount, RequestId: "same"}
	}

	t.Run("deposit repeated", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "deposit-repeated@example.com", "1000")
		var ids []int64
		for range 3 {
			resp, err := e.client.Deposit(t.Context(), depositReq(pid, "250.5"))
			if err != nil {
				t.Fatalf("Deposit = %v", err)
			}
			ids = append(ids, resp.GetMovement().GetId())
			if got := resp.GetPortfolio().GetCash(); got != "1250.5" {
				t.Errorf("Deposit cash = %q, want 1250.5", got)
			}
		}
		if ids[0] == 0 || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Errorf("movement ids of 3 calls with one request_id = %v, want one id", ids)
		}
		if n := countMovements(t, pid, "same"); n != 1 {
			t.Errorf("%d movements, want 1", n)
		}
		e.wantCash(t, pid, "1250.5")
	})

	t.Run("deposit concurrent", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "deposit-concurrent@example.com", "1000")
		resps, errs := concurrently(clients, func() (*portfoliov1.DepositResponse, error) {
			return e.client.Deposit(t.Context(), depositReq(pid, "250.5"))
		})
		ids := map[int64]int{}
		for i, err := range errs {
			if err != nil {
				t.Errorf("call %d: Deposit = %v", i, err)
				continue
			}
			ids[resps[i].GetMovement().GetId()]++
		}
		if len(ids) != 1 {
			t.Errorf("movement ids of %d concurrent calls with one request_id = %v, want one", clients, ids)
		}
		if n := countMovements(t, pid, "same"); n != 1 {
			t.Errorf("%d movements, want 1", n)
		}
		e.wantCash(t, pid, "1250.5")
	})

	t.Run("deposit reused for another request", func(t *testing.T) {
		t.Parallel()
		pid := e.newPortfolio(t, "deposit-reused@example.com", "1000")
		if _, err := e.client.Deposit(t.Context(), depositReq(pid, "250.5")); err != nil {
			t.Fatalf("Deposit = %v", err)
		}
		_, err := e.client.Deposit(t.Context(), depositReq(pid, "250.6"))
		apptest.WantCode(t, err, codes.AlreadyExists)
		_, err = e.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "250.5", RequestId: "same"})
		apptest.WantCode(t, err, codes.AlreadyExists)
		if n := countMovements(t, pid, "same"); n != 1 {
			t.Errorf("%d movements, want 1", n)
		}
		e.wantCash(t, pid, "1250.5")
	})
}

func TestListTrades_filterAndPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "list@example.com", "100000")
	other := e.newPortfolio(t, "list-other@example.com", "100000")
	e.mustTrade(t, other, buy, "AAPL", "1", "other") // another portfolio's trade stays out

	var aaplBuys []int64
	for i, tr := range []struct {
		side   portfoliov1.Side
		symbol string
	}{{buy, "AAPL"}, {buy, "AAPL"}, {sell, "AAPL"}, {buy, "MSFT"}, {buy, "AAPL"}, {buy, "XOM"}, {buy, "AAPL"}, {sell, "MSFT"}, {buy, "AAPL"}} {
		resp := e.mustTrade(t, pid, tr.side, tr.symbol, "1", fmt.Sprintf("t%d", i))
		if tr.side == buy && tr.symbol == "AAPL" {
			aaplBuys = append(aaplBuys, resp.GetTrade().GetId())
		}
	}

	// pages lists every page of req, page_size 2, returning the ids in order.
	pages := func(t *testing.T, req *portfoliov1.ListTradesRequest) (ids []int64, sizes []int) {
		t.Helper()
		for {
			resp, err := e.client.ListTrades(t.Context(), req)
			if err != nil {
				t.Fatalf("ListTrades(%v) = %v", req, err)
			}
			sizes = append(sizes, len(resp.GetTrades()))
			for _, tr := range resp.GetTrades() {
				if tr.GetPortfolioId() != pid {
					t.Errorf("ListTrades(%d) returned trade %v of portfolio %d", pid, tr, tr.GetPortfolioId())
				}
				ids = append(ids, tr.GetId())
			}
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				return ids, sizes
			}
		}
	}

	t.Run("filter and order", func(t *testing.T) {
		t.Parallel()
		ids, sizes := pages(t, &portfoliov1.ListTradesRequest{PortfolioId: pid, Filter: `symbol = "AAPL" AND side = SIDE_BUY`,
			OrderBy: "id desc", PageSize: 2})
		want := slices.Clone(aaplBuys)
		slices.Reverse(want)
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("ids of AAPL buys, id desc, mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int{2, 2, 1}, sizes); diff != "" {
			t.Errorf("page sizes mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("order by side pages like one page", func(t *testing.T) {
		t.Parallel()
		paged, _ := pages(t, &portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: "side desc", PageSize: 2})
		whole, _ := pages(t, &portfoliov1.ListTradesRequest{PortfolioId: pid, OrderBy: "side desc", PageSize: 100})
		if len(whole) != 9 {
			t.Errorf("ListTrades(page_size 100) = %d trades, want 9", len(whole))
		}
		if diff := cmp.Diff(whole, paged); diff != "" {
			t.Errorf("pages of 2 vs one page mismatch (-one +paged):\n%s", diff)
		}
	})

	t.Run("token with another filter", func(t *testing.T) {
		t.Parallel()
		resp, err := e.client.ListTrades(t.Context(), &portfoliov1.ListTradesRequest{PortfolioId: pid, Filter: `symbol = "AAPL"`, PageSize: 2})
		if err != nil {
			t.Fatalf("ListTrades = %v", err)
		}
		_, err = e.client.ListTrades(t.Context(), &portfoliov1.ListTradesRequest{PortfolioId: pid, Filter: `symbol = "MSFT"`,
			PageSize: 2, PageToken: resp.GetNextPageToken()})
		apptest.WantCode(t, err, codes.InvalidArgument)
		_, err = e.client.ListTrades(t.Context(), &portfoliov1.ListTradesRequest{PortfolioId: other, Filter: `symbol = "AAPL"`,
			PageSize: 2, PageToken: resp.GetNextPageToken()})
		apptest.WantCode(t, err, codes.InvalidArgument)
	})
}

func TestListCashMovements_sumsToCash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "ledger@example.com", "1000.25")
	e.mustTrade(t, pid, buy, "MSFT", "1.5", "b1")  // 300.75
	e.mustTrade(t, pid, buy, "XOM", "3", "b2")     // 150.75
	e.mustTrade(t, pid, sell, "XOM", "1.25", "s1") // 62.8125
	for i, amount := range []string{"10.01", "0.000001", "99"} {
		if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: amount, RequestId: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatalf("Deposit(%s) = %v", amount, err)
		}
	}
	if _, err := e.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "500", RequestId: "w"}); err != nil {
		t.Fatalf("Withdraw = %v", err)
	}
	ms := e.ledger(t, pid)
	if len(ms) != 8 {
		t.Errorf("ListCashMovements = %d movements, want 8", len(ms))
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].GetId() <= ms[i-1].GetId() {
			t.Errorf("ledger not oldest first: movement %d after %d", ms[i].GetId(), ms[i-1].GetId())
		}
	}
	// 1000.25 - 300.75 - 150.75 + 62.8125 + 10.01 + 0.000001 + 99 - 500
	e.wantCash(t, pid, "220.572501")
}

// TestExecuteTrade_stockDown stops the stock service under a running portfolio service: trades
// fail UNAVAILABLE (fast once the client's breaker opens), reads still answer, and trading
// resumes once the stock service is back.
func TestExecuteTrade_stockDown(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	// The breaker probes again after 500ms, not the binary's 5s, which would spend half of the
	// 10s the recovery below is given before the first probe.
	e := serve(t, stock.Addr, api.New, map[string]string{"STOCK_BREAKER_OPEN_TIMEOUT": "500ms"})
	pid := e.newPortfolio(t, "down@example.com", "10000")
	first := e.mustTrade(t, pid, buy, "AAPL", "10", "before")

	stock.Stop(t)
	for i := range 8 {
		start := time.Now()
		_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
			Side: buy, Quantity: "1", RequestId: fmt.Sprintf("down-%d", i)})
		t.Logf("ExecuteTrade %d with the stock service down: %v in %v", i, status.Code(err), time.Since(start).Round(time.Millisecond))
		apptest.WantCode(t, err, codes.Unavailable)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "stock") {
			t.Errorf("UNAVAILABLE message %q does not say the stock service is the cause", msg)
		}
		apptest.WantReason(t, err, apierr.PeerUnavailable, map[string]string{"peer": "stock"})
	}

	// A repeated request needs no price.
	again := e.mustTrade(t, pid, buy, "AAPL", "10", "before")
	if again.GetTrade().GetId() != first.GetTrade().GetId() {
		t.Errorf("repeat while the stock service is down = trade %d, want %d", again.GetTrade().GetId(), first.GetTrade().GetId())
	}

	// Reads answer, positions without values.
	p := e.mustGet(t, pid)
	want := &portfoliov1.GetPortfolioResponse{Positions: []*portfoliov1.Position{{Symbol: "AAPL", Quantity: "10", AverageCost: "100"}}}
	if diff := cmp.Diff(want, p, protocmp.Transform(), protocmp.IgnoreFields(&portfoliov1.GetPortfolioResponse{}, "portfolio")); diff != "" {
		t.Errorf("GetPortfolio with the stock service down mismatch (-want +got):\n%s", diff)
	}
	e.wantCash(t, pid, "9000")
	if n := e.count(t, `SELECT count(*) FROM portfolio.trades`); n != 1 {
		t.Errorf("%d trades after failed trades, want 1", n)
	}

	stock.Start(t)
	start := time.Now()
	var err error
	for attempt := 1; time.Since(start) < 10*time.Second; attempt++ {
		_, err = e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
			Side: buy, Quantity: "1", RequestId: "after"})
		if status.Code(err) != codes.Unavailable {
			t.Logf("ExecuteTrade answered %v %v after the stock service came back, attempt %d", status.Code(err),
				time.Since(start).Round(time.Millisecond), attempt)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ExecuteTrade after the stock service came back = %v, want success within 10s", err)
	}
	e.wantCash(t, pid, "8900")
	if p := e.mustGet(t, pid); p.GetTotalValue() != "10000" {
		t.Errorf("GetPortfolio total_value = %q once prices are back, want 10000", p.GetTotalValue())
	}
}
