package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ledger reads: a portfolio's trades and cash movements up to a time, oldest first, for the
// analytics reads that replay them. Each walks an index on (portfolio_id, time, id), which
// TestLedger_plans holds them to.
const (
	tradesUpTo = `SELECT ` + tradeColumns + ` FROM portfolio.trades
		WHERE portfolio_id = $1 AND execute_time <= $2 ORDER BY execute_time, id`
	movementsUpTo = `SELECT id, kind, amount::text AS amount, create_time FROM portfolio.cash_movements
		WHERE portfolio_id = $1 AND create_time <= $2 ORDER BY create_time, id`
	cashAt = `SELECT coalesce(sum(amount), 0)::text, max(create_time) FROM portfolio.cash_movements
		WHERE portfolio_id = $1 AND create_time <= $2`
)

// LedgerSQL returns the statements of TradesUpTo, MovementsUpTo and CashAt, for the plan tests.
func LedgerSQL() map[string]string {
	return map[string]string{"TradesUpTo": tradesUpTo, "MovementsUpTo": movementsUpTo, "CashAt": cashAt}
}

// Movement is what a replay reads of a cash movement.
type Movement struct {
	ID         int64     `db:"id"`
	Kind       string    `db:"kind"`
	Amount     string    `db:"amount"` // signed
	CreateTime time.Time `db:"create_time"`
}

// TradesUpTo returns a portfolio's trades executed at or before asOf, oldest first (id breaks
// ties: a portfolio's trades are written under its lock, in id order).
func (s *Store) TradesUpTo(ctx context.Context, portfolioID int64, asOf time.Time) ([]Trade, error) {
	rows, _ := s.db.Query(ctx, tradesUpTo, portfolioID, asOf)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Trade])
	if err != nil {
		return nil, fmt.Errorf("trades of portfolio %d up to %s: %w", portfolioID, asOf.Format(time.RFC3339Nano), err)
	}
	return list, nil
}

// MovementsUpTo returns a portfolio's cash movements made at or before asOf, oldest first.
func (s *Store) MovementsUpTo(ctx context.Context, portfolioID int64, asOf time.Time) ([]Movement, error) {
	rows, _ := s.db.Query(ctx, movementsUpTo, portfolioID, asOf)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Movement])
	if err != nil {
		return nil, fmt.Errorf("cash movements of portfolio %d up to %s: %w", portfolioID, asOf.Format(time.RFC3339Nano), err)
	}
	return list, nil
}

// CashAt returns a portfolio's cash at asOf, the sum of its ledger up to it, and the time of
// the last movement up to it (nil if none).
func (s *Store) CashAt(ctx context.Context, portfolioID int64, asOf time.Time) (cash string, last *time.Time, err error) {
	if err := s.db.QueryRow(ctx, cashAt, portfolioID, asOf).Scan(&cash, &last); err != nil {
		return "", nil, fmt.Errorf("cash of portfolio %d at %s: %w", portfolioID, asOf.Format(time.RFC3339Nano), err)
	}
	return cash, last, nil
}
