package ledger

import (
	"maps"
	"math/big"
	"slices"

	"github.com/pgfleet/pgfleet/pkg/decimal"
)

// Book replays a portfolio's trades, oldest first, by the rules Buy and Sell apply as the
// trades execute, so each position it ends with is the one the portfolio stored then (same
// quantity, same cost basis to the last of CostDigits), and it keeps what the position
// table forgets: the profit realized by each sale, and the symbols sold out.
type Book struct {
	entries map[string]*Entry
}

// Entry is one symbol's replay: the position (zero once sold out) and the profit realized,
// the sum over its sales of the amount received less the cost basis the sale took off.
type Entry struct {
	Position Position
	Realized *big.Rat
}

// NewBook returns an empty Book.
func NewBook() *Book { return &Book{entries: map[string]*Entry{}} }

func (b *Book) entry(symbol string) *Entry {
	e := b.entries[symbol]
	if e == nil {
		e = &Entry{Position: Position{Quantity: new(big.Rat), CostBasis: new(big.Rat)}, Realized: new(big.Rat)}
		b.entries[symbol] = e
	}
	return e
}

// Buy records a buy of qty shares of symbol that cost amount (the trade's, as stored).
func (b *Book) Buy(symbol string, qty, amount *big.Rat) {
	e := b.entry(symbol)
	e.Position = e.Position.bought(qty, amount)
}

// Sell records a sale of qty shares of symbol that brought amount: the position keeps the
// average cost of the shares left, and the sale realizes amount less the cost it took off.
func (b *Book) Sell(symbol string, qty, amount *big.Rat) {
	e := b.entry(symbol)
	after := e.Position.sold(qty)
	e.Realized = decimal.Add(e.Realized, decimal.Sub(amount, decimal.Sub(e.Position.CostBasis, after.CostBasis)))
	e.Position = after
}

// Symbols returns every symbol traded, in order.
func (b *Book) Symbols() []string { return slices.Sorted(maps.Keys(b.entries)) }

// Held returns the symbols with shares held, in order.
func (b *Book) Held() []string {
	var held []string
	for _, s := range b.Symbols() {
		if b.entries[s].Position.Quantity.Sign() > 0 {
			held = append(held, s)
		}
	}
	return held
}

// Entry returns symbol's replay (a zero one if it was never traded).
func (b *Book) Entry(symbol string) Entry {
	if e := b.entries[symbol]; e != nil {
		return *e
	}
	return Entry{Position: Position{Quantity: new(big.Rat), CostBasis: new(big.Rat)}, Realized: new(big.Rat)}
}
