// Package ledger is a portfolio's book-keeping: what a buy, a sale, a deposit or a
// withdrawal does to its cash and to a position, which of them are refused and why, and
// what a position is worth at a price. It is pure (no database, no clock, no RPC): the
// API's transactions read the state under the portfolio's lock, ask the ledger, and write
// what it answers, so these rules are tested as tables without PostgreSQL.
//
// Amounts are exact (math/big.Rat, see pkg/decimal). Refusals are apierr errors, which the
// API returns as they are: FAILED_PRECONDITION with reasons INSUFFICIENT_CASH, OVERSELL and
// BALANCE_LIMIT and their metadata.
package ledger

import (
	"math/big"
	"strconv"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
)

// CostDigits is the scale a position's cost basis is kept at (its column is an unbounded
// numeric): after a partial sale (cost x left / held) it stays precise enough that average
// costs are exact to the cent for any realistic position.
const CostDigits = 12

// Position is the shares of one stock a portfolio holds and what they cost in total.
type Position struct {
	Quantity  *big.Rat // 0 when none are held
	CostBasis *big.Rat // 0 when none are held
}

// Holding is what a trade reads: a portfolio's cash and its position in the traded stock.
type Holding struct {
	PortfolioID int64
	Symbol      string
	Cash        *big.Rat
	Position    Position
}

// Fill is what an executed trade writes.
type Fill struct {
	// Amount is quantity x price rounded to decimal.Scale: what a buy costs, what a sale brings.
	Amount *big.Rat
	// Cash is the portfolio's cash after the trade.
	Cash *big.Rat
	// Movement is the cash movement the ledger records: -Amount for a buy, Amount for a sale.
	Movement *big.Rat
	// Position is the position after the trade; its Quantity is 0 once all is sold.
	Position Position
}

// Amount is what qty shares at price cost, rounded to decimal.Scale as stored.
func Amount(qty, price *big.Rat) *big.Rat { return decimal.Round(decimal.Mul(qty, price)) }

// Buy adds qty shares bought at price to h. The cost basis grows by the amount paid, so the
// average cost is the weighted average of the buys. INSUFFICIENT_CASH if the cash is short
// of the amount.
func Buy(h Holding, qty, price *big.Rat) (Fill, error) {
	amount := Amount(qty, price)
	cash := decimal.Sub(h.Cash, amount)
	if cash.Sign() < 0 {
		return Fill{}, apierr.Newf(apierr.InsufficientCash, cashMetadata(h.PortfolioID, h.Cash, amount),
			"insufficient cash: portfolio %d has %s, buying %s %s costs %s",
			h.PortfolioID, decimal.Format(h.Cash), decimal.Format(qty), h.Symbol, decimal.Format(amount))
	}
	return Fill{
		Amount:   amount,
		Cash:     cash,
		Movement: decimal.Neg(amount),
		Position: h.Position.bought(qty, amount),
	}, nil
}

// Sell takes qty shares sold at price from h. The shares left keep their average cost (the
// cost basis shrinks in proportion), and a position sold out costs nothing. OVERSELL if h
// holds fewer than qty shares; BALANCE_LIMIT if the proceeds would take the cash past what
// numeric(20, 6) holds (decimal.Max).
func Sell(h Holding, qty, price *big.Rat) (Fill, error) {
	held := h.Position.Quantity
	if held.Cmp(qty) < 0 {
		return Fill{}, apierr.Newf(apierr.Oversell, map[string]string{"portfolio_id": strconv.FormatInt(h.PortfolioID, 10),
			"symbol": h.Symbol, "held": decimal.Format(held), "requested": decimal.Format(qty)},
			"cannot sell %s %s: portfolio %d holds %s", decimal.Format(qty), h.Symbol, h.PortfolioID, decimal.Format(held))
	}
	amount := Amount(qty, price)
	cash := decimal.Add(h.Cash, amount)
	if !decimal.Fits(cash) {
		return Fill{}, apierr.Newf(apierr.BalanceLimit, balanceMetadata(h.PortfolioID, h.Cash, amount),
			"balance limit: portfolio %d has %s, selling %s %s for %s would take it past %s",
			h.PortfolioID, decimal.Format(h.Cash), decimal.Format(qty), h.Symbol, decimal.Format(amount), decimal.Format(decimal.Max))
	}
	return Fill{Amount: amount, Cash: cash, Movement: amount, Position: h.Position.sold(qty)}, nil
}

// bought is p after buying qty shares for amount: the cost basis grows by the amount paid.
func (p Position) bought(qty, amount *big.Rat) Position {
	return Position{Quantity: decimal.Add(p.Quantity, qty), CostBasis: decimal.Add(p.CostBasis, amount)}
}

// sold is p after selling qty of its shares: the shares left keep their average cost (the
// cost basis shrinks in proportion, rounded to CostDigits), and a position sold out costs
// nothing.
func (p Position) sold(qty *big.Rat) Position {
	left := decimal.Sub(p.Quantity, qty)
	if left.Sign() <= 0 {
		return Position{Quantity: new(big.Rat), CostBasis: new(big.Rat)}
	}
	return Position{Quantity: left, CostBasis: roundCost(decimal.Quo(decimal.Mul(p.CostBasis, left), p.Quantity))}
}

// roundCost rounds a cost basis to CostDigits (half away from zero), as stored.
func roundCost(r *big.Rat) *big.Rat {
	out, _ := new(big.Rat).SetString(r.FloatString(CostDigits))
	return out
}

// Deposit returns the cash after depositing amount into portfolioID's cash. BALANCE_LIMIT
// if that is more than numeric(20, 6) holds: PostgreSQL would refuse it (SQLSTATE 22003)
// after every check had passed.
func Deposit(portfolioID int64, cash, amount *big.Rat) (*big.Rat, error) {
	after := decimal.Add(cash, amount)
	if !decimal.Fits(after) {
		return nil, apierr.Newf(apierr.BalanceLimit, balanceMetadata(portfolioID, cash, amount),
			"balance limit: portfolio %d has %s, the deposit of %s would take it past %s",
			portfolioID, decimal.Format(cash), decimal.Format(amount), decimal.Format(decimal.Max))
	}
	return after, nil
}

// Withdraw returns the cash after withdrawing amount from portfolioID's cash.
// INSUFFICIENT_CASH if there is less than amount: cash never goes negative.
func Withdraw(portfolioID int64, cash, amount *big.Rat) (*big.Rat, error) {
	after := decimal.Sub(cash, amount)
	if after.Sign() < 0 {
		return nil, apierr.Newf(apierr.InsufficientCash, cashMetadata(portfolioID, cash, amount),
			"insufficient cash: portfolio %d has %s, the withdrawal needs %s",
			portfolioID, decimal.Format(cash), decimal.Format(amount))
	}
	return after, nil
}

// cashMetadata is the ErrorInfo metadata of INSUFFICIENT_CASH.
func cashMetadata(portfolioID int64, available, required *big.Rat) map[string]string {
	return map[string]string{"portfolio_id": strconv.FormatInt(portfolioID, 10),
		"available": decimal.Format(available), "required": decimal.Format(required)}
}

// balanceMetadata is the ErrorInfo metadata of BALANCE_LIMIT.
func balanceMetadata(portfolioID int64, cash, amount *big.Rat) map[string]string {
	return map[string]string{"portfolio_id": strconv.FormatInt(portfolioID, 10),
		"cash": decimal.Format(cash), "amount": decimal.Format(amount), "limit": decimal.Format(decimal.Max)}
}

// AverageCost is what a share of p cost on average; p must hold shares.
func (p Position) AverageCost() *big.Rat { return decimal.Quo(p.CostBasis, p.Quantity) }

// Value is what p is worth at price last (rounded to decimal.Scale, as a trade's amount
// is) and its unrealized profit or loss: the value less the cost basis.
func (p Position) Value(last *big.Rat) (value, unrealizedPnL *big.Rat) {
	value = Amount(p.Quantity, last)
	return value, decimal.Sub(value, p.CostBasis)
}
