package ledger_test

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/ledger"
)

// TestBook_byHand: buy 10 @100 and 10 @120 (average 110), sell 5 @130 (realizes
// 5 × (130 - 110) = 100), sell the 15 left @100 (realizes 15 × (100 - 110) = -150: -50 in
// all, a closed position costing nothing), reopen with 4 @90 (average 90, realized unchanged).
func TestBook_byHand(t *testing.T) {
	b := ledger.NewBook()
	trade := func(sell bool, qty, price string) {
		q, p := rat(qty), rat(price)
		if sell {
			b.Sell("AAA", q, ledger.Amount(q, p))
		} else {
			b.Buy("AAA", q, ledger.Amount(q, p))
		}
	}
	check := func(step, qty, avg, cost, realized string) {
		t.Helper()
		e := b.Entry("AAA")
		got := []string{decimal.Format(e.Position.Quantity), decimal.Format(e.Position.CostBasis), decimal.Format(e.Realized)}
		want := []string{qty, cost, realized}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: quantity, cost basis, realized = %v, want %v", step, got, want)
				break
			}
		}
		if avg != "" && decimal.Format(e.Position.AverageCost()) != avg {
			t.Errorf("%s: average cost %s, want %s", step, decimal.Format(e.Position.AverageCost()), avg)
		}
	}
	trade(false, "10", "100")
	trade(false, "10", "120")
	check("two buys", "20", "110", "2200", "0")
	trade(true, "5", "130")
	check("partial sale", "15", "110", "1650", "100")
	trade(true, "15", "100")
	check("closed", "0", "", "0", "-50")
	trade(false, "4", "90")
	check("reopened", "4", "90", "360", "-50")
	if got := b.Symbols(); len(got) != 1 || got[0] != "AAA" {
		t.Errorf("Symbols = %v", got)
	}
}

// TestBook_matchesFills: on random trades, the Book's position after each trade is exactly
// the one ledger.Buy and ledger.Sell wrote (what the positions table holds), and its realized
// profit is the cash the trades moved plus the cost basis still held.
func TestBook_matchesFills(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		b := ledger.NewBook()
		h := ledger.Holding{PortfolioID: 1, Symbol: "AAA", Cash: rat("1000000000"),
			Position: ledger.Position{Quantity: new(big.Rat), CostBasis: new(big.Rat)}}
		flow := new(big.Rat) // cash received less cash paid
		for i := range 30 {
			qty := new(big.Rat).SetFrac64(1+rng.Int64N(5000), 1000)
			price := new(big.Rat).SetFrac64(1+rng.Int64N(10_000_000), 10_000)
			var f ledger.Fill
			var err error
			if h.Position.Quantity.Sign() > 0 && rng.IntN(2) == 0 {
				if qty.Cmp(h.Position.Quantity) > 0 || rng.IntN(5) == 0 {
					qty = h.Position.Quantity // all of it
				}
				f, err = ledger.Sell(h, qty, price)
				b.Sell("AAA", qty, f.Amount)
			} else {
				f, err = ledger.Buy(h, qty, price)
				b.Buy("AAA", qty, f.Amount)
			}
			if err != nil {
				t.Fatalf("run %d trade %d: %v", run, i, err)
			}
			flow = decimal.Add(flow, f.Movement)
			h.Cash, h.Position = f.Cash, f.Position
			e := b.Entry("AAA")
			if e.Position.Quantity.Cmp(f.Position.Quantity) != 0 || e.Position.CostBasis.Cmp(f.Position.CostBasis) != 0 {
				t.Fatalf("run %d trade %d: book %v / %v, fills %v / %v", run, i, e.Position.Quantity, e.Position.CostBasis,
					f.Position.Quantity, f.Position.CostBasis)
			}
			if want := decimal.Add(flow, f.Position.CostBasis); e.Realized.Cmp(want) != 0 {
				t.Fatalf("run %d trade %d: realized %s, want cash flow + cost held %s", run, i, e.Realized.FloatString(12), want.FloatString(12))
			}
		}
	}
}
