package ledger_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/ledger"
)

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad test decimal " + s)
	}
	return r
}

// fill is a Fill as text: cash, amount and position as the API and the store write them.
type fill struct {
	Amount, Cash, Movement, Quantity, CostBasis string
}

func text(f ledger.Fill) fill {
	return fill{Amount: decimal.Format(f.Amount), Cash: decimal.Format(f.Cash), Movement: decimal.Format(f.Movement),
		Quantity: decimal.Format(f.Position.Quantity), CostBasis: f.Position.CostBasis.FloatString(ledger.CostDigits)}
}

// refusal is what a refused call must return: the status code, the reason, its metadata
// and the message.
type refusal struct {
	Code     codes.Code
	Reason   apierr.Reason
	Metadata map[string]string
	Message  string
}

func refusalOf(t *testing.T, err error) *refusal {
	t.Helper()
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is no status", err)
	}
	info := apierr.Info(st)
	return &refusal{Code: st.Code(), Reason: apierr.Reason(info.GetReason()), Metadata: info.GetMetadata(), Message: st.Message()}
}

// max is decimal.Max as text: the largest cash numeric(20, 6) holds.
const max = "99999999999999.999999"

func holding(cash, qty, cost string) ledger.Holding {
	return ledger.Holding{PortfolioID: 7, Symbol: "AAPL", Cash: rat(cash), Position: ledger.Position{Quantity: rat(qty), CostBasis: rat(cost)}}
}

// call is one ledger call with its outcome as text: a fill, or the cash after a movement.
type call func(t *testing.T) (any, error)

func trade(apply func(ledger.Holding, *big.Rat, *big.Rat) (ledger.Fill, error), h ledger.Holding, qty, price string) call {
	return func(t *testing.T) (any, error) {
		before := text(ledger.Fill{Amount: new(big.Rat), Cash: h.Cash, Movement: new(big.Rat), Position: h.Position})
		f, err := apply(h, rat(qty), rat(price))
		after := text(ledger.Fill{Amount: new(big.Rat), Cash: h.Cash, Movement: new(big.Rat), Position: h.Position})
		if before != after {
			t.Errorf("the holding changed from %+v to %+v: Buy and Sell must not touch their input", before, after)
		}
		if err != nil {
			return nil, err
		}
		return text(f), nil
	}
}

func buy(h ledger.Holding, qty, price string) call  { return trade(ledger.Buy, h, qty, price) }
func sell(h ledger.Holding, qty, price string) call { return trade(ledger.Sell, h, qty, price) }

func move(apply func(int64, *big.Rat, *big.Rat) (*big.Rat, error), cash, amount string) call {
	return func(*testing.T) (any, error) {
		after, err := apply(7, rat(cash), rat(amount))
		if err != nil {
			return nil, err
		}
		return decimal.Format(after), nil
	}
}

func deposit(cash, amount string) call  { return move(ledger.Deposit, cash, amount) }
func withdraw(cash, amount string) call { return move(ledger.Withdraw, cash, amount) }

// TestRules: what each call writes, or why it is refused. The refusals are those the API
// returned before the rules left the transactions, with the same codes, reasons, metadata
// and messages.
func TestRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		call    call
		want    any // fill or cash; nil when refused
		refused *refusal
	}{
		{name: "first buy", call: buy(holding("10000", "0", "0"), "10", "100"),
			want: fill{Amount: "1000", Cash: "9000", Movement: "-1000", Quantity: "10", CostBasis: "1000.000000000000"}},
		{name: "buy averages the cost", call: buy(holding("9000", "10", "1000"), "10", "200.5"),
			want: fill{Amount: "2005", Cash: "6995", Movement: "-2005", Quantity: "20", CostBasis: "3005.000000000000"}},
		{name: "buy spends all cash", call: buy(holding("1000", "0", "0"), "10", "100"),
			want: fill{Amount: "1000", Cash: "0", Movement: "-1000", Quantity: "10", CostBasis: "1000.000000000000"}},
		{name: "amount rounds half away from zero", call: buy(holding("10", "0", "0"), "0.5", "0.000001"),
			want: fill{Amount: "0.000001", Cash: "9.999999", Movement: "-0.000001", Quantity: "0.5", CostBasis: "0.000001000000"}},
		{name: "overdraft", call: buy(holding("9000", "10", "1000"), "90.01", "100"),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.InsufficientCash,
				Metadata: map[string]string{"portfolio_id": "7", "available": "9000", "required": "9001"},
				Message:  "insufficient cash: portfolio 7 has 9000, buying 90.01 AAPL costs 9001"}},
		{name: "sale keeps the average cost", call: sell(holding("0", "3", "100"), "1", "50"),
			want: fill{Amount: "50", Cash: "50", Movement: "50", Quantity: "2", CostBasis: "66.666666666667"}},
		{name: "sale of all costs nothing", call: sell(holding("9000", "10", "1000"), "10", "120"),
			want: fill{Amount: "1200", Cash: "10200", Movement: "1200", Quantity: "0", CostBasis: "0.000000000000"}},
		{name: "oversell", call: sell(holding("9000", "10", "1000"), "10.5", "100"),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.Oversell,
				Metadata: map[string]string{"portfolio_id": "7", "symbol": "AAPL", "held": "10", "requested": "10.5"},
				Message:  "cannot sell 10.5 AAPL: portfolio 7 holds 10"}},
		{name: "sell unheld", call: sell(holding("9000", "0", "0"), "1", "100"),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.Oversell,
				Metadata: map[string]string{"portfolio_id": "7", "symbol": "AAPL", "held": "0", "requested": "1"},
				Message:  "cannot sell 1 AAPL: portfolio 7 holds 0"}},
		{name: "sale up to the balance limit", call: sell(holding("99999999999998.999999", "1", "1"), "1", "1"),
			want: fill{Amount: "1", Cash: max, Movement: "1", Quantity: "0", CostBasis: "0.000000000000"}},
		// Was INTERNAL: PostgreSQL refused the cash (SQLSTATE 22003) after every check had passed.
		{name: "sale past the balance limit", call: sell(holding(max, "1", "1"), "1", "0.000001"),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.BalanceLimit,
				Metadata: map[string]string{"portfolio_id": "7", "cash": max, "amount": "0.000001", "limit": max},
				Message:  "balance limit: portfolio 7 has " + max + ", selling 1 AAPL for 0.000001 would take it past " + max}},
		{name: "deposit", call: deposit("0", "1250.5"), want: "1250.5"},
		{name: "deposit to the limit", call: deposit("1", "99999999999998.999999"), want: max},
		{name: "deposit past the limit", call: deposit("1", max),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.BalanceLimit,
				Metadata: map[string]string{"portfolio_id": "7", "cash": "1", "amount": max, "limit": max},
				Message:  "balance limit: portfolio 7 has 1, the deposit of " + max + " would take it past " + max}},
		{name: "withdraw", call: withdraw("1000", "0.000001"), want: "999.999999"},
		{name: "withdraw all", call: withdraw("1000", "1000"), want: "0"},
		{name: "withdrawal overdraft", call: withdraw("9000", "9000.000001"),
			refused: &refusal{Code: codes.FailedPrecondition, Reason: apierr.InsufficientCash,
				Metadata: map[string]string{"portfolio_id": "7", "available": "9000", "required": "9000.000001"},
				Message:  "insufficient cash: portfolio 7 has 9000, the withdrawal needs 9000.000001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.call(t)
			if d := cmp.Diff(tt.refused, refusalOf(t, err)); d != "" {
				t.Fatalf("error %v (-want +got):\n%s", err, d)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("outcome (-want +got):\n%s", d)
			}
		})
	}
}

// TestBuySell_roundTrip: buys at several prices average their cost; selling all of it in
// parts leaves no position and no cost, however the partial sales rounded the cost basis.
func TestBuySell_roundTrip(t *testing.T) {
	t.Parallel()
	h := holding("1000", "0", "0")
	for _, buy := range [][2]string{{"3", "7.333333"}, {"0.5", "10.01"}, {"1.25", "3"}} {
		f, err := ledger.Buy(h, rat(buy[0]), rat(buy[1]))
		if err != nil {
			t.Fatal(err)
		}
		h.Cash, h.Position = f.Cash, f.Position
	}
	if got := decimal.Format(h.Position.AverageCost()); got != "6.474737" { // 30.754999 / 4.75
		t.Errorf("average cost after three buys = %s, want 6.474737", got)
	}
	for _, qty := range []string{"1", "2.75", "1"} {
		f, err := ledger.Sell(h, rat(qty), h.Position.AverageCost())
		if err != nil {
			t.Fatal(err)
		}
		h.Cash, h.Position = f.Cash, f.Position
	}
	if got := decimal.Format(h.Position.Quantity); got != "0" || h.Position.CostBasis.Sign() != 0 {
		t.Errorf("position after selling all = %s shares costing %s, want none", got, h.Position.CostBasis.FloatString(12))
	}
}

func TestPosition_valuation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		qty, cost, last        string
		wantAverage, wantValue string
		wantUnrealized         string
	}{
		{"10", "1000", "100", "100", "1000", "0"},
		{"20", "3005", "120", "150.25", "2400", "-605"},
		{"3", "100", "50", "33.333333", "150", "50"},
		{"0.5", "0.000001", "0.000001", "0.000002", "0.000001", "0"}, // value rounds as an amount does
		{"2", "66.666666666667", "40", "33.333333", "80", "13.333333"},
	}
	for _, tt := range tests {
		p := ledger.Position{Quantity: rat(tt.qty), CostBasis: rat(tt.cost)}
		value, pnl := p.Value(rat(tt.last))
		got := [3]string{decimal.Format(p.AverageCost()), decimal.Format(value), decimal.Format(pnl)}
		if want := [3]string{tt.wantAverage, tt.wantValue, tt.wantUnrealized}; got != want {
			t.Errorf("%s shares costing %s at %s: average, value, unrealized = %v, want %v", tt.qty, tt.cost, tt.last, got, want)
		}
	}
}

// TestRefusalsAreStatuses: the API returns the ledger's refusals as they are, so each must
// be a gRPC status by itself.
func TestRefusalsAreStatuses(t *testing.T) {
	t.Parallel()
	_, err := ledger.Withdraw(1, rat("0"), rat("1"))
	var st interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &st) {
		t.Fatalf("Withdraw refusal %T is no status", err)
	}
}
